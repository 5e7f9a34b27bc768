-- Payment execution: what the provider told us (payments, payment_events), the webhook replay
-- guard, executed refunds with their money guard, and the sandbox provider's own refund ledger.
-- Customer refund REQUESTS (review by staff) live in 0006; this file holds only execution.

-- One payment per order: the amount the order must be paid and, once paid, what was paid.
CREATE TABLE payments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    order_id        uuid NOT NULL UNIQUE REFERENCES orders(id),
    provider        text NOT NULL,                   -- 'sandbox', 'staff' (bank transfer confirmed by hand)
    payment_ref     text UNIQUE,                     -- the provider's reference
    method          text NOT NULL,
    currency        text NOT NULL,
    amount          numeric(12,2) NOT NULL CHECK (amount >= 0),
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'PAID', 'FAILED')),
    refunded_amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    paid_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- The money guard: whatever code inserts refunds, their sum never exceeds what was paid.
    CHECK (refunded_amount <= amount),
    CHECK (status = 'PAID' OR refunded_amount = 0)
);

-- Every payment event applied or ignored, with what it did: the audit trail of a payment.
CREATE TABLE payment_events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    order_id    uuid NOT NULL REFERENCES orders(id),
    event_id    text,                 -- the provider's event id (NULL for staff confirmations)
    source      text NOT NULL,        -- 'provider:<name>' or 'user:<id>'
    kind        text NOT NULL,        -- payment.succeeded, payment.failed
    amount      numeric(12,2),
    outcome     text NOT NULL,        -- PAID, FAILED, DUPLICATE, LATE_PAYMENT_REFUNDED, IGNORED_*
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_order ON payment_events (order_id, id);

-- Webhook replay guard: an event id is accepted once, ever.
CREATE TABLE processed_webhook_events (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Executed refunds. A PENDING row reserves its amount against the payment before the provider is
-- called, so concurrent refunds cannot together exceed what was paid; FAILED gives it back.
CREATE TABLE refunds (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    order_id        uuid NOT NULL REFERENCES orders(id),
    payment_id      uuid NOT NULL REFERENCES payments(id),
    request_id      uuid,                 -- the customer's refund request (0006), when there is one
    amount          numeric(12,2) NOT NULL CHECK (amount > 0),
    reason          text NOT NULL,        -- CANCELLED_ORDER, REQUEST, ...
    idempotency_key text NOT NULL UNIQUE, -- also the provider's idempotency key
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    provider_ref    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE INDEX refunds_order ON refunds (order_id);

-- Keeps payments.refunded_amount = sum of the payment's non-failed refunds; the CHECKs on
-- payments then refuse any refund beyond the paid amount (the UPDATE locks the payment row, so
-- concurrent refunds serialise here).
CREATE FUNCTION refunds_hold_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.status <> 'FAILED' THEN
        UPDATE payments SET refunded_amount = refunded_amount + NEW.amount, updated_at = now()
         WHERE id = NEW.payment_id;
    ELSIF TG_OP = 'UPDATE' AND OLD.status <> 'FAILED' AND NEW.status = 'FAILED' THEN
        UPDATE payments SET refunded_amount = refunded_amount - OLD.amount, updated_at = now()
         WHERE id = OLD.payment_id;
    ELSIF TG_OP = 'UPDATE' AND (NEW.amount <> OLD.amount OR NEW.payment_id <> OLD.payment_id) THEN
        RAISE EXCEPTION 'a refund''s amount and payment are fixed once recorded';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_hold_payment AFTER INSERT OR UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_hold_payment();

-- The sandbox provider's own books: a refund per idempotency key, so a repeated call refunds once.
CREATE TABLE sandbox_refunds (
    idempotency_key text PRIMARY KEY,
    payment_ref     text NOT NULL,
    amount          numeric(12,2) NOT NULL CHECK (amount > 0),
    refund_ref      text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
