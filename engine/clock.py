"""The one clock. Entry points (handlers, jobs) read it once per command and pass `now` down;
the engine's rules and statements take `now` as an argument and never read a clock."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current instant, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
