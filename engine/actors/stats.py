"""Counters of one actor registry and the snapshot the web layer renders into /metrics.

The counters are plain integers bumped by the actors of one event loop (no locks needed);
`ActorStats` is an immutable copy taken at scrape time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Upper bounds of the batch-size histogram buckets (Prometheus `le` style): a batch of n
# messages is counted in the first bucket whose bound is >= n. The last bucket catches
# anything above 256 (only possible when max_batch is raised past the default).
BATCH_SIZE_BOUNDS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, math.inf)


def batch_size_bucket(size: int) -> int:
    """Index into BATCH_SIZE_BOUNDS of the bucket counting a batch of `size` (>= 1) messages."""
    return min((size - 1).bit_length(), len(BATCH_SIZE_BOUNDS) - 1)


class ActorCounters:
    """Running totals since the registry was created."""

    __slots__ = ("spawned", "evicted", "crashed", "batches", "messages", "batch_sizes")

    def __init__(self) -> None:
        self.spawned = 0
        self.evicted = 0
        self.crashed = 0
        self.batches = 0
        self.messages = 0
        self.batch_sizes = [0] * len(BATCH_SIZE_BOUNDS)

    def record_batch(self, size: int) -> None:
        self.batches += 1
        self.messages += size
        self.batch_sizes[batch_size_bucket(size)] += 1


@dataclass(frozen=True, slots=True)
class ActorStats:
    """One registry at one moment. `messages` is also the histogram's sum, `batches` its count.

    `batch_sizes` pairs each bucket's upper bound with the number of batches in that bucket
    (not cumulative; Prometheus wants cumulative counts, so the renderer adds them up).
    """

    live_actors: int
    mailbox_depth: int
    max_mailbox_depth: int
    spawned: int
    evicted: int
    crashed: int
    batches: int
    messages: int
    batch_sizes: tuple[tuple[float, int], ...]
