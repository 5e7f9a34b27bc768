"""The sandbox provider's side: its hosted page and the signed webhook it sends afterwards.

A real provider hosts this page on its own domain and calls our webhook over HTTP. The sandbox
runs in our process, so it is kept apart the way a provider is apart:
- the page opens only with the pay token from `paymentUrl` (engine.payments.pay_tokens), bound
  to one order of one tenant and expiring; without it every page answers "no such payment";
- it acts only on an order still PENDING_PAYMENT;
- it does not settle anything itself: it signs a `payment.*` event with the *provider's* secret
  (SANDBOX_PROVIDER_SECRET) and hands the bytes to `webhook.receive`, the same verification our
  HTTP webhook endpoint runs with *our* secret (PAYMENT_WEBHOOK_SECRET). If the two do not
  match, the event is refused exactly as a forged one would be.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from engine.db import Database
from engine.domain.errors import Conflict, InvalidSignature, NotFound, ServiceUnavailable
from engine.payments import pay_tokens
from engine.payments.config import SANDBOX, provider_name, sandbox_secret
from engine.payments.sandbox import payment_ref_of
from engine.payments.webhook import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentEvent, encode_event, receive, sign
from engine.settings import Settings

AWAITING = "PENDING_PAYMENT"


@dataclass(frozen=True, slots=True)
class PageView:
    order_id: UUID
    order_number: str
    total: Decimal
    currency: str
    status: str
    payment_status: str

    @property
    def payable(self) -> bool:
        return self.status == AWAITING and self.payment_status not in ("PAID", "REFUNDED")


def grant_of(settings: Settings, token: str, *, now: dt.datetime) -> pay_tokens.PayGrant:
    """The token's grant; NotFound when the sandbox is off or the token is not a valid one."""
    secret = sandbox_secret(settings)
    if provider_name(settings) != SANDBOX or secret is None:
        raise NotFound("No such payment.")
    grant = pay_tokens.verify(secret, token, now=int(now.timestamp()))
    if grant is None:
        raise NotFound("No such payment.")
    return grant


def form_token(settings: Settings, token: str) -> str:
    return pay_tokens.csrf_token(sandbox_secret(settings) or "", token)


def form_token_ok(settings: Settings, token: str, submitted: str | None) -> bool:
    secret = sandbox_secret(settings)
    return secret is not None and pay_tokens.csrf_ok(secret, token, submitted)


async def view(db: Database, grant: pay_tokens.PayGrant) -> PageView:
    """What the page shows: the granted order of the granted tenant, nothing else."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT id, order_number, total, currency, status, payment_status FROM orders"
            " WHERE id = $1 AND tenant_id = $2", grant.order_id, grant.tenant_id)
    if row is None:
        raise NotFound("No such payment.")
    return PageView(row["id"], row["order_number"], row["total"], row["currency"], row["status"],
                    row["payment_status"])


def signed_event(secret: str, page: PageView, *, succeeded: bool, now: dt.datetime) -> tuple[bytes, str]:
    """The (body, Payment-Signature) of the webhook the sandbox sends for its page's outcome."""
    event = PaymentEvent(event_id="evt_" + secrets.token_hex(12),
                         kind=PAYMENT_SUCCEEDED if succeeded else PAYMENT_FAILED,
                         order_id=page.order_id, payment_ref=payment_ref_of(page.order_id),
                         amount=page.total, currency=page.currency)
    ts = int(now.timestamp())
    body = encode_event(event, created=ts)
    return body, sign(secret, body, ts)


async def submit(db: Database, settings: Settings, grant: pay_tokens.PayGrant, *, succeeded: bool,
                 now: dt.datetime) -> str:
    """The buyer pressed Pay (or Fail): the provider notifies the shop through its webhook.
    Conflict when the order no longer awaits payment; returns the webhook's outcome."""
    page = await view(db, grant)
    if not page.payable:
        raise Conflict("This order is no longer awaiting payment.", extra={"status": page.status})
    body, signature = signed_event(sandbox_secret(settings) or "", page, succeeded=succeeded, now=now)
    try:
        return await receive(db, settings, signature, body, now=now, provider=SANDBOX)
    except InvalidSignature:
        # Our endpoint refused the provider's signature: SANDBOX_PROVIDER_SECRET and
        # PAYMENT_WEBHOOK_SECRET differ. A configuration fault, not the buyer's.
        raise ServiceUnavailable("The payment provider could not notify the shop.") from None
