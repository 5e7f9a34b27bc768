"""The sandbox payment page's capability: a signed, expiring token bound to one order of one
tenant. Pure functions (no I/O, `now` passed in).

Token: base64url(order id (16 bytes) | tenant id (16) | expiry, unix seconds (8) | mac (16)),
mac = HMAC-SHA256(secret, "pay-page|" + the first 40 bytes) cut to 128 bits. Anything else -
malformed, another secret's, expired, edited - is simply "no such page": the caller answers 404
and tells a stranger nothing, not even whether the order exists.

The CSRF token of the page's forms is HMAC(secret, "pay-csrf|" + pay token): bound to the pay
token, unforgeable without the secret, so a form posted from elsewhere lacks it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from uuid import UUID

_MAC_BYTES = 16
_PAYLOAD = struct.Struct(">16s16sQ")
_LENGTH = _PAYLOAD.size + _MAC_BYTES
_MAX_TEXT = 128  # the encoded token is 75 characters; anything much longer is not one of ours


@dataclass(frozen=True, slots=True)
class PayGrant:
    """What a valid token grants: the page of this order of this tenant, until `expires_at`."""

    order_id: UUID
    tenant_id: UUID
    expires_at: int


def _mac(secret: str, label: bytes, data: bytes) -> bytes:
    return hmac.new(secret.encode(), label + data, hashlib.sha256).digest()


def issue(secret: str, order_id: UUID, tenant_id: UUID, *, expires_at: int) -> str:
    """A token for `order_id` of `tenant_id`, valid until `expires_at` (unix seconds)."""
    payload = _PAYLOAD.pack(order_id.bytes, tenant_id.bytes, expires_at)
    raw = payload + _mac(secret, b"pay-page|", payload)[:_MAC_BYTES]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(secret: str | None, token: str, *, now: int) -> PayGrant | None:
    """The grant of a genuine, unexpired token; None for anything else."""
    if not secret or not token or len(token) > _MAX_TEXT:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _LENGTH:
        return None
    payload, mac = raw[:_PAYLOAD.size], raw[_PAYLOAD.size:]
    if not hmac.compare_digest(mac, _mac(secret, b"pay-page|", payload)[:_MAC_BYTES]):
        return None
    order, tenant, expires_at = _PAYLOAD.unpack(payload)
    if expires_at < now:
        return None
    return PayGrant(UUID(bytes=order), UUID(bytes=tenant), expires_at)


def csrf_token(secret: str, pay_token: str) -> str:
    """The page's form token, bound to its pay token."""
    return _mac(secret, b"pay-csrf|", pay_token.encode()).hex()[:32]


def csrf_ok(secret: str, pay_token: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(secret, pay_token), str(submitted))
