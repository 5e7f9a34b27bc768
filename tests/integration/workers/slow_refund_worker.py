"""A `commerce worker` process whose payment provider answers refunds slowly: the refund is
made (committed in the sandbox's books) and then the call hangs, so a test can SIGKILL the
worker after the refund's effect but before the job is acknowledged.

    python -m dramatiq tests.integration.workers.slow_refund_worker:boot -p 1 -t 1
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import dramatiq

from engine.payments.sandbox import SandboxProvider
from engine.settings import Settings
from tests.integration.workers.conftest import FAST
from workers.assembly import assemble


class SlowSandbox(SandboxProvider):
    async def refund(self, payment_ref: str, amount: Decimal, idempotency_key: str) -> str:
        ref = await super().refund(payment_ref, amount, idempotency_key)
        await asyncio.sleep(60)   # the answer never arrives in time: the test kills us here
        return ref


def boot() -> None:
    settings = Settings.from_env()
    dramatiq.set_broker(assemble(settings, tuning=FAST, background=False, provider_factory=SlowSandbox).broker)
