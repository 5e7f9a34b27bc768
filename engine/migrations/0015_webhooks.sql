-- Event webhooks (issue 19): subscriptions, the events captured for them, and one delivery per
-- (subscription, event).
--
-- Events are captured by AFTER triggers in the transaction of the change they report, so an event
-- exists if and only if its change committed, and no code path others are rewriting (checkout,
-- status transitions, stock) has to remember to emit one. Each trigger first asks one cheap
-- indexed EXISTS whether the tenant has an ACTIVE subscription for that type: a shop without
-- webhooks pays one index probe per change and writes nothing. The stock trigger's WHEN clause
-- lets ordinary stock updates (the flash-sale hot row) skip the function call entirely unless the
-- available units dropped into the bottom band (<= 100, the highest threshold allowed).
-- Every delivery also writes an outbox row `deliver_webhooks(subscription_id)`: the relay hands it
-- to a worker, which delivers that subscription's due deliveries in id order (workers/jobs_webhooks.py).

CREATE TABLE webhook_subscriptions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants(id),
    url                 text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    event_types         text[] NOT NULL CHECK (cardinality(event_types) >= 1),
    -- The HMAC key: needed in clear to sign, like PAYMENT_WEBHOOK_SECRET; shown to the client once.
    secret              text NOT NULL,
    description         text,
    status              text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED', 'FAILING')),
    failure_reason      text,          -- why it is FAILING (the last attempt's outcome)
    failing_since       timestamptz,
    low_stock_threshold int NOT NULL DEFAULT 5 CHECK (low_stock_threshold BETWEEN 1 AND 100),
    -- One worker at a time delivers a subscription (ordering, and bounded concurrency per
    -- target); the lease expires by itself if that worker dies.
    lease_until         timestamptz,
    lease_token         uuid,
    created_by          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id, created_at DESC, id)
    WHERE deleted_at IS NULL;
CREATE INDEX webhook_subscriptions_active ON webhook_subscriptions (tenant_id)
    WHERE status = 'ACTIVE' AND deleted_at IS NULL;

CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),   -- the stable id receivers de-duplicate on
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    type        text NOT NULL,
    data        jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,                  -- per-subscription delivery order
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    subscription_id  uuid NOT NULL REFERENCES webhook_subscriptions(id),
    event_id         uuid NOT NULL REFERENCES webhook_events(id),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    retry_from       timestamptz NOT NULL DEFAULT now(),   -- start of the retry window
    last_attempt_at  timestamptz,
    response_status  int,
    duration_ms      int,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (subscription_id, id) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, id DESC);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'PENDING';  -- the log purge

-- Record event `p_type` for every ACTIVE subscription of the tenant that wants it; nothing at all
-- when none does. p_stock_old/new: for stock.low only, each subscription's own threshold decides.
CREATE FUNCTION webhook_capture(p_tenant uuid, p_type text, p_data jsonb,
                                p_stock_old int DEFAULT NULL, p_stock_new int DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_subscriptions s
                    WHERE s.tenant_id = p_tenant AND s.status = 'ACTIVE' AND s.deleted_at IS NULL
                      AND p_type = ANY (s.event_types)
                      AND (p_stock_old IS NULL OR (p_stock_old > s.low_stock_threshold
                                                   AND p_stock_new <= s.low_stock_threshold))) THEN
        RETURN;
    END IF;
    INSERT INTO webhook_events (tenant_id, type, data) VALUES (p_tenant, p_type, p_data) RETURNING id INTO v_event;
    WITH subs AS (
        SELECT s.id FROM webhook_subscriptions s
         WHERE s.tenant_id = p_tenant AND s.status = 'ACTIVE' AND s.deleted_at IS NULL
           AND p_type = ANY (s.event_types)
           AND (p_stock_old IS NULL OR (p_stock_old > s.low_stock_threshold AND p_stock_new <= s.low_stock_threshold))
    ), deliveries AS (
        INSERT INTO webhook_deliveries (tenant_id, subscription_id, event_id)
        SELECT p_tenant, subs.id, v_event FROM subs
    )
    INSERT INTO outbox (tenant_id, job, payload)
    SELECT p_tenant, 'deliver_webhooks', jsonb_build_object('subscription_id', subs.id::text) FROM subs;
END $$;

-- Orders: one event per status history row (the history is written in the transition's
-- transaction, by checkout and by every status change). PROCESSING has no event type.
CREATE FUNCTION webhook_order_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text := CASE NEW.status
        WHEN 'PENDING_PAYMENT' THEN 'order.created' WHEN 'PAID' THEN 'order.paid'
        WHEN 'CANCELLED' THEN 'order.cancelled' WHEN 'SHIPPED' THEN 'order.shipped'
        WHEN 'DELIVERED' THEN 'order.delivered' WHEN 'REFUNDED' THEN 'order.refunded' END;
    v_data jsonb;
BEGIN
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_build_object('orderId', o.id, 'orderNumber', o.order_number, 'status', NEW.status,
                              'paymentStatus', o.payment_status, 'total', o.total, 'currency', o.currency,
                              'note', NEW.note, 'changedAt', NEW.changed_at)
      INTO v_data FROM orders o WHERE o.id = NEW.order_id;
    -- Never fail the business transaction over the event's decoration.
    PERFORM webhook_capture(NEW.tenant_id, v_type,
                            coalesce(v_data, jsonb_build_object('orderId', NEW.order_id, 'status', NEW.status)));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_order_status AFTER INSERT ON order_status_history
    FOR EACH ROW EXECUTE FUNCTION webhook_order_status();

CREATE FUNCTION webhook_refund_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_capture(NEW.tenant_id,
        CASE WHEN TG_OP = 'INSERT' THEN 'refund.requested' ELSE 'refund.approved' END,
        jsonb_build_object('refundRequestId', NEW.id, 'orderId', NEW.order_id, 'status', NEW.status,
                           'reason', NEW.reason, 'requestedAmount', NEW.requested_amount,
                           'approvedAmount', NEW.approved_amount));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_refund_requested AFTER INSERT ON refund_requests
    FOR EACH ROW EXECUTE FUNCTION webhook_refund_request();
CREATE TRIGGER webhook_refund_approved AFTER UPDATE OF status ON refund_requests
    FOR EACH ROW WHEN (NEW.status = 'APPROVED' AND OLD.status IS DISTINCT FROM 'APPROVED')
    EXECUTE FUNCTION webhook_refund_request();

-- Products: only changes a client would call an edit; the summaries kept on the row (ratings,
-- units sold, stock_available) change on hot paths and are not product.updated.
CREATE FUNCTION webhook_product_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_capture(NEW.tenant_id, 'product.updated',
        jsonb_build_object('productId', NEW.id, 'sku', NEW.sku, 'name', NEW.name, 'slug', NEW.slug,
                           'price', NEW.price, 'compareAtPrice', NEW.compare_at_price, 'currency', NEW.currency,
                           'status', NEW.status, 'deleted', NEW.deleted_at IS NOT NULL));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_product_updated AFTER UPDATE ON products
    FOR EACH ROW WHEN ((OLD.name, OLD.slug, OLD.description, OLD.short_description, OLD.price, OLD.compare_at_price,
                        OLD.sku, OLD.status, OLD.category_id, OLD.attributes, OLD.tags, OLD.deleted_at)
                       IS DISTINCT FROM
                       (NEW.name, NEW.slug, NEW.description, NEW.short_description, NEW.price, NEW.compare_at_price,
                        NEW.sku, NEW.status, NEW.category_id, NEW.attributes, NEW.tags, NEW.deleted_at))
    EXECUTE FUNCTION webhook_product_updated();

-- Stock crossing a threshold downwards: stock.out at 0, stock.low at the subscription's threshold.
CREATE FUNCTION webhook_stock_level() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_data jsonb := jsonb_build_object('stockId', NEW.id, 'productId', NEW.product_id,
                                       'variantId', NEW.variant_id, 'available', NEW.available);
BEGIN
    IF NEW.available = 0 THEN
        PERFORM webhook_capture(NEW.tenant_id, 'stock.out', v_data);
    ELSE
        PERFORM webhook_capture(NEW.tenant_id, 'stock.low', v_data, OLD.available, NEW.available);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_stock_level AFTER UPDATE ON stock
    FOR EACH ROW WHEN (NEW.available < OLD.available AND NEW.available <= 100)
    EXECUTE FUNCTION webhook_stock_level();
