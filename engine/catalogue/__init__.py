"""The catalogue: products, categories, reviews and the queries that list and search them.

Store modules (`products`, `categories`, `reviews`) take an asyncpg connection; the pure parts
(`listing`, `commands`, `views`, `access`) do no I/O.
"""
