"""Worker middleware, one per file: database.py opens the jobs' resources on the event loop at
boot; background.py runs the outbox relay and the scheduler on that loop."""
