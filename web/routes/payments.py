"""Payments: the sandbox provider's hosted page (`/pay/{orderId}`), the provider's signed
webhook, and staff confirmation of bank transfers."""

from __future__ import annotations

import datetime as dt
import html
from typing import AsyncIterator

import msgspec
from aiohttp import web

from engine.payments import provider_for, settlement, webhook
from engine.payments.provider import PaymentProvider
from engine.payments.sandbox import SandboxProvider, payment_page_view
from web import keys
from web.api import PUBLIC, REQUIRED, Req, RouteTable

PROVIDER: web.AppKey[PaymentProvider] = web.AppKey("payment_provider")

pages = RouteTable(prefix="")
routes = RouteTable()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_provider)


async def _provider(app: web.Application) -> AsyncIterator[None]:
    app[PROVIDER] = provider_for(app[keys.SETTINGS], app[keys.DB])
    yield


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ----------------------------------------------------------------------------- hosted page

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox payment {number}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}}</style></head>
<body><h1>Sandbox payment</h1>
<p>Order <strong>{number}</strong></p>
<p>Amount: <strong>{amount} {currency}</strong></p>
<p>Status: <strong id="status">{status}</strong> (payment {payment_status})</p>
{actions}
<p><small>This is the engine's sandbox provider: no money moves.</small></p>
</body></html>"""

_ACTIONS = """<form method="post" action="/pay/{id}/complete" style="display:inline"><button>Pay</button></form>
<form method="post" action="/pay/{id}/fail" style="display:inline"><button>Fail payment</button></form>"""


@pages.get("/pay/{orderId}", auth=PUBLIC, raw=True, errors=("ORDER_NOT_FOUND",), tag="Payments", summary="Sandbox hosted payment page")
async def payment_page(req: Req) -> web.StreamResponse:
    view = await payment_page_view(req.app[keys.DB], req.params["orderId"])
    if view is None:
        return web.Response(status=404, text="<h1>Unknown payment</h1>", content_type="text/html")
    payable = view["status"] == "PENDING_PAYMENT"
    body = _PAGE.format(number=html.escape(view["order_number"]), amount=html.escape(str(view["total"])),
                        currency=html.escape(view["currency"]), status=html.escape(view["status"]),
                        payment_status=html.escape(view["payment_status"]),
                        actions=_ACTIONS.format(id=view["id"]) if payable else "")
    return web.Response(text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


async def _sandbox_outcome(req: Req, succeeded: bool) -> web.StreamResponse:
    order_id = req.params["orderId"]
    db, settings = req.app[keys.DB], req.app[keys.SETTINGS]
    view = await payment_page_view(db, order_id)
    if view is None:
        return web.Response(status=404, text="<h1>Unknown payment</h1>", content_type="text/html")
    # The sandbox "provider" notifies us exactly as over HTTP: the same signed bytes, the same checks.
    body, signature = SandboxProvider(settings, db).signed_event(
        order_id=order_id, succeeded=succeeded, amount=view["total"], currency=view["currency"], now=_now())
    await webhook.receive(db, settings, signature, body, now=_now())
    return web.Response(status=303, headers={"Location": f"/pay/{order_id}"})


@pages.post("/pay/{orderId}/complete", auth=PUBLIC, raw=True, status=303, errors=("ORDER_NOT_FOUND",), tag="Payments",
            summary="Sandbox: pay")
async def payment_complete(req: Req) -> web.StreamResponse:
    return await _sandbox_outcome(req, succeeded=True)


@pages.post("/pay/{orderId}/fail", auth=PUBLIC, raw=True, status=303, errors=("ORDER_NOT_FOUND",), tag="Payments",
            summary="Sandbox: fail the payment")
async def payment_fail(req: Req) -> web.StreamResponse:
    return await _sandbox_outcome(req, succeeded=False)


# ----------------------------------------------------------------------------- webhook

class WebhookAck(msgspec.Struct, rename="camel"):
    received: bool
    outcome: str


@routes.post("/payments/webhook", auth=PUBLIC, response=WebhookAck, tag="Payments",
             errors=("INVALID_SIGNATURE", "VALIDATION_ERROR", "ORDER_NOT_FOUND"),
             summary="Payment provider webhook (HMAC-signed: Payment-Signature: t=...,v1=...)")
async def payment_webhook(req: Req) -> WebhookAck:
    body = await req.request.read()
    outcome = await webhook.receive(req.app[keys.DB], req.app[keys.SETTINGS],
                                    req.request.headers.get(webhook.SIGNATURE_HEADER), body, now=_now())
    return WebhookAck(received=True, outcome=outcome)


# ----------------------------------------------------------------------------- staff

class PaymentConfirmation(msgspec.Struct, rename="camel"):
    order_id: str
    status: str
    payment_status: str
    paid_at: dt.datetime | None
    transaction_id: str | None


@routes.post("/admin/orders/{id}/confirm-payment", auth=REQUIRED, permission="orders:write",
             response=PaymentConfirmation, tag="Payments",
             errors=("ORDER_NOT_FOUND", "INVALID_STATUS_TRANSITION", "FORBIDDEN"),
             summary="Staff: confirm a bank transfer arrived (PENDING_PAYMENT -> PAID)")
async def confirm_payment(req: Req) -> PaymentConfirmation:
    row = await settlement.confirm_payment(req.app[keys.DB], req.tenant_id, req.params["id"],
                                           actor=req.principal.scope, now=_now())
    return PaymentConfirmation(order_id=str(row["id"]), status=row["status"], payment_status=row["payment_status"],
                               paid_at=row["paid_at"], transaction_id=row["transaction_id"])
