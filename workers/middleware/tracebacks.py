"""Keeps the whole traceback of every dead-lettered job (Redis broker), for `commerce jobs
--show-dead ID` and the operations page.

Dramatiq's Redis broker dead-letters the message as it was enqueued: the traceback its Retries
middleware records lives only in memory, and a job that raised one of its `throws` errors has
none at all. The failure's traceback is kept on the message while it is processed and written,
when the message is nacked, to `<namespace>:<queue>.XQ.tracebacks` (message id -> text), which
expires with the dead letters.
"""

from __future__ import annotations

import traceback

from dramatiq.common import q_name
from dramatiq.middleware import Middleware

_KEY = "commerce_traceback"


def tracebacks_key(namespace: str, queue: str) -> str:
    return f"{namespace}:{queue}.XQ.tracebacks"


class DeadLetterTracebacks(Middleware):
    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if exception is not None:
            message.options[_KEY] = "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__, limit=50))

    def after_nack(self, broker, message) -> None:
        text = message.options.pop(_KEY, None) or message.options.get("traceback")
        client = getattr(broker, "client", None)
        if not text or client is None or not hasattr(broker, "namespace"):
            return
        key = tracebacks_key(broker.namespace, q_name(message.queue_name))
        ttl_ms = int(getattr(broker, "dead_message_ttl", 7 * 86_400_000))
        client.pipeline().hset(key, message.message_id, text).pexpire(key, ttl_ms).execute()
