"""Webhook subscriptions and their delivery log (`/api/v1/webhooks/...`, permission `webhooks:write`,
held by staff and by API keys given that scope).

The secret is in the 201 of the create only. Targets are checked here (https and public
addresses outside dev mode) and again by the worker at every delivery.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from engine.domain.errors import WebhookDeliveryNotFound
from engine.domain.webhooks import EVENT_TYPES
from engine.webhooks import subscriptions
from engine.webhooks.targets import check_target
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination

webhook_routes = RouteTable()

_WEBHOOKS = dict(auth=REQUIRED, permission="webhooks:write", tag="Webhooks", policy="admin")
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Events = Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=len(EVENT_TYPES))]
Description = Annotated[str, msgspec.Meta(max_length=500)]
Threshold = Annotated[int, msgspec.Meta(ge=1, le=100)]


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    url: Url
    events: Events
    description: Description | None = None
    low_stock_threshold: Threshold = 5


class SubscriptionPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: Events | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    status: Literal["ACTIVE", "PAUSED"] | msgspec.UnsetType = msgspec.UNSET
    low_stock_threshold: Threshold | msgspec.UnsetType = msgspec.UNSET


class SubscriptionOut(msgspec.Struct, rename="camel"):
    id: str
    url: str
    events: list[str]
    description: str | None
    status: str
    failure_reason: str | None
    failing_since: dt.datetime | None
    low_stock_threshold: int
    created_at: dt.datetime
    updated_at: dt.datetime


class SubscriptionCreated(SubscriptionOut, rename="camel"):
    secret: str = ""   # shown once: sign-verification key for this subscription


class SubscriptionList(msgspec.Struct, rename="camel"):
    subscriptions: list[SubscriptionOut]


class DeliveryOut(msgspec.Struct, rename="camel"):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


class DeliveryList(msgspec.Struct, rename="camel"):
    deliveries: list[DeliveryOut]


class PageQuery(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class DeliveryQuery(PageQuery, forbid_unknown_fields=True, rename="camel"):
    status: Literal["PENDING", "DELIVERED", "FAILED"] | None = None


def _out(s: subscriptions.Subscription) -> SubscriptionOut:
    return SubscriptionOut(id=str(s.id), url=s.url, events=list(s.event_types), description=s.description,
                           status=s.status, failure_reason=s.failure_reason, failing_since=s.failing_since,
                           low_stock_threshold=s.low_stock_threshold, created_at=s.created_at, updated_at=s.updated_at)


def _delivery(d: subscriptions.Delivery) -> DeliveryOut:
    return DeliveryOut(id=d.id, event_id=str(d.event_id), event_type=d.event_type, status=d.status,
                       attempts=d.attempts, response_status=d.response_status, duration_ms=d.duration_ms,
                       error=d.last_error, next_attempt_at=d.next_attempt_at, last_attempt_at=d.last_attempt_at,
                       delivered_at=d.delivered_at, created_at=d.created_at)


def _delivery_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise WebhookDeliveryNotFound()
    return int(raw)


@webhook_routes.post("/webhooks/subscriptions", body=SubscriptionIn, response=SubscriptionCreated, status=201,
                     errors=("VALIDATION_ERROR",), summary="Subscribe a URL to events (the secret is shown once)",
                     **_WEBHOOKS)
async def create_subscription(req: Req) -> SubscriptionCreated:
    b: SubscriptionIn = req.body
    await check_target(b.url, dev_mode=req.app[keys.SETTINGS].dev_mode)
    sub, secret = await subscriptions.create(req.app[keys.DB], req.tenant_id, url=b.url, types=list(b.events),
                                             description=b.description, low_stock_threshold=b.low_stock_threshold,
                                             created_by=req.principal.scope)
    return SubscriptionCreated(**msgspec.structs.asdict(_out(sub)), secret=secret)


@webhook_routes.get("/webhooks/subscriptions", query=PageQuery, response=SubscriptionList, paginated=True,
                    summary="List webhook subscriptions", **_WEBHOOKS)
async def list_subscriptions(req: Req) -> Reply:
    q: PageQuery = req.query
    items, total = await subscriptions.list_all(req.app[keys.DB], req.tenant_id, page=q.page, page_size=q.page_size)
    return Reply(SubscriptionList([_out(s) for s in items]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@webhook_routes.get("/webhooks/subscriptions/{id}", response=SubscriptionOut,
                    errors=("WEBHOOK_SUBSCRIPTION_NOT_FOUND",), summary="One webhook subscription", **_WEBHOOKS)
async def get_subscription(req: Req) -> SubscriptionOut:
    return _out(await subscriptions.get(req.app[keys.DB], req.tenant_id, req.params["id"]))


@webhook_routes.patch("/webhooks/subscriptions/{id}", body=SubscriptionPatch, response=SubscriptionOut,
                      errors=("VALIDATION_ERROR", "WEBHOOK_SUBSCRIPTION_NOT_FOUND"),
                      summary="Change, pause or reactivate a subscription", **_WEBHOOKS)
async def update_subscription(req: Req) -> SubscriptionOut:
    b: SubscriptionPatch = req.body
    changes = {name: getattr(b, name) for name in b.__struct_fields__ if getattr(b, name) is not msgspec.UNSET}
    if "url" in changes:
        await check_target(changes["url"], dev_mode=req.app[keys.SETTINGS].dev_mode)
    if "events" in changes:
        changes["events"] = list(changes["events"])
    return _out(await subscriptions.update(req.app[keys.DB], req.tenant_id, req.params["id"], changes))


@webhook_routes.delete("/webhooks/subscriptions/{id}", response=SubscriptionOut,
                       errors=("WEBHOOK_SUBSCRIPTION_NOT_FOUND",),
                       summary="Delete a subscription (its pending deliveries are dropped)", **_WEBHOOKS)
async def delete_subscription(req: Req) -> SubscriptionOut:
    return _out(await subscriptions.delete(req.app[keys.DB], req.tenant_id, req.params["id"]))


@webhook_routes.get("/webhooks/subscriptions/{id}/deliveries", query=DeliveryQuery, response=DeliveryList,
                    paginated=True, errors=("WEBHOOK_SUBSCRIPTION_NOT_FOUND",),
                    summary="A subscription's delivery log, newest first", **_WEBHOOKS)
async def list_deliveries(req: Req) -> Reply:
    q: DeliveryQuery = req.query
    items, total = await subscriptions.deliveries(req.app[keys.DB], req.tenant_id, req.params["id"], page=q.page,
                                                  page_size=q.page_size, status=q.status)
    return Reply(DeliveryList([_delivery(d) for d in items]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@webhook_routes.post("/webhooks/subscriptions/{id}/deliveries/{deliveryId}/resend", response=DeliveryOut,
                     status=202, text_params=("deliveryId",), errors=("WEBHOOK_DELIVERY_NOT_FOUND",),
                     summary="Send one delivery's event again (same event id)", **_WEBHOOKS)
async def resend_delivery(req: Req) -> DeliveryOut:
    return _delivery(await subscriptions.send_again(req.app[keys.DB], req.tenant_id, req.params["id"],
                                                    _delivery_id(req.params["deliveryId"])))


@webhook_routes.post("/webhooks/subscriptions/{id}/ping", response=DeliveryOut, status=202,
                     errors=("WEBHOOK_SUBSCRIPTION_NOT_FOUND",), summary="Send a `ping` event to the target",
                     **_WEBHOOKS)
async def ping_subscription(req: Req) -> DeliveryOut:
    return _delivery(await subscriptions.ping(req.app[keys.DB], req.tenant_id, req.params["id"]))
