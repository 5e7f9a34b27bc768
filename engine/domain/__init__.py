"""The pure core: values and rules with no I/O (no database, Redis, HTTP or clock).

Everything here takes what it needs as arguments (`now` included), so it is unit-tested in
milliseconds. import-linter forbids this package from importing asyncpg, redis, the frameworks or
any engine module that does I/O.
"""
