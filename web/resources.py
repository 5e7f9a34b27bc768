"""The actor services a web process shares across features, started and stopped in one place.

Product actors (engine.stock.StockService) own stock reservations; user actors
(engine.actors.user.UserActors) run one user's cart commands and checkouts one at a time. Both
start after the shared database pool (web.app) and stop before it; user actors stop first, since
a checkout inside a user actor still asks the product actors. One metrics collector reports
both registries under one set of names, labelled by kind.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from engine.actors import ActorStats
from engine.payments import provider_for
from engine.payments.provider import PaymentProvider
from engine.stock import StockService
from engine.actors.user import UserActors
from web import keys

STOCK = web.AppKey("stock_service", StockService)
USER_ACTORS = web.AppKey("user_actors", UserActors)
# The payment provider adapter (PAYMENT_PROVIDER): checkout links, refunds by staff and by PATCH.
PROVIDER = web.AppKey("payment_provider", PaymentProvider)


def setup(app: web.Application) -> None:
    """Append the actor services to the app's cleanup contexts (after the shared resources)."""
    app.cleanup_ctx.append(_payment_provider)
    app.cleanup_ctx.append(_product_actors)
    app.cleanup_ctx.append(_user_actors)
    app[keys.METRICS].add_collector(lambda: actor_metrics(_registries(app)))


async def _payment_provider(app: web.Application) -> AsyncIterator[None]:
    app[PROVIDER] = provider_for(app[keys.SETTINGS], app[keys.DB])
    yield


async def _product_actors(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    service = StockService(app[keys.DB], settings)
    app[STOCK] = service
    await service.start()   # sold-out notices and the product summary refresher (engine.stock)
    try:
        yield
    finally:
        await service.shutdown(settings.shutdown_grace)


async def _user_actors(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    actors = UserActors.from_settings(settings)
    app[USER_ACTORS] = actors
    try:
        yield
    finally:
        await actors.shutdown(settings.shutdown_grace)


def _registries(app: web.Application) -> list[tuple[str, ActorStats]]:
    # Before start-up (or after a failed one) a service may be missing: report what there is.
    found = [("product", STOCK), ("user", USER_ACTORS)]
    return [(kind, app[key].stats()) for kind, key in found if key in app]


def actor_metrics(registries: list[tuple[str, ActorStats]]) -> list[Any]:
    """One set of metric names for every actor registry of the process, labelled by kind."""
    labels = ["kind"]
    live = GaugeMetricFamily("actors_live", "Live actors", labels=labels)
    depth = GaugeMetricFamily("actor_mailbox_depth", "Messages waiting in actor mailboxes", labels=labels)
    evicted = CounterMetricFamily("actor_evictions", "Idle actors evicted", labels=labels)
    crashed = CounterMetricFamily("actor_crashes", "Actors that crashed", labels=labels)
    hist = HistogramMetricFamily("actor_batch_size", "Messages per actor batch", labels=labels)
    for kind, s in registries:
        live.add_metric([kind], s.live_actors)
        depth.add_metric([kind], s.mailbox_depth)
        evicted.add_metric([kind], s.evicted)
        crashed.add_metric([kind], s.crashed)
        buckets, running = [], 0
        for bound, count in s.batch_sizes:
            running += count
            buckets.append(("+Inf" if bound == float("inf") else str(int(bound)), running))
        hist.add_metric([kind], buckets, s.messages)
    return [live, depth, evicted, crashed, hist]
