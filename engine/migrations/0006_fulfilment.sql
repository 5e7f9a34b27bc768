-- Fulfilment: customer refund requests (reviewed by staff, executed by a job through
-- engine/payments/refund_execution.py, whose `refunds` rows point back here by request_id),
-- and the tracking events a carrier reported for a shipped order.
-- Shipping zones need no table: they live in shipping_methods.zones (0001) and staff edit them
-- with the method.

CREATE TABLE refund_requests (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    order_id         uuid NOT NULL REFERENCES orders(id),
    user_id          uuid NOT NULL REFERENCES users(id),
    -- PENDING_REVIEW -> APPROVED -> COMPLETED | FAILED; PENDING_REVIEW -> REJECTED.
    status           text NOT NULL DEFAULT 'PENDING_REVIEW'
                     CHECK (status IN ('PENDING_REVIEW', 'APPROVED', 'REJECTED', 'COMPLETED', 'FAILED')),
    reason           text NOT NULL,
    description      text,
    requested_amount numeric(12,2) NOT NULL CHECK (requested_amount > 0),
    approved_amount  numeric(12,2) CHECK (approved_amount > 0 AND approved_amount <= requested_amount),
    refunded_amount  numeric(12,2) CHECK (refunded_amount >= 0),
    review_note      text,          -- the reject reason, or a note with an approval
    failure          text,          -- why execution failed (FAILED)
    reviewed_by      text,
    reviewed_at      timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('APPROVED', 'COMPLETED') OR approved_amount IS NOT NULL)
);
CREATE INDEX refund_requests_order ON refund_requests (order_id, created_at);
CREATE INDEX refund_requests_review ON refund_requests (tenant_id, status, created_at DESC, id);

-- The order items (and how many of each) a request covers, with their share of the money.
CREATE TABLE refund_request_items (
    request_id    uuid NOT NULL REFERENCES refund_requests(id),
    order_item_id uuid NOT NULL REFERENCES order_items(id),
    quantity      int NOT NULL CHECK (quantity > 0),
    amount        numeric(12,2) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (request_id, order_item_id)
);

-- What the carrier reported. A sync inserts every event it sees; the unique key makes a
-- repeated sync (two ticks, a redelivered job) add nothing.
CREATE TABLE tracking_events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    order_id    uuid NOT NULL REFERENCES orders(id),
    status      text NOT NULL CHECK (status IN ('SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'EXCEPTION')),
    location    text,
    description text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, status, occurred_at)
);

-- The tracking sync walks every shipped order each tick.
CREATE INDEX orders_shipped ON orders (shipped_at, id) WHERE status = 'SHIPPED';
