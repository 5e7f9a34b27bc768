"""Webhook rules: event types, the signed request, retry timing, and which targets are allowed.

Pure: no I/O, no clock reads. The signature is the payment webhook's scheme
(engine.payments.webhook.sign: `t=<unix>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>`), so an
integrator verifies our events with the same few lines that verify a payment provider's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.domain.errors import ValidationError

EVENT_TYPES = (
    "order.created", "order.paid", "order.cancelled", "order.shipped", "order.delivered", "order.refunded",
    "refund.requested", "refund.approved", "product.updated", "stock.low", "stock.out",
)
PING = "ping"   # sent by the test endpoint only; nobody subscribes to it

SIGNATURE_HEADER = "Webhook-Signature"
ID_HEADER, TYPE_HEADER, TIMESTAMP_HEADER = "Webhook-Id", "Webhook-Event", "Webhook-Timestamp"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Webhook-Signature value: the same bytes engine.payments.webhook.sign produces."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def encode_event(event_id: str, kind: str, occurred_at: dt.datetime, data: dict[str, Any]) -> bytes:
    """The POST body, in the API's envelope style. Stable for an event: a resend is byte-identical."""
    return json.dumps({"success": True, "data": {
        "id": event_id, "type": kind, "occurredAt": occurred_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "object": data}}, separators=(",", ":"), default=str).encode()


def headers_for(secret: str, event_id: str, kind: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "commerce-webhooks/1",
            ID_HEADER: event_id, TYPE_HEADER: kind, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, body, timestamp)}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float      # wait after the first failure
    max_seconds: float       # the longest wait between two attempts
    window_seconds: float    # give up once the first attempt is older than this

    def next_attempt(self, attempts: int, first_attempt_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
        """When to try again after `attempts` failed attempts; None: the window is spent, give up."""
        wait = min(self.max_seconds, self.base_seconds * 2 ** min(max(attempts - 1, 0), 30))
        at = now + dt.timedelta(seconds=wait)
        if at - first_attempt_at > dt.timedelta(seconds=self.window_seconds):
            return None
        return at


def successful(status: int) -> bool:
    """Any 2xx acknowledges an event; redirects are not followed (they could point anywhere)."""
    return 200 <= status < 300


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether we may connect to `address`: outside dev mode only globally routable unicast ones
    (no private, loopback, link-local, multicast, reserved, unspecified, shared or IPv4-mapped tricks)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
                                 or ip.is_private or ip.is_unspecified)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    host: str
    port: int
    literal_ip: bool


def parse_target(url: str, *, dev_mode: bool) -> Target:
    """Validate a subscription URL's shape: https (http too in dev mode), a host, no credentials,
    and, for a literal IP, an allowed address. Names are resolved and checked by the caller."""
    def bad(why: str) -> ValidationError:
        return ValidationError("Invalid webhook URL.", details={"url": [why]})

    if len(url) > 2000:
        raise bad("at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad("not a valid URL") from None
    schemes = ("https", "http") if dev_mode else ("https",)
    if parts.scheme not in schemes:
        raise bad("must be an https URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise bad("must name a host")
    if parts.username is not None or parts.password is not None:
        raise bad("must not carry credentials")
    if parts.fragment:
        raise bad("must not have a fragment")
    literal = _is_ip(host)
    if literal and not address_allowed(host, allow_private=dev_mode):
        raise bad("private, loopback and link-local addresses are not allowed")
    if not literal and not dev_mode and (host == "localhost" or host.endswith(".localhost") or "." not in host):
        raise bad("must be a public host name")
    return Target(url, host, port or (443 if parts.scheme == "https" else 80), literal)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False
