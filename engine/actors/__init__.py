"""A small asyncio actor runtime: one task per key, a bounded mailbox, optional batching.

Actors are a speed device (they coalesce work on a contended row), never the source of
truth: PostgreSQL's conditional updates and constraints keep the data correct without them.
"""

from engine.actors.actor import Actor
from engine.actors.registry import ActorRegistry, CrashReporter
from engine.actors.stats import BATCH_SIZE_BOUNDS, ActorStats

__all__ = ["Actor", "ActorRegistry", "ActorStats", "BATCH_SIZE_BOUNDS", "CrashReporter"]
