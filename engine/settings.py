"""Every setting of the engine, read from the environment once into one typed object.

The README's configuration table is generated from `FIELDS` (see `commerce settings`), so a
new setting is documented by adding it here with its help text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Mapping


class SettingsError(ValueError):
    """A setting is missing or malformed."""


# Where Redis is when REDIS_URL is unset (tests, a bare `commerce serve` next to a local Redis).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _setting(env: str, default: Any, help: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "secret": secret})


@dataclass(frozen=True, slots=True)
class Settings:
    # Where the truth lives. Unset in `commerce dev` means embedded servers.
    database_url: str | None = _setting("DATABASE_URL", None, "PostgreSQL URL; unset in `commerce dev` starts an embedded PostgreSQL")
    redis_url: str | None = _setting("REDIS_URL", None, "Redis URL; unset in `commerce dev` starts an embedded Redis (Valkey)")
    redis_prefix: str = _setting("REDIS_PREFIX", "commerce", "Prefix of every Redis key and Dramatiq queue namespace, so several deployments can share one Redis")
    db_pool_min: int = _setting("DB_POOL_MIN", 2, "Smallest asyncpg pool size per process")
    db_pool_max: int = _setting("DB_POOL_MAX", 20, "Largest asyncpg pool size per process")
    db_command_timeout: float = _setting("DB_COMMAND_TIMEOUT", 10.0, "Seconds one database statement may take before it is cancelled")
    dependency_retry_after: int = _setting("DEPENDENCY_RETRY_AFTER", 2, "Retry-After seconds sent with 503 when PostgreSQL or Redis is unreachable")

    # HTTP.
    host: str = _setting("HOST", "127.0.0.1", "Address the API binds to")
    port: int = _setting("PORT", 8080, "Port the API binds to")
    max_body_bytes: int = _setting("MAX_BODY_BYTES", 1_048_576, "Largest request body accepted; larger is 413")
    max_json_depth: int = _setting("MAX_JSON_DEPTH", 32, "Deepest JSON nesting accepted; deeper is 400")
    public_base_url: str = _setting("PUBLIC_BASE_URL", "http://127.0.0.1:8080", "Base URL the API is reached at (payment page links)")
    log_format: str = _setting("LOG_FORMAT", "auto", "auto (console on a terminal, JSON otherwise), json or console")
    log_level: str = _setting("LOG_LEVEL", "info", "debug, info, warning or error")
    request_timeout: float = _setting("REQUEST_TIMEOUT", 20.0, "Seconds one API request may take in all; past that it answers 503 with Retry-After")
    shutdown_grace: float = _setting("SHUTDOWN_GRACE", 10.0, "Seconds in-flight requests get to finish on SIGTERM")
    metrics_port: int = _setting("METRICS_PORT", 0, "Port of a separate /metrics listener on HOST; when set, the API port answers /metrics with 404. 0 keeps /metrics on the API port (the shipped nginx never proxies it)")

    # Identity.
    jwt_keys: str | None = _setting("JWT_KEYS", None, "Signing keys as kid:secret pairs, comma separated; the first signs, the rest still verify (rotation). Required outside dev", secret=True)
    jwt_issuer: str = _setting("JWT_ISSUER", "commerce-engine", "iss claim of access tokens")
    jwt_audience: str = _setting("JWT_AUDIENCE", "commerce-api", "aud claim of access tokens")
    access_token_ttl: int = _setting("ACCESS_TOKEN_TTL", 3600, "Access token lifetime in seconds")
    refresh_token_ttl: int = _setting("REFRESH_TOKEN_TTL", 30 * 86400, "Refresh token lifetime in seconds")
    login_max_failures: int = _setting("LOGIN_MAX_FAILURES", 5, "Failed logins per account from one address before that pair gets 429")
    login_max_address_failures: int = _setting("LOGIN_MAX_ADDRESS_FAILURES", 50, "Failed logins from one address, over all accounts, before the address gets 429")
    account_version_ttl: int = _setting("ACCOUNT_VERSION_TTL", 300, "Seconds Redis answers an account's version (role/permissions/state) before asking PostgreSQL again; bounds how long a change goes unnoticed if Redis missed it")
    login_failure_window: int = _setting("LOGIN_FAILURE_WINDOW", 900, "Seconds failed logins are counted over")
    default_tenant: str = _setting("DEFAULT_TENANT", "default", "Tenant slug used by anonymous requests without X-Tenant")

    # Rate limits (requests per minute).
    rate_limit_enabled: bool = _setting("RATE_LIMIT_ENABLED", True, "Turn the Redis rate limiter on or off")
    rate_catalogue: int = _setting("RATE_CATALOGUE", 200, "Catalogue reads per minute per caller")
    rate_cart: int = _setting("RATE_CART", 100, "Cart operations per minute per user")
    rate_financial: int = _setting("RATE_FINANCIAL", 2, "POST /cart/checkout per minute per user")
    rate_orders: int = _setting("RATE_ORDERS", 100, "Order operations per minute per user")
    rate_categories: int = _setting("RATE_CATEGORIES", 200, "Category reads per minute per caller")
    rate_shipping: int = _setting("RATE_SHIPPING", 200, "Shipping method and cost requests per minute per caller")
    rate_reviews: int = _setting("RATE_REVIEWS", 100, "Review writes and helpful votes per minute per user")
    rate_auth: int = _setting("RATE_AUTH", 20, "Sign-ups, logins and refreshes per minute per address")
    rate_account: int = _setting("RATE_ACCOUNT", 100, "Own-account requests (/me, logout, addresses) per minute per user")
    rate_admin: int = _setting("RATE_ADMIN", 300, "Staff and integration management requests per minute per caller")
    rate_webhooks: int = _setting("RATE_WEBHOOKS", 1000, "Payment webhook deliveries per minute per sending address")
    rate_pages: int = _setting("RATE_PAGES", 60, "HTML pages and API documents per minute per caller")
    rate_api_key_standard: int = _setting("RATE_API_KEY_STANDARD", 1000, "Requests per minute for a standard-plan API key")
    rate_api_key_enterprise: int = _setting("RATE_API_KEY_ENTERPRISE", 10000, "Requests per minute for an enterprise-plan API key")
    trust_forwarded_for: bool = _setting("TRUST_FORWARDED_FOR", False, "Take the client address from X-Forwarded-For (only behind a trusted proxy)")

    # Actors.
    actor_mode: str = _setting("ACTOR_MODE", "batched", "batched (per-product actors coalesce reservations) or single (one transaction per reservation, the benchmark baseline)")
    actor_mailbox_size: int = _setting("ACTOR_MAILBOX_SIZE", 1000, "Messages an actor's mailbox holds before it answers 503")
    actor_idle_seconds: float = _setting("ACTOR_IDLE_SECONDS", 60.0, "Quiet seconds after which an actor is evicted")
    actor_ask_timeout: float = _setting("ACTOR_ASK_TIMEOUT", 10.0, "Seconds a caller waits for an actor's answer")
    actor_max_batch: int = _setting("ACTOR_MAX_BATCH", 256, "Most reservations a product actor applies in one transaction")
    stock_summary_interval_ms: int = _setting("STOCK_SUMMARY_INTERVAL_MS", 1000, "How often each API process folds reservations and releases into products.stock_available (listing by stock, the out-of-stock filter); their lag is at most about this long")
    order_writers: int = _setting("ORDER_WRITERS", 4, "Order-writer actors per hot product (batched mode): each writes the orders waiting for it in one call, so up to this many groups of one product's orders are written at once")
    sold_out_recheck_ms: int = _setting("SOLD_OUT_RECHECK_MS", 1000, "Longest a product actor answers INSUFFICIENT_STOCK from memory after it saw its stock run out, when no notice of units coming back reached it; 0 turns the memory off")

    # Commerce rules.
    currency: str = _setting("CURRENCY", "RUB", "Shop currency (ISO 4217)")
    tax_rate: Decimal = _setting("TAX_RATE", Decimal("0.20"), "Tax rate applied to the discounted subtotal")
    max_item_quantity: int = _setting("MAX_ITEM_QUANTITY", 99, "Most units of one item in a cart")
    kyc_limit: Decimal = _setting("KYC_LIMIT", Decimal("100000"), "Order total above which the buyer's KYC must be verified")
    payment_expiry_seconds: int = _setting("PAYMENT_EXPIRY_SECONDS", 1800, "Seconds an order may stay PENDING_PAYMENT")
    refund_period_days: int = _setting("REFUND_PERIOD_DAYS", 14, "Days after delivery a refund may be requested")
    idempotency_ttl_seconds: int = _setting("IDEMPOTENCY_TTL_SECONDS", 86400, "Seconds idempotency keys are kept")
    restock_on_refund: bool = _setting("RESTOCK_ON_REFUND", True, "Return refunded items to stock")
    auto_publish_verified_reviews: bool = _setting("AUTO_PUBLISH_VERIFIED_REVIEWS", False, "Publish reviews of verified purchasers at once")

    # Payments and workers.
    payment_webhook_secret: str | None = _setting("PAYMENT_WEBHOOK_SECRET", None, "HMAC secret of the sandbox payment provider's webhooks. Required outside dev", secret=True)
    webhook_tolerance_seconds: int = _setting("WEBHOOK_TOLERANCE_SECONDS", 300, "Oldest webhook timestamp accepted")
    payment_provider: str = _setting("PAYMENT_PROVIDER", "", "Payment provider adapter: sandbox or none. Empty means sandbox in `commerce dev`, none in `commerce serve` (the sandbox settles orders only when named here)")
    sandbox_provider_secret: str | None = _setting("SANDBOX_PROVIDER_SECRET", None, "The sandbox provider's own signing secret (its side of PAYMENT_WEBHOOK_SECRET; set both to the same value). Needed with PAYMENT_PROVIDER=sandbox outside dev")
    max_unpaid_orders: int = _setting("MAX_UNPAID_ORDERS", 5, "Unpaid (PENDING_PAYMENT) orders a customer may hold at once; beyond is 409 TOO_MANY_UNPAID_ORDERS. 0 turns the limit off")
    broker: str = _setting("BROKER", "redis", "redis or rabbitmq")
    rabbitmq_url: str | None = _setting("RABBITMQ_URL", None, "AMQP URL when BROKER=rabbitmq")
    worker_processes: int = _setting("WORKER_PROCESSES", 2, "Processes `commerce worker` starts")
    worker_threads: int = _setting("WORKER_THREADS", 4, "Threads per worker process")
    outbox_poll_seconds: float = _setting("OUTBOX_POLL_SECONDS", 0.5, "How often the outbox relay looks for unsent rows")
    worker_heartbeat_timeout: float = _setting("WORKER_HEARTBEAT_TIMEOUT", 20.0, "Seconds without a worker heartbeat before its unacknowledged jobs are redelivered")
    worker_requeue_interval: float = _setting("WORKER_REQUEUE_INTERVAL", 5.0, "How often the broker looks for a dead worker's jobs to requeue")
    dead_letter_ttl: float = _setting("DEAD_LETTER_TTL", 604800.0, "Seconds dead-lettered jobs are kept for an operator to retry")
    scheduler_tick_seconds: float = _setting("SCHEDULER_TICK_SECONDS", 15.0, "Period of the expiry sweep and tracking sync")
    worker_metrics_host: str = _setting("WORKER_METRICS_HOST", "127.0.0.1", "Address the worker metrics endpoint binds to (0.0.0.0 in containers)")
    worker_metrics_port: int = _setting("WORKER_METRICS_PORT", 9191, "Port of `commerce worker`'s Prometheus endpoint (jobs of all its processes, queue figures); 0 turns it off")
    db_statement_cache_size: int = _setting("DB_STATEMENT_CACHE_SIZE", 100, "Prepared statements asyncpg caches per connection; 0 behind PgBouncer in transaction mode older than 1.21")
    outbox_resend_seconds: float = _setting("OUTBOX_RESEND_SECONDS", 120.0, "Seconds after its due time (or its last start or retry) a relayed job that has not finished is presumed lost by the broker and sent again")

    # Event webhooks (issue 19).
    webhook_timeout_seconds: float = _setting("WEBHOOK_TIMEOUT_SECONDS", 10.0, "Seconds a webhook receiver has to answer one delivery (connect + response)")
    webhook_backoff_base_seconds: float = _setting("WEBHOOK_BACKOFF_BASE_SECONDS", 30.0, "Wait after a webhook delivery's first failure; doubles per attempt")
    webhook_backoff_max_seconds: float = _setting("WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0, "Longest wait between two attempts of one webhook delivery")
    webhook_retry_window_seconds: float = _setting("WEBHOOK_RETRY_WINDOW_SECONDS", 86400.0, "After this long failing, a delivery gives up and its subscription is marked FAILING")
    webhook_response_cap_bytes: int = _setting("WEBHOOK_RESPONSE_CAP_BYTES", 4096, "Most bytes of a webhook receiver's response body read (and kept for the log)")
    webhook_batch: int = _setting("WEBHOOK_BATCH", 50, "Most deliveries one webhook job sends before handing the subscription to the next job")
    webhook_log_days: float = _setting("WEBHOOK_LOG_DAYS", 30.0, "Days finished webhook deliveries (and their events) stay in the delivery log")

    dev_mode: bool = _setting("DEV_MODE", False, "Set by `commerce dev`: allows dev defaults for secrets and seeds demo accounts")

    # Catalogue reads.
    catalogue_cache_seconds: float = _setting("CATALOGUE_CACHE_SECONDS", 1.0, "Seconds an API process serves a cached anonymous product document without asking PostgreSQL (stock and rating may be this stale); after that a one-row probe confirms it. 0 turns the cache off")
    catalogue_cache_max_seconds: float = _setting("CATALOGUE_CACHE_MAX_SECONDS", 30.0, "Longest a cached product document lives, probes or not (related products and category names may be this stale); edits notify every process at once")
    catalogue_cache_size: int = _setting("CATALOGUE_CACHE_SIZE", 10000, "Product documents each API process keeps at most")
    compress_min_bytes: int = _setting("COMPRESS_MIN_BYTES", 8192, "Responses at least this large are gzip-compressed for clients that accept it")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read every field from `env` (default: os.environ), then apply `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if name in env and env[name] != "":
                values[f.name] = _coerce(name, env[name], f.default)
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def require_secrets(self) -> None:
        """Outside dev mode every secret must be configured; raise naming the missing ones."""
        if self.dev_mode:
            return
        missing = [f.metadata["env"] for f in fields(self) if f.metadata["secret"] and not getattr(self, f.name)]
        if missing:
            raise SettingsError("missing required secret setting(s): " + ", ".join(missing))

    def describe(self) -> list[tuple[str, str, str]]:
        """(env name, default, help) for every setting: the README's configuration table."""
        out = []
        for f in fields(self):
            default = "(unset)" if f.default is None else str(f.default)
            if isinstance(f.default, bool):
                default = str(f.default).lower()
            out.append((f.metadata["env"], default, f.metadata["help"]))
        return out

    @property
    def redis_address(self) -> str:
        """REDIS_URL, or a Redis on this machine when it is unset: what every client connects to."""
        return self.redis_url or DEFAULT_REDIS_URL


def _coerce(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Decimal):
            return Decimal(raw)
    except (ValueError, ArithmeticError):
        raise SettingsError(f"{name}={raw!r} is not a valid {type(default).__name__}") from None
    return raw


FIELDS = fields(Settings)
