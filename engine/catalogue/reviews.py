"""Product reviews: listing, writing, the helpful toggle and staff moderation.

Invariants:
- only an author with a DELIVERED order containing the product may review it
  (`isVerifiedPurchaser` records that), once per product (409 ALREADY_REVIEWED);
- new reviews are PENDING until staff publish them, unless the tenant auto-publishes
  verified purchases; customers only ever see PUBLISHED reviews;
- products.rating_* summarise exactly the PUBLISHED reviews (trigger in migration 0003, same
  transaction); reviews.helpful_count equals the review's review_helpful rows (both changed in
  one transaction, by the toggle below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from engine.catalogue import views as v
from engine.catalogue.commands import NewReview, ReviewModeration, supplied
from engine.catalogue.products import visible_product
from engine.domain.errors import AlreadyReviewed, Forbidden, NotPurchased, ReviewNotFound
from engine.domain.principal import Principal

SORT_COLUMNS = {"createdAt": "r.created_at", "rating": "r.rating", "helpful": "r.helpful_count"}


@dataclass(frozen=True, slots=True)
class ReviewListing:
    page: int = 1
    page_size: int = 10
    rating: int | None = None
    sort: str = "createdAt"
    order: str = "desc"
    status: str | None = None   # staff only: PENDING / REJECTED / PUBLISHED


def display_name(full_name: str) -> str:
    """'John Doe' -> 'John D.': reviews never show an author's full surname."""
    parts = full_name.split()
    if not parts:
        return "Customer"
    return parts[0] if len(parts) == 1 else f"{parts[0]} {parts[-1][0]}."


_REVIEW_COLUMNS = """
    r.id, r.product_id, r.user_id, r.rating, r.title, r.content, r.pros, r.cons, r.images, r.status,
    r.is_verified_purchaser, r.helpful_count, r.response_content, r.responded_at, r.created_at, r.updated_at,
    u.name AS author_name, u.avatar_url
"""


def review_view(r: Any, is_helpful: bool | None) -> v.Review:
    response = (v.ReviewResponse(content=r["response_content"], responded_at=r["responded_at"])
                if r["response_content"] is not None else None)
    return v.Review(
        id=r["id"], author=v.Author(id=r["user_id"], name=display_name(r["author_name"]), avatar_url=r["avatar_url"],
                                    is_verified_purchaser=r["is_verified_purchaser"]),
        rating=r["rating"], title=r["title"], content=r["content"], pros=list(r["pros"]), cons=list(r["cons"]),
        helpful_count=r["helpful_count"], is_helpful=is_helpful,
        images=[v.ReviewImage(url=i["url"], thumbnail_url=i.get("thumbnailUrl") or i["url"]) for i in r["images"]],
        response=response, created_at=r["created_at"], updated_at=r["updated_at"], status=r["status"],
        product_id=r["product_id"])


async def _helpful_marks(conn: asyncpg.Connection, principal: Principal, ids: list[UUID]) -> set[UUID] | None:
    if principal.user_id is None:
        return None
    rows = await conn.fetch("SELECT review_id FROM review_helpful WHERE user_id = $1 AND review_id = ANY($2::uuid[])",
                            principal.user_id, ids)
    return {r["review_id"] for r in rows}


async def list_reviews(conn: asyncpg.Connection, principal: Principal, product_id: UUID, q: ReviewListing,
                       *, moderator: bool) -> tuple[v.ReviewsPage, int]:
    product = await visible_product(conn, principal, product_id)
    args: list[object] = [product_id, principal.tenant_id]
    where = ["r.product_id = $1", "r.tenant_id = $2"]
    status = q.status if moderator and q.status else "PUBLISHED"
    args.append(status)
    where.append(f"r.status = ${len(args)}")
    if q.rating is not None:
        args.append(q.rating)
        where.append(f"r.rating = ${len(args)}")
    clause = " AND ".join(where)
    total = await conn.fetchval(f"SELECT count(*) FROM reviews r WHERE {clause}", *args)
    direction = "ASC" if q.order == "asc" else "DESC"
    rows = []
    if (q.page - 1) * q.page_size < total:
        rows = await conn.fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM reviews r JOIN users u ON u.id = r.user_id WHERE {clause}"
            f" ORDER BY {SORT_COLUMNS[q.sort]} {direction}, r.id {direction}"
            f" LIMIT {q.page_size} OFFSET {(q.page - 1) * q.page_size}", *args)
    marks = await _helpful_marks(conn, principal, [r["id"] for r in rows])
    reviews = [review_view(r, None if marks is None else r["id"] in marks) for r in rows]
    summary = v.RatingSummary(average=v.rating_average(product["rating_sum"], product["rating_count"]),
                              count=product["rating_count"],
                              distribution=v.Distribution.of(list(product["rating_distribution"])))
    return v.ReviewsPage(reviews=reviews, summary=summary), total


async def has_delivered(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, product_id: UUID) -> bool:
    """The verified-purchase rule: a DELIVERED order of this user containing the product."""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM orders o JOIN order_items oi ON oi.order_id = o.id"
        " WHERE o.tenant_id = $1 AND o.user_id = $2 AND o.status = 'DELIVERED' AND oi.product_id = $3)",
        tenant_id, user_id, product_id)


def _require_user(principal: Principal) -> None:
    """Reviews and helpful marks belong to people: an API key (no user) may read, not write."""
    if principal.user_id is None:
        raise Forbidden("Reviews are written by user accounts.")


async def create_review(conn: asyncpg.Connection, principal: Principal, product_id: UUID, cmd: NewReview,
                        *, auto_publish_verified: bool) -> v.CreatedReview:
    _require_user(principal)
    await visible_product(conn, principal, product_id)
    assert principal.user_id is not None
    if not await has_delivered(conn, principal.tenant_id, principal.user_id, product_id):
        raise NotPurchased()
    status = "PUBLISHED" if auto_publish_verified else "PENDING"
    row = await conn.fetchrow(
        "INSERT INTO reviews (tenant_id, product_id, user_id, rating, title, content, pros, cons, status,"
        " is_verified_purchaser) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true)"
        " ON CONFLICT (product_id, user_id) DO NOTHING RETURNING id, created_at",
        principal.tenant_id, product_id, principal.user_id, cmd.rating, cmd.title, cmd.content,
        cmd.pros, cmd.cons, status)
    if row is None:
        raise AlreadyReviewed()
    return v.CreatedReview(id=row["id"], rating=cmd.rating, title=cmd.title, content=cmd.content,
                           pros=list(cmd.pros), cons=list(cmd.cons), status=status,  # type: ignore[arg-type]
                           created_at=row["created_at"])


async def toggle_helpful(conn: asyncpg.Connection, principal: Principal, product_id: UUID,
                         review_id: UUID) -> v.HelpfulVote:
    """Mark a published review helpful, or take the mark back if it is already there."""
    _require_user(principal)
    await visible_product(conn, principal, product_id)
    # Lock the review first: concurrent toggles of one review then count one at a time.
    exists = await conn.fetchval(
        "SELECT id FROM reviews WHERE id = $1 AND product_id = $2 AND tenant_id = $3 AND status = 'PUBLISHED'"
        " FOR UPDATE", review_id, product_id, principal.tenant_id)
    if exists is None:
        raise ReviewNotFound()
    removed = await conn.fetchval("DELETE FROM review_helpful WHERE review_id = $1 AND user_id = $2 RETURNING 1",
                                  review_id, principal.user_id)
    if removed is None:
        await conn.execute("INSERT INTO review_helpful (review_id, user_id) VALUES ($1, $2)",
                           review_id, principal.user_id)
    count = await conn.fetchval(
        "UPDATE reviews SET helpful_count = helpful_count + $2 WHERE id = $1 RETURNING helpful_count",
        review_id, -1 if removed else 1)
    return v.HelpfulVote(review_id=review_id, helpful_count=count, is_helpful=removed is None)


async def moderate_review(conn: asyncpg.Connection, principal: Principal, review_id: UUID,
                          cmd: ReviewModeration) -> v.Review:
    """Staff: publish / reject / re-queue a review, and set or clear the shop's response."""
    fields = supplied(cmd)
    sets, args = [], [review_id, principal.tenant_id]
    if "status" in fields:
        args.append(fields["status"])
        sets.append(f"status = ${len(args)}")
    if "response" in fields:
        args.append(fields["response"])
        sets.append(f"response_content = ${len(args)}")
        sets.append(f"responded_at = CASE WHEN ${len(args)}::text IS NULL THEN NULL ELSE now() END")
    if sets:
        done = await conn.fetchval(f"UPDATE reviews SET {', '.join(sets)}, updated_at = now()"
                                   " WHERE id = $1 AND tenant_id = $2 RETURNING id", *args)
        if done is None:
            raise ReviewNotFound()
    row = await conn.fetchrow(f"SELECT {_REVIEW_COLUMNS} FROM reviews r JOIN users u ON u.id = r.user_id"
                              " WHERE r.id = $1 AND r.tenant_id = $2", review_id, principal.tenant_id)
    if row is None:
        raise ReviewNotFound()
    return review_view(row, None)


async def moderation_queue(conn: asyncpg.Connection, principal: Principal, *, status: str, page: int,
                           page_size: int) -> tuple[list[v.Review], int]:
    """Staff: the tenant's reviews in one status, oldest first (the moderation queue)."""
    total = await conn.fetchval("SELECT count(*) FROM reviews WHERE tenant_id = $1 AND status = $2",
                                principal.tenant_id, status)
    rows = await conn.fetch(
        f"SELECT {_REVIEW_COLUMNS} FROM reviews r JOIN users u ON u.id = r.user_id"
        " WHERE r.tenant_id = $1 AND r.status = $2 ORDER BY r.created_at, r.id LIMIT $3 OFFSET $4",
        principal.tenant_id, status, page_size, (page - 1) * page_size)
    return [review_view(r, None) for r in rows], total
