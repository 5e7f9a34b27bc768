"""The staff operations page: a read-only, server-rendered view of the background jobs (queue
depths, jobs in flight, dead letters with their errors, outbox lag, scheduler ticks, unpaid
orders awaiting expiry) with one action, re-driving a dead letter, exactly as
`commerce jobs --retry-dead ID` does: both are built on workers.operations.

A browser cannot send a bearer header, so /ops/login exchanges a staff login for the same
access token, kept in an HttpOnly, SameSite=Strict cookie scoped to /ops; the page checks it
like any bearer token (revocation, disabled account) and requires the staff role. The retry
form carries a token derived from the cookie (double submit) so another site cannot post it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import html
import time

from aiohttp import web

from engine.domain.errors import DomainError
from web import keys
from web.api import PUBLIC, Req, RouteTable
from web.ratelimit import client_address

pages = RouteTable(prefix="")
COOKIE = "commerce_ops"
_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24}table{border-collapse:collapse;"
        "margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
        "pre{max-width:900px;overflow:auto;background:#f6f8fa;padding:6px;margin:0}.bad{color:#b00}")


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", headers={"Cache-Control": "no-store"},
                        text=f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
                             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _csrf(token: str) -> str:
    return hashlib.sha256(b"ops-form:" + token.encode()).hexdigest()[:32]


def _login_form(message: str = "", status: int = 200) -> web.Response:
    note = f"<p class=bad>{html.escape(message)}</p>" if message else ""
    return _page("Operations: sign in", note + "<form method=post action=/ops/login>"
                 "<p><label>Email <input name=email type=email required></label></p>"
                 "<p><label>Password <input name=password type=password required></label></p>"
                 "<p><button type=submit>Sign in</button></p></form>", status)


async def _staff_token(req: Req) -> str | None:
    """The cookie's access token if it belongs to an active staff member, else None."""
    token = req.request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        principal = await req.app[keys.AUTH]._bearer(req.request, f"Bearer {token}")
    except DomainError:
        return None
    return token if principal.role == "staff" else None


async def _form(req: Req) -> dict[str, str]:
    """The posted form's text fields; anything but a well-formed urlencoded form is an empty one
    (the handlers then answer as for missing fields), never a 500."""
    if req.request.content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        posted = await req.request.post()
    except ValueError:
        return {}
    return {k: v for k, v in posted.items() if isinstance(v, str)}


@pages.get("/ops/login", policy="pages", auth=PUBLIC, raw=True, tag="Operations", summary="Staff sign-in form for the operations page")
async def ops_login_form(req: Req) -> web.StreamResponse:
    return _login_form()


@pages.post("/ops/login", policy="auth", auth=PUBLIC, raw=True, errors=("INVALID_CREDENTIALS", "FORBIDDEN", "RATE_LIMIT_EXCEEDED"),
            tag="Operations", summary="Sign in to the operations page (form post)")
async def ops_login(req: Req) -> web.StreamResponse:
    form = await _form(req)
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    try:
        account, session = await req.app[keys.SESSIONS].login(
            req.tenant_id, email, password, client_address(req.request, req.app[keys.SETTINGS]), int(time.time()))
    except DomainError:   # wrong password, throttled: the same answer, the throttle still counts
        return _login_form("Sign-in failed.", 401)
    if session.claims.role != "staff":
        return _login_form("Staff only.", 403)
    resp = _see_other("/ops")
    resp.set_cookie(COOKIE, session.access_token, max_age=session.expires_in, path="/ops", httponly=True,
                    samesite="Strict", secure=req.request.secure)
    return resp


@pages.get("/ops", policy="pages", auth=PUBLIC, raw=True, errors=("UNAUTHORIZED",), tag="Operations", summary="Operations page (staff): jobs, queues, outbox, expiry")
async def ops_page(req: Req) -> web.StreamResponse:
    from workers.operations import overview

    token = await _staff_token(req)
    if token is None:
        return _login_form(status=401)
    o = await overview(req.app[keys.SETTINGS])
    q, notice = o["queues"], html.escape(req.request.query.get("notice", ""))
    rows = "".join(f"<tr><td>{name}</td><td>{q[f'queue.{name}.ready']}</td><td>{q[f'queue.{name}.delayed']}</td>"
                   f"<td>{o['in_flight'][name]}</td><td>{q[f'queue.{name}.dead']}</td></tr>"
                   for name in o["in_flight"])
    letters = "".join(
        f"<tr><td>{html.escape(d['queue'])}</td><td>{html.escape(d['actor'])}</td>"
        f"<td><code>{html.escape(d['message_id'])}</code></td><td>{html.escape(str(d['args'] or d['kwargs']))}</td>"
        f"<td><pre>{html.escape(d['traceback'] or d['error'] or '')}</pre></td>"
        f"<td><form method=post action=/ops/dead-letters/retry><input type=hidden name=message_id "
        f"value=\"{html.escape(d['message_id'])}\"><input type=hidden name=csrf value={_csrf(token)}>"
        f"<button type=submit>Retry</button></form></td></tr>" for d in o["dead_letters"])
    period = req.app[keys.SETTINGS].scheduler_tick_seconds
    ticks = "".join(f"<tr><td>{html.escape(task)}</td><td>{_at(t['tick'] * period)}</td>"
                    f"<td>{html.escape(t['owner'] or '')}</td></tr>" for task, t in sorted(o["scheduler"].items()))
    e = o["orders_awaiting_expiry"]
    body = (f"<p id=notice>{notice}</p>" if notice else "") + (
        "<h2>Queues</h2><table id=queues><tr><th>queue</th><th>ready</th><th>delayed</th><th>in flight</th>"
        f"<th>dead</th></tr>{rows}</table>"
        f"<h2>Outbox</h2><p id=outbox>{q['outbox.lag_count']} due and unsent, oldest {q['outbox.lag_seconds']} s; "
        f"{q['outbox.scheduled']} scheduled later</p>"
        f"<h2>Orders awaiting expiry</h2><p id=expiry>{e['pending']} unpaid, {e['overdue']} overdue; "
        f"next expiry {html.escape(str(e['next_expiry'] or '-'))}</p>"
        "<h2>Scheduler (latest tick per task)</h2><table id=scheduler><tr><th>task</th><th>tick</th><th>worker</th></tr>"
        f"{ticks}</table>"
        f"<h2>Dead letters ({q['dead_letters.total']})</h2><table id=dead-letters><tr><th>queue</th><th>job</th>"
        f"<th>message id</th><th>arguments</th><th>error</th><th></th></tr>{letters}</table>")
    return _page("Operations", body)


def _at(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@pages.post("/ops/dead-letters/retry", policy="admin", auth=PUBLIC, raw=True, errors=("UNAUTHORIZED", "FORBIDDEN"), tag="Operations",
            summary="Re-drive one dead letter (staff; same as commerce jobs --retry-dead ID)")
async def ops_retry(req: Req) -> web.StreamResponse:
    from workers.operations import retry_dead_letters

    token = await _staff_token(req)
    if token is None:
        return _login_form(status=401)
    form = await _form(req)
    if not hmac.compare_digest(str(form.get("csrf", "")), _csrf(token)):
        return _page("Operations", "<p class=bad>Form expired: reload the page.</p>", 403)
    message_id = str(form.get("message_id", ""))[:100]
    count = await asyncio.to_thread(retry_dead_letters, req.app[keys.SETTINGS], None, message_id or None) \
        if message_id else 0
    return _see_other("/ops?notice=" + ("re-enqueued+" + message_id if count else "no+such+dead+letter"))


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
