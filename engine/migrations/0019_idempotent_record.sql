-- The stored idempotent answer of an order is a record, not pre-rendered bytes (issue 16).
--
-- Until now web rendered checkout's response before the order statement, with a marker where
-- the order number would go, and the statement substituted the number into those bytes: the
-- engine called back into web mid-transaction. Now the statement stores the order's answer as
-- data (engine.checkout.PlacedOrder as JSON, `response_kind` naming its type) with the number it
-- assigned filled in, and web renders the HTTP body from that record, for the first answer and
-- for every replay alike. Rows of other requests (cancel, refund) keep their bytes in
-- response_body; a row has one or the other.
ALTER TABLE idempotency_keys ADD COLUMN response_kind text, ADD COLUMN response_record jsonb;

-- And the statement claims the key itself (issue 14): no claim round trip before checkout. Per
-- keyed order, before anything else, it inserts the key's row; the primary key
-- (tenant_id, scope, key) is the unique constraint that catches a duplicate from another
-- process (the user actor already serialises one user's requests within a process). ON CONFLICT
-- takes over only a row that expired or whose owner died (lease over, no answer), like
-- engine.idempotency.claim; a live row makes this order fail alone (key_ok false: nothing of it
-- written, the caller gives its units back and answers from that row), and a concurrent insert of
-- the same key waits for the other transaction, then sees its row. An order that claimed its key
-- and then failed a check deletes the row again, in the same call, so a corrected retry runs.

DROP FUNCTION place_orders(jsonb);
-- As in migration 0013, but the answer is stored as a record (above).
CREATE FUNCTION place_orders(p_orders jsonb)
RETURNS TABLE (n int, holds_ok boolean, cart_ok boolean, coupons_ok boolean, slot_ok boolean, order_number text,
               stored boolean, key_ok boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    o record;
    claimed boolean;
BEGIN
    FOR o IN SELECT (e.ord - 1)::int AS n, x.*
               FROM jsonb_array_elements(p_orders) WITH ORDINALITY AS e(doc, ord),
                    jsonb_to_record(e.doc) AS x(
                 order_id uuid, tenant_id uuid, user_id uuid, year text, holds uuid[], coupon_ids uuid[],
                 cart_id uuid, cart_version int, payment_method text, currency text, subtotal numeric,
                 discount numeric, shipping numeric, tax numeric, total numeric, shipping_address jsonb,
                 billing_address jsonb, shipping_method_id uuid, shipping_method jsonb, applied_coupons jsonb,
                 notes text, expires_at timestamptz, estimated_delivery date, created_at timestamptz,
                 changed_by text, expiry_job text, items jsonb, response_status int, response_kind text,
                 response_record jsonb, response_scope text, response_key text, unpaid_limit int,
                 request_hash text, key_ttl float8, key_lease float8)
              ORDER BY e.ord
    LOOP
        n := o.n;
        claimed := NULL;
        IF o.response_key IS NOT NULL THEN
            INSERT INTO idempotency_keys AS k (tenant_id, scope, key, request_hash, expires_at)
            VALUES (o.tenant_id, o.response_scope, o.response_key, decode(o.request_hash, 'hex'),
                    now() + make_interval(secs => o.key_ttl))
            ON CONFLICT (tenant_id, scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
                   expires_at = EXCLUDED.expires_at, created_at = now(), response_status = NULL,
                   response_body = NULL, response_kind = NULL, response_record = NULL
             WHERE k.expires_at <= now()
                OR (k.response_status IS NULL AND k.created_at < now() - make_interval(secs => o.key_lease))
            RETURNING true INTO claimed;
            IF claimed IS NULL THEN  -- another request holds the key: this order writes nothing
                holds_ok := NULL; cart_ok := NULL; coupons_ok := NULL; slot_ok := NULL;
                order_number := NULL; stored := false; key_ok := false;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        key_ok := true;
        WITH held AS (SELECT id FROM stock_holds WHERE id = ANY(o.holds) ORDER BY id FOR UPDATE),
             holds_ok AS (SELECT (SELECT count(*) FROM held) = cardinality(o.holds) AS ok),
             cart AS (UPDATE carts SET version = version + 1, updated_at = now()
                       WHERE id = o.cart_id AND version = o.cart_version AND (SELECT ok FROM holds_ok) RETURNING id),
             cart_ok AS (SELECT (SELECT ok FROM holds_ok) AND (o.cart_id IS NULL OR EXISTS (SELECT 1 FROM cart)) AS ok),
             usable AS (SELECT c.id FROM coupons c
                         WHERE c.id = ANY(o.coupon_ids) AND (SELECT ok FROM cart_ok) AND c.active
                           AND (c.usage_limit IS NULL OR c.used_count < c.usage_limit)
                           AND (c.per_user_limit IS NULL OR c.per_user_limit >
                                (SELECT count(*) FROM coupon_redemptions r WHERE r.coupon_id = c.id AND r.user_id = o.user_id))
                         ORDER BY c.id FOR UPDATE),
             coupons_ok AS (SELECT (SELECT count(*) FROM usable) = cardinality(o.coupon_ids) AS ok),
             checked AS (SELECT 1 AS one WHERE (SELECT ok FROM cart_ok) AND (SELECT ok FROM coupons_ok)),
             -- With a limit on unpaid orders (NULL for none): one of the buyer's numbered slots
             -- (migration 0011), free when absent or when its order is no longer unpaid; its
             -- primary key keeps two concurrent orders from sharing a slot.
             free_slot AS (SELECT s FROM generate_series(1, o.unpaid_limit) s
                            WHERE EXISTS (SELECT 1 FROM checked)
                              AND NOT EXISTS (SELECT 1 FROM unpaid_order_slots u WHERE u.user_id = o.user_id AND u.slot = s
                                                 AND NOT EXISTS (SELECT 1 FROM orders x WHERE x.id = u.order_id
                                                                   AND x.status <> 'PENDING_PAYMENT'))
                            ORDER BY s LIMIT 1),
             slot AS (INSERT INTO unpaid_order_slots (user_id, slot, order_id) SELECT o.user_id, s, o.order_id FROM free_slot
                      ON CONFLICT (user_id, slot) DO UPDATE SET order_id = EXCLUDED.order_id, claimed_at = now()
                       WHERE EXISTS (SELECT 1 FROM orders x WHERE x.id = unpaid_order_slots.order_id
                                       AND x.status <> 'PENDING_PAYMENT')
                      RETURNING 1),
             slot_ok AS (SELECT o.unpaid_limit IS NULL OR EXISTS (SELECT 1 FROM slot) AS ok),
             go AS (SELECT 1 AS one FROM checked WHERE (SELECT ok FROM slot_ok)),
             consumed AS (DELETE FROM stock_holds WHERE id IN (SELECT id FROM held) AND EXISTS (SELECT 1 FROM go)),
             counted AS (UPDATE coupons SET used_count = used_count + 1
                          WHERE id IN (SELECT id FROM usable) AND EXISTS (SELECT 1 FROM go)),
             numbered AS (SELECT next_order_sequence(o.tenant_id)::text AS num FROM go),
             placed AS (
                INSERT INTO orders (id, tenant_id, user_id, order_number, status, payment_method, currency, subtotal,
                                    discount, shipping, tax, total, shipping_address, billing_address,
                                    shipping_method_id, shipping_method, applied_coupons, notes, expires_at,
                                    estimated_delivery, created_at, updated_at)
                SELECT o.order_id, o.tenant_id, o.user_id, 'ORD-' || o.year || '-' || lpad(num, greatest(8, length(num)), '0'),
                       'PENDING_PAYMENT', o.payment_method, o.currency, o.subtotal, o.discount, o.shipping, o.tax,
                       o.total, o.shipping_address, o.billing_address, o.shipping_method_id, o.shipping_method,
                       o.applied_coupons, o.notes, o.expires_at, o.estimated_delivery, o.created_at, o.created_at
                  FROM numbered RETURNING id, order_number),
             items AS (
                INSERT INTO order_items (tenant_id, order_id, product_id, variant_id, stock_id, product_name, sku,
                                         thumbnail_url, variant_attributes, quantity, unit_price, total_price,
                                         commission_percentage, career_points_percentage)
                SELECT o.tenant_id, p.id, i.product_id, i.variant_id, i.stock_id, i.product_name, i.sku,
                       i.thumbnail_url, i.variant_attributes, i.quantity, i.unit_price, i.unit_price * i.quantity,
                       i.commission_percentage, i.career_points_percentage
                  FROM placed p, jsonb_to_recordset(o.items) AS i(
                       product_id uuid, variant_id uuid, stock_id uuid, product_name text, sku text, thumbnail_url text,
                       variant_attributes jsonb, quantity int, unit_price numeric, commission_percentage numeric,
                       career_points_percentage numeric)),
             history AS (INSERT INTO order_status_history (tenant_id, order_id, status, note, changed_by)
                         SELECT o.tenant_id, id, 'PENDING_PAYMENT', NULL, o.changed_by FROM placed),
             redeemed AS (INSERT INTO coupon_redemptions (tenant_id, coupon_id, user_id, order_id)
                          SELECT o.tenant_id, u.id, o.user_id, p.id FROM placed p, usable u),
             queued AS (INSERT INTO outbox (tenant_id, job, payload, not_before)
                        SELECT o.tenant_id, o.expiry_job, jsonb_build_object('order_id', id::text), o.expires_at
                          FROM placed WHERE o.expires_at IS NOT NULL),
             uncouponed AS (DELETE FROM cart_coupons WHERE cart_id = (SELECT id FROM cart) AND EXISTS (SELECT 1 FROM go)),
             emptied AS (DELETE FROM cart_items WHERE cart_id = (SELECT id FROM cart) AND EXISTS (SELECT 1 FROM go)),
             stored AS (UPDATE idempotency_keys k
                           SET response_status = o.response_status, response_kind = o.response_kind,
                               response_record = jsonb_set(o.response_record, '{order_number}',
                                                           to_jsonb((SELECT order_number FROM placed)))
                         WHERE k.tenant_id = o.tenant_id AND k.scope = o.response_scope AND k.key = o.response_key
                           AND k.response_status IS NULL AND o.response_key IS NOT NULL
                           AND EXISTS (SELECT 1 FROM placed) RETURNING 1)
        SELECT (SELECT ok FROM holds_ok), (SELECT ok FROM cart_ok), (SELECT ok FROM coupons_ok),
               (SELECT ok FROM slot_ok), (SELECT order_number FROM placed), EXISTS (SELECT 1 FROM stored)
          INTO holds_ok, cart_ok, coupons_ok, slot_ok, order_number, stored;
        IF claimed AND order_number IS NULL THEN  -- a check failed: give the key up again
            DELETE FROM idempotency_keys k
             WHERE k.tenant_id = o.tenant_id AND k.scope = o.response_scope AND k.key = o.response_key
               AND k.response_status IS NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
