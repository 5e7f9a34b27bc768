"""Payments: the sandbox provider's hosted page (`/pay/{token}`), the provider's signed
webhook, and staff confirmation of bank transfers."""

from __future__ import annotations

import datetime as dt
import html

import msgspec
from aiohttp import web

from engine.domain.errors import Conflict, DomainError, NotFound
from engine.clock import utc_now
from engine.payments import sandbox_page, settlement, webhook
from web import keys
from web.api import PUBLIC, REQUIRED, Req, RouteTable
from web.errors import status_of

pages = RouteTable(prefix="")
routes = RouteTable()


# ----------------------------------------------------------------------------- hosted page
# The sandbox provider's page (engine.payments.sandbox_page). The path carries the pay token
# from `paymentUrl`; without a valid one every route is 404 with the same body, whether the
# order exists or not. POSTs also need the page's form token and must not come from another
# site (Origin / Sec-Fetch-Site), so a page elsewhere cannot submit them for the buyer.

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

_ACTIONS = """<form method="post" action="/pay/{token}/complete" style="display:inline"><input type="hidden" name="csrf" value="{csrf}"><button>Pay</button></form>
<form method="post" action="/pay/{token}/fail" style="display:inline"><input type="hidden" name="csrf" value="{csrf}"><button>Fail payment</button></form>"""

_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
                                       " frame-ancestors 'none'; base-uri 'none'"}
_MESSAGES = {404: "Unknown payment", 403: "This form cannot be submitted from here",
             409: "This order is no longer awaiting payment", 503: "The payment provider is unavailable"}


def _html(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/html", headers=_HEADERS)


def _refusal(exc: DomainError) -> web.Response:
    status = status_of(exc.code)
    title = _MESSAGES.get(status, "The payment cannot be completed")
    return _html(status, f"<!doctype html><title>{title}</title><h1>{title}</h1>")


@pages.get("/pay/{token}", policy="pages", auth=PUBLIC, raw=True, text_params=("token",), errors=("NOT_FOUND",), tag="Payments",
           summary="Sandbox hosted payment page (the token from paymentUrl)")
async def payment_page(req: Req) -> web.StreamResponse:
    token = req.params["token"]
    settings = req.app[keys.SETTINGS]
    try:
        page = await sandbox_page.view(req.app[keys.DB], sandbox_page.grant_of(settings, token, now=utc_now()))
    except NotFound as exc:
        return _refusal(exc)
    actions = ""
    if page.payable:
        actions = _ACTIONS.format(token=html.escape(token), csrf=sandbox_page.form_token(settings, token))
    body = _PAGE.format(number=html.escape(page.order_number), amount=html.escape(str(page.total)),
                        currency=html.escape(page.currency), status=html.escape(page.status),
                        payment_status=html.escape(page.payment_status), actions=actions)
    return _html(200, body)


def _same_site(request: web.Request, public_base_url: str) -> bool:
    """False for a request a browser says came from another site. Clients that send neither
    header (curl, servers) pass: they hold the token and the form token anyway."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    ours = {f"{request.scheme}://{request.host}", public_base_url.rstrip("/")}
    return origin in ours


async def _sandbox_outcome(req: Req, succeeded: bool) -> web.StreamResponse:
    token = req.params["token"]
    settings = req.app[keys.SETTINGS]
    try:
        grant = sandbox_page.grant_of(settings, token, now=utc_now())
        form = await req.request.post() if req.request.content_type == "application/x-www-form-urlencoded" else {}
        submitted = form.get("csrf")
        if not _same_site(req.request, settings.public_base_url) or not sandbox_page.form_token_ok(
                settings, token, submitted if isinstance(submitted, str) else None):
            return _refusal(DomainError(code="FORBIDDEN"))
        await sandbox_page.submit(req.app[keys.DB], settings, grant, succeeded=succeeded, now=utc_now())
    except (NotFound, Conflict) as exc:
        return _refusal(exc)
    return web.Response(status=303, headers={**_HEADERS, "Location": f"/pay/{token}"})


@pages.post("/pay/{token}/complete", policy="pages", auth=PUBLIC, raw=True, status=303, text_params=("token",),
            errors=("NOT_FOUND", "FORBIDDEN", "CONFLICT"), tag="Payments", summary="Sandbox: pay")
async def payment_complete(req: Req) -> web.StreamResponse:
    return await _sandbox_outcome(req, succeeded=True)


@pages.post("/pay/{token}/fail", policy="pages", auth=PUBLIC, raw=True, status=303, text_params=("token",),
            errors=("NOT_FOUND", "FORBIDDEN", "CONFLICT"), tag="Payments", summary="Sandbox: fail the payment")
async def payment_fail(req: Req) -> web.StreamResponse:
    return await _sandbox_outcome(req, succeeded=False)


# ----------------------------------------------------------------------------- webhook

class WebhookAck(msgspec.Struct, rename="camel"):
    received: bool
    outcome: str


@routes.post("/payments/webhook", policy="webhooks", auth=PUBLIC, response=WebhookAck, tag="Payments",
             errors=("INVALID_SIGNATURE", "VALIDATION_ERROR", "ORDER_NOT_FOUND"),
             summary="Payment provider webhook (HMAC-signed: Payment-Signature: t=...,v1=...)")
async def payment_webhook(req: Req) -> WebhookAck:
    body = await req.request.read()
    outcome = await webhook.receive(req.app[keys.DB], req.app[keys.SETTINGS],
                                    req.request.headers.get(webhook.SIGNATURE_HEADER), body, now=utc_now())
    return WebhookAck(received=True, outcome=outcome)


# ----------------------------------------------------------------------------- staff

class PaymentConfirmation(msgspec.Struct, rename="camel"):
    order_id: str
    status: str
    payment_status: str
    paid_at: dt.datetime | None
    transaction_id: str | None


@routes.post("/admin/orders/{id}/confirm-payment", policy="admin", auth=REQUIRED, permission="orders:write",
             response=PaymentConfirmation, tag="Payments",
             errors=("ORDER_NOT_FOUND", "INVALID_STATUS_TRANSITION", "FORBIDDEN"),
             summary="Staff: confirm a bank transfer arrived (PENDING_PAYMENT -> PAID)")
async def confirm_payment(req: Req) -> PaymentConfirmation:
    state = await settlement.confirm_payment(req.app[keys.DB], req.tenant_id, req.params["id"],
                                             actor=req.principal.scope, now=utc_now())
    return PaymentConfirmation(order_id=str(state.order_id), status=state.status, payment_status=state.payment_status,
                               paid_at=state.paid_at, transaction_id=state.transaction_id)
