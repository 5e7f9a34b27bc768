-- Core schema: tenants, accounts, catalogue, stock, carts, orders, outbox.
-- Every tenant-owned row carries tenant_id; every query filters on it.
-- Money is numeric(12,2) in the currency's major unit, never a float.
-- gen_random_uuid() is built in since PostgreSQL 13; no extension is needed.


CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Order numbers come from a per-tenant sequence, never from a clock: nextval() takes no row
-- lock, so concurrent checkouts do not serialise on a counter row.
CREATE FUNCTION next_order_sequence(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    seq text := 'order_seq_' || replace(p_tenant::text, '-', '');
BEGIN
    RETURN nextval(seq);
EXCEPTION WHEN undefined_table THEN
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', seq);
    RETURN nextval(seq);
END $$;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    email         text NOT NULL,
    password_hash text NOT NULL,
    name          text NOT NULL DEFAULT '',
    avatar_url    text,
    role          text NOT NULL CHECK (role IN ('customer', 'partner', 'staff')),
    permissions   text[] NOT NULL DEFAULT '{}',
    kyc_status    text NOT NULL DEFAULT 'NONE' CHECK (kyc_status IN ('NONE', 'PENDING', 'VERIFIED', 'REJECTED')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, lower(email));

-- Partner money: the ledger is the history, the balance row makes a debit atomic
-- (UPDATE ... WHERE balance >= amount) and the CHECK makes a negative balance impossible.
CREATE TABLE partner_balances (
    user_id       uuid PRIMARY KEY REFERENCES users(id),
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    balance       numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    career_points numeric(12,2) NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partner_ledger (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    order_id    uuid,
    kind        text NOT NULL,   -- COMMISSION, COMMISSION_REVERSAL, PAYMENT, PAYMENT_REFUND, ADJUSTMENT
    amount      numeric(12,2) NOT NULL,
    points      numeric(12,2) NOT NULL DEFAULT 0,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- One entry of a kind per order: accruing a commission twice is impossible.
CREATE UNIQUE INDEX partner_ledger_once ON partner_ledger (user_id, order_id, kind) WHERE order_id IS NOT NULL;

CREATE TABLE categories (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    parent_id     uuid REFERENCES categories(id),
    name          text NOT NULL,
    slug          text NOT NULL,
    description   text,
    image_url     text,
    level         int NOT NULL DEFAULT 0,
    position      int NOT NULL DEFAULT 0,
    is_active     boolean NOT NULL DEFAULT true,
    product_count int NOT NULL DEFAULT 0 CHECK (product_count >= 0),  -- visible products directly in it
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX categories_parent ON categories (tenant_id, parent_id, position);

CREATE TABLE products (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL REFERENCES tenants(id),
    category_id              uuid REFERENCES categories(id),
    name                     text NOT NULL,
    slug                     text NOT NULL,
    description              text NOT NULL DEFAULT '',
    short_description        text,
    price                    numeric(12,2) NOT NULL CHECK (price >= 0),
    compare_at_price         numeric(12,2) CHECK (compare_at_price >= 0),
    currency                 text NOT NULL,
    sku                      text NOT NULL,
    status                   text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DRAFT', 'ARCHIVED')),
    track_inventory          boolean NOT NULL DEFAULT true,
    weight_grams             int CHECK (weight_grams >= 0),
    length_cm                numeric(8,2),
    width_cm                 numeric(8,2),
    height_cm                numeric(8,2),
    attributes               jsonb NOT NULL DEFAULT '{}',
    tags                     text[] NOT NULL DEFAULT '{}',
    commission_percentage    numeric(5,2) NOT NULL DEFAULT 0 CHECK (commission_percentage BETWEEN 0 AND 100),
    career_points_percentage numeric(5,2) NOT NULL DEFAULT 0 CHECK (career_points_percentage BETWEEN 0 AND 100),
    max_per_order            int CHECK (max_per_order > 0),
    -- Summaries kept in the same transaction as the rows they summarise.
    rating_count             int NOT NULL DEFAULT 0,
    rating_sum               int NOT NULL DEFAULT 0,
    rating_distribution      int[] NOT NULL DEFAULT '{0,0,0,0,0}',
    units_sold               int NOT NULL DEFAULT 0,
    stock_available          int NOT NULL DEFAULT 0,  -- denormalised sum over the product's stock rows, for sorting/filtering
    search_vector            tsvector GENERATED ALWAYS AS (
                                 setweight(to_tsvector('simple', coalesce(name, '')), 'A') ||
                                 setweight(to_tsvector('simple', coalesce(description, '')), 'B')) STORED,
    deleted_at               timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX products_tenant_sku ON products (tenant_id, sku) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_tenant_slug ON products (tenant_id, slug) WHERE deleted_at IS NULL;

CREATE TABLE product_images (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    product_id    uuid NOT NULL REFERENCES products(id),
    url           text NOT NULL,
    thumbnail_url text NOT NULL,
    alt           text,
    position      int NOT NULL DEFAULT 1,
    is_primary    boolean NOT NULL DEFAULT false
);
CREATE INDEX product_images_product ON product_images (product_id, position);

CREATE TABLE product_variants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    product_id  uuid NOT NULL REFERENCES products(id),
    name        text NOT NULL,
    sku         text NOT NULL,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    attributes  jsonb NOT NULL DEFAULT '{}',
    position    int NOT NULL DEFAULT 0,
    deleted_at  timestamptz
);
CREATE INDEX product_variants_product ON product_variants (product_id, position);
CREATE UNIQUE INDEX product_variants_tenant_sku ON product_variants (tenant_id, sku) WHERE deleted_at IS NULL;

-- Stock: one row per product without variants (variant_id NULL) or per variant.
-- on_hand = available + reserved + sold; the CHECKs make overselling impossible whatever the code does.
CREATE TABLE stock (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    product_id  uuid NOT NULL REFERENCES products(id),
    variant_id  uuid REFERENCES product_variants(id),
    on_hand     int NOT NULL CHECK (on_hand >= 0),
    reserved    int NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold        int NOT NULL DEFAULT 0 CHECK (sold >= 0),
    available   int GENERATED ALWAYS AS (on_hand - reserved - sold) STORED CHECK (available >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (product_id, variant_id)
);

CREATE TABLE reviews (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL REFERENCES tenants(id),
    product_id            uuid NOT NULL REFERENCES products(id),
    user_id               uuid NOT NULL REFERENCES users(id),
    rating                int NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title                 text,
    content               text NOT NULL,
    pros                  text[] NOT NULL DEFAULT '{}',
    cons                  text[] NOT NULL DEFAULT '{}',
    images                jsonb NOT NULL DEFAULT '[]',
    status                text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'PUBLISHED', 'REJECTED')),
    is_verified_purchaser boolean NOT NULL DEFAULT false,
    helpful_count         int NOT NULL DEFAULT 0 CHECK (helpful_count >= 0),
    response_content      text,
    responded_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz,
    UNIQUE (product_id, user_id)
);
CREATE INDEX reviews_product_published ON reviews (product_id, status, created_at DESC, id);

CREATE TABLE review_helpful (
    review_id  uuid NOT NULL REFERENCES reviews(id),
    user_id    uuid NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, user_id)
);

CREATE TABLE addresses (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    user_id        uuid NOT NULL REFERENCES users(id),
    recipient_name text NOT NULL,
    street         text NOT NULL,
    city           text NOT NULL,
    region         text NOT NULL DEFAULT '',
    country        text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    postal_code    text NOT NULL,
    phone          text,
    is_default     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);
CREATE INDEX addresses_user ON addresses (user_id) WHERE deleted_at IS NULL;

CREATE TABLE coupons (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    code           text NOT NULL CHECK (code = upper(code)),
    kind           text NOT NULL CHECK (kind IN ('PERCENTAGE', 'FIXED')),
    value          numeric(12,2) NOT NULL CHECK (value > 0),
    starts_at      timestamptz,
    ends_at        timestamptz,
    min_order      numeric(12,2),
    usage_limit    int CHECK (usage_limit > 0),
    used_count     int NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    per_user_limit int CHECK (per_user_limit > 0),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, code),
    CHECK (kind <> 'PERCENTAGE' OR value <= 100),
    CHECK (usage_limit IS NULL OR used_count <= usage_limit)
);

CREATE TABLE shipping_methods (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    name           text NOT NULL,
    carrier        text NOT NULL,
    description    text,
    min_days       int NOT NULL CHECK (min_days >= 0),
    max_days       int NOT NULL,
    currency       text NOT NULL,
    free_threshold numeric(12,2),
    zones          jsonb NOT NULL DEFAULT '[]',         -- [{"countries": ["RU"], "postalRanges": [["100000","199999"]]}]
    weight_bands   jsonb NOT NULL DEFAULT '[]',         -- [{"maxGrams": 1000, "price": "350.00"}, {"maxGrams": null, ...}]
    active         boolean NOT NULL DEFAULT true,
    position       int NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (max_days >= min_days)
);

CREATE TABLE carts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    user_id     uuid NOT NULL UNIQUE REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    cart_id     uuid NOT NULL REFERENCES carts(id),
    product_id  uuid NOT NULL REFERENCES products(id),
    variant_id  uuid REFERENCES product_variants(id),
    quantity    int NOT NULL CHECK (quantity > 0),
    added_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (cart_id, product_id, variant_id)
);

CREATE TABLE cart_coupons (
    cart_id    uuid NOT NULL REFERENCES carts(id),
    coupon_id  uuid NOT NULL REFERENCES coupons(id),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, coupon_id)
);

CREATE TABLE orders (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants(id),
    user_id            uuid NOT NULL REFERENCES users(id),
    order_number       text NOT NULL,
    status             text NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'PROCESSING', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'REFUNDED')),
    payment_status     text NOT NULL DEFAULT 'PENDING' CHECK (payment_status IN ('PENDING', 'PAID', 'FAILED', 'REFUNDED')),
    payment_method     text NOT NULL CHECK (payment_method IN ('CARD', 'BANK_TRANSFER', 'EWALLET', 'BALANCE')),
    currency           text NOT NULL,
    subtotal           numeric(12,2) NOT NULL,
    discount           numeric(12,2) NOT NULL DEFAULT 0,
    shipping           numeric(12,2) NOT NULL DEFAULT 0,
    tax                numeric(12,2) NOT NULL DEFAULT 0,
    total              numeric(12,2) NOT NULL CHECK (total >= 0),
    refunded_amount    numeric(12,2) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    shipping_address   jsonb NOT NULL,   -- snapshot at checkout
    billing_address    jsonb,
    shipping_method_id uuid REFERENCES shipping_methods(id),
    shipping_method    jsonb NOT NULL,   -- snapshot: name, carrier, estimatedDelivery
    applied_coupons    jsonb NOT NULL DEFAULT '[]',
    notes              text,
    transaction_id     text,
    expires_at         timestamptz,
    paid_at            timestamptz,
    shipped_at         timestamptz,
    delivered_at       timestamptz,
    cancelled_at       timestamptz,
    cancel_reason      text,
    carrier            text,
    tracking_number    text,
    tracking_url       text,
    estimated_delivery date,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, order_number),
    CHECK (refunded_amount <= total)
);
CREATE INDEX orders_user_created ON orders (tenant_id, user_id, created_at DESC, id);
CREATE INDEX orders_tenant_created ON orders (tenant_id, created_at DESC, id);
CREATE INDEX orders_pending_expiry ON orders (expires_at) WHERE status = 'PENDING_PAYMENT';

CREATE TABLE order_items (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL REFERENCES tenants(id),
    order_id                 uuid NOT NULL REFERENCES orders(id),
    product_id               uuid NOT NULL REFERENCES products(id),
    variant_id               uuid REFERENCES product_variants(id),
    stock_id                 uuid REFERENCES stock(id),
    product_name             text NOT NULL,
    sku                      text NOT NULL,
    thumbnail_url            text,
    variant_attributes       jsonb,
    quantity                 int NOT NULL CHECK (quantity > 0),
    unit_price               numeric(12,2) NOT NULL,
    total_price              numeric(12,2) NOT NULL,
    commission_percentage    numeric(5,2) NOT NULL DEFAULT 0,
    career_points_percentage numeric(5,2) NOT NULL DEFAULT 0,
    refunded_quantity        int NOT NULL DEFAULT 0 CHECK (refunded_quantity >= 0 AND refunded_quantity <= quantity)
);
CREATE INDEX order_items_order ON order_items (order_id);
CREATE INDEX order_items_product ON order_items (product_id);

CREATE TABLE order_status_history (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    order_id    uuid NOT NULL REFERENCES orders(id),
    status      text NOT NULL,
    note        text,
    changed_by  text,            -- 'user:<id>', 'apikey:<id>', 'system:<job>'
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, id);

CREATE TABLE coupon_redemptions (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    coupon_id   uuid NOT NULL REFERENCES coupons(id),
    user_id     uuid NOT NULL REFERENCES users(id),
    order_id    uuid NOT NULL REFERENCES orders(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (coupon_id, order_id)
);
CREATE INDEX coupon_redemptions_user ON coupon_redemptions (coupon_id, user_id);

-- A retried request with the same key returns the first response byte for byte.
CREATE TABLE idempotency_keys (
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    scope          text NOT NULL,          -- 'user:<id>' or 'apikey:<id>'
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    response_status int,
    response_body  bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Transactional outbox: written in the transaction that caused it, relayed to the broker after.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants(id),
    job         text NOT NULL,          -- Dramatiq actor name
    payload     jsonb NOT NULL,         -- ids only
    not_before  timestamptz NOT NULL DEFAULT now(),  -- delayed jobs (payment expiry)
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

INSERT INTO tenants (slug, name) VALUES ('default', 'Default shop');
