"""Background work: Dramatiq actors (jobs.py), the outbox relay (relay.py), the periodic
scheduler (scheduler.py), and the ways to run them: `commerce worker` processes (main.py,
entry.py) or threads inside `commerce dev` (embedded.py). Operators' figures and dead-letter
handling are in operations.py and deadletters.py.
"""
