"""Using the sandbox's hosted page as a buyer's browser does: open the link, post its form."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

from engine.payments.sandbox import page_url
from engine.settings import Settings


def link_path(settings: Settings, order_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    """The path of the page link checkout would hand this order's buyer."""
    url = page_url(settings, order_id, tenant_id, now=dt.datetime.now(dt.timezone.utc))
    assert url is not None
    return urlsplit(url).path


async def submit(api, path: str, action: str = "complete"):
    """GET the page, then POST its `action` form with the page's own form token."""
    page = await api.client.get(path)
    text = await page.text()
    assert page.status == 200, (page.status, text[:500])
    form = re.search(rf'action="([^"]*/{action})"[^>]*><input type="hidden" name="csrf" value="([0-9a-f]+)"', text)
    assert form, text[:1500]
    return await api.client.post(form.group(1), data={"csrf": form.group(2)}, allow_redirects=False)
