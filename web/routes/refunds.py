"""Refunds: the customer's request (`POST /orders/{id}/refund`) and the staff's review (list,
approve, reject). Execution is a job (workers/jobs_fulfilment.py) queued by the approval.
Thin: parse, call engine.refunds, render.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from aiohttp import web

from engine import refunds
from engine.clock import utc_now
from engine.domain.errors import Forbidden, ValidationError
from engine.domain.money import to_api
from web import keys
from web.api import REQUIRED, Reply, Req, RouteTable
from web.envelope import Pagination
from web.idempotency import idempotent

routes = RouteTable()

Money = Decimal
_MAX_MONEY = Decimal("9999999999.99")
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Status = Literal["PENDING_REVIEW", "APPROVED", "REJECTED", "COMPLETED", "FAILED"]


def _text(value: str | None, name: str, *, required: bool = False) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if "\x00" in value or (required and not value):
        raise ValidationError(details={name: ["required" if not value else "contains NUL"]})
    return value or None


# ----------------------------------------------------------------------------- shapes

class RefundRequestIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    reason: Reason
    item_ids: Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=100)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class RefundItemOut(msgspec.Struct, rename="camel"):
    item_id: str
    product_name: str
    quantity: int
    amount: Money


class RefundResponse(msgspec.Struct, rename="camel"):
    refund_request_id: str
    order_id: str
    order_number: str
    status: str
    requested_amount: Money
    items: list[RefundItemOut]
    message: str
    created_at: dt.datetime


class StaffRefundOut(msgspec.Struct, rename="camel"):
    id: str
    order_id: str
    order_number: str
    user_id: str
    status: str
    reason: str
    description: str | None
    requested_amount: Money
    approved_amount: Money | None
    refunded_amount: Money | None
    items: list[RefundItemOut]
    review_note: str | None
    failure: str | None
    created_at: dt.datetime
    reviewed_at: dt.datetime | None
    completed_at: dt.datetime | None


class RefundsResponse(msgspec.Struct, rename="camel"):
    refunds: list[StaffRefundOut]


class RefundsQuery(msgspec.Struct, rename="camel"):
    status: Status | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class ApproveIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    amount: Money | None = None
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None

    def __post_init__(self) -> None:
        if self.amount is not None and not (self.amount.is_finite() and 0 < self.amount <= _MAX_MONEY
                                            and self.amount == self.amount.quantize(Decimal("0.01"))):
            raise ValueError(f"amount must be above 0, at most {_MAX_MONEY}, with at most 2 decimals")


class RejectIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    reason: Reason


def _items(view: refunds.RefundView) -> list[RefundItemOut]:
    return [RefundItemOut(item_id=str(i.item_id), product_name=i.product_name, quantity=i.quantity,
                          amount=to_api(i.amount)) for i in view.items]


def _staff(view: refunds.RefundView) -> StaffRefundOut:
    r = view.request
    return StaffRefundOut(
        id=str(r.id), order_id=str(r.order_id), order_number=r.order_number, user_id=str(r.user_id),
        status=r.status, reason=r.reason, description=r.description,
        requested_amount=to_api(r.requested_amount), approved_amount=to_api(r.approved_amount),
        refunded_amount=to_api(r.refunded_amount), items=_items(view), review_note=r.review_note,
        failure=r.failure, created_at=r.created_at, reviewed_at=r.reviewed_at,
        completed_at=r.completed_at)


# ----------------------------------------------------------------------------- customer

@routes.post("/orders/{id}/refund", body=RefundRequestIn, response=RefundResponse, status=201, auth=REQUIRED,
             policy="orders", idempotent=True,
             errors=("VALIDATION_ERROR", "ORDER_NOT_FOUND", "CANNOT_REFUND", "REFUND_PERIOD_EXPIRED",
                     "REFUND_ALREADY_REQUESTED", "IDEMPOTENCY_KEY_REUSED", "FORBIDDEN"),
             tag="Orders", summary="Request a refund of a delivered order (all items or some)")
async def request_refund(req: Req) -> web.StreamResponse:
    b = req.body
    reason = _text(b.reason, "reason", required=True)
    description = _text(b.description, "description")

    async def run() -> RefundResponse:
        view = await refunds.request_refund(
            req.app[keys.DB], req.principal, req.params["id"], reason=reason, item_ids=b.item_ids,
            description=description, refund_period_days=req.app[keys.SETTINGS].refund_period_days, now=utc_now())
        r = view.request
        return RefundResponse(
            refund_request_id=str(r.id), order_id=str(r.order_id), order_number=r.order_number,
            status=r.status, requested_amount=to_api(r.requested_amount), items=_items(view),
            message="Refund request submitted. You will be notified once reviewed.", created_at=r.created_at)

    return await idempotent(req, run, status=201)


# ----------------------------------------------------------------------------- staff

@routes.get("/admin/refunds", policy="admin", query=RefundsQuery, response=RefundsResponse, auth=REQUIRED, paginated=True,
            errors=("VALIDATION_ERROR", "FORBIDDEN"), tag="Refunds",
            summary="Staff: refund requests, newest first (orders:read or orders:write)")
async def list_refunds(req: Req) -> Reply:
    if not (req.principal.can("orders:read") or req.principal.can("orders:write")):
        raise Forbidden("Requires `orders:read` permission.")
    q = req.query
    views, total = await refunds.list_requests(req.app[keys.DB], req.tenant_id, status=q.status, page=q.page,
                                               page_size=q.page_size)
    return Reply(RefundsResponse(refunds=[_staff(v) for v in views]),
                 meta={"pagination": Pagination.of(total, q.page, q.page_size)})


@routes.post("/admin/refunds/{id}/approve", policy="admin", body=ApproveIn, response=StaffRefundOut, auth=REQUIRED,
             permission="orders:write",
             errors=("VALIDATION_ERROR", "REFUND_NOT_FOUND", "CONFLICT", "FORBIDDEN"), tag="Refunds",
             summary="Staff: approve a request (optionally a smaller amount); a job then refunds it")
async def approve_refund(req: Req) -> StaffRefundOut:
    view = await refunds.approve(req.app[keys.DB], req.principal, req.params["id"], amount=req.body.amount,
                                 note=_text(req.body.note, "note"), now=utc_now())
    return _staff(view)


@routes.post("/admin/refunds/{id}/reject", policy="admin", body=RejectIn, response=StaffRefundOut, auth=REQUIRED,
             permission="orders:write",
             errors=("VALIDATION_ERROR", "REFUND_NOT_FOUND", "CONFLICT", "FORBIDDEN"), tag="Refunds",
             summary="Staff: reject a request with a reason")
async def reject_refund(req: Req) -> StaffRefundOut:
    view = await refunds.reject(req.app[keys.DB], req.principal, req.params["id"],
                                reason=_text(req.body.reason, "reason", required=True), now=utc_now())
    return _staff(view)
