"""Logging set-up shared by every entry point: JSON lines when not on a terminal, a readable
console on one; context (request id, user id) is bound with structlog's contextvars.

Every record goes through ONE handler on the root logger, formatted by structlog's
`ProcessorFormatter`: our structlog calls, and the standard-library records of Dramatiq,
asyncpg, aiohttp (access log included) and `warnings`. The root's existing handlers are
replaced, not added to: Dramatiq's CLI calls `basicConfig` in every worker process before our
boot code runs, and its plain-text handler would otherwise print multi-line tracebacks next
to our JSON. One `write` per record, so lines from several processes sharing a pipe never
interleave mid-line.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

# Processors applied to records that did not come from structlog (Dramatiq, asyncpg, aiohttp).
_FOREIGN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def uses_json(fmt: str, stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return fmt == "json" or (fmt == "auto" and not (hasattr(stream, "isatty") and stream.isatty()))


def configure_logging(fmt: str = "auto", level: str = "info", *, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = uses_json(fmt, stream)
    lvl = getattr(logging, level.upper(), logging.INFO)
    if use_json:
        # A traceback becomes one "exception" string field (JSON escapes its newlines), so the
        # record stays one line; no frame locals, which could hold passwords or tokens.
        final = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        final = [structlog.dev.ConsoleRenderer()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_FOREIGN,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    logging.captureWarnings(True)
    # Per-request access lines are the metrics' job; warnings and errors still come through.
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
