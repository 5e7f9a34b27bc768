"""Target checks that need the network: resolve a host and refuse any disallowed address.

Checked when a subscription is created or changed, and again by the worker at every delivery
after its own resolution (a name can be re-pointed at 127.0.0.1 after it was validated), with
the connection made only to the addresses that passed.
"""

from __future__ import annotations

import asyncio
import socket

from engine.domain.errors import ValidationError
from engine.domain.webhooks import Target, address_allowed, parse_target


class BlockedAddress(Exception):
    """The target resolved to an address we must not connect to (or did not resolve)."""


async def resolve_allowed(host: str, port: int, *, allow_private: bool, timeout: float = 5.0) -> list[str]:
    """The host's addresses, all allowed; raise BlockedAddress if any is not (a mixed answer is
    refused whole: an attacker controls which one a client picks) or if it does not resolve."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise BlockedAddress(f"cannot resolve {host}: {exc.__class__.__name__}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise BlockedAddress(f"{host} has no address")
    blocked = [a for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if blocked:
        raise BlockedAddress(f"{host} resolves to a disallowed address")
    return addresses


async def check_target(url: str, *, dev_mode: bool) -> Target:
    """Validate a subscription URL for storing: shape, scheme, and (outside dev mode) that the
    host resolves to public addresses only. Raises ValidationError (400) otherwise."""
    target = parse_target(url, dev_mode=dev_mode)
    if not dev_mode and not target.literal_ip:
        try:
            await resolve_allowed(target.host, target.port, allow_private=False)
        except BlockedAddress as exc:
            raise ValidationError("Invalid webhook URL.", details={"url": [str(exc)]}) from None
    return target
