-- Personalised pricing: price lists for customer groups (partners, wholesale, ...).
-- A customer group is a name; staff put users in groups and give a group price lists with a
-- validity window and per-product or per-variant prices.
--
-- `buyer_price` is THE rule, in one place, used by the catalogue, the cart and the checkout, so
-- the price a signed-in buyer sees is the price charged:
--   among the active lists (starts_at <= at < ends_at, either end open) of the buyer's groups,
--   an entry for the exact variant beats an entry for the whole product, and among entries
--   equally specific the lowest price wins; no entry (or no buyer): the list price.

CREATE TABLE customer_group_members (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    group_name  text NOT NULL CHECK (length(group_name) BETWEEN 1 AND 100),
    user_id     uuid NOT NULL REFERENCES users(id),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_name)
);
CREATE INDEX customer_group_members_group ON customer_group_members (tenant_id, group_name);

CREATE TABLE price_lists (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    name            text NOT NULL,
    customer_group  text NOT NULL CHECK (length(customer_group) BETWEEN 1 AND 100),
    starts_at       timestamptz,
    ends_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX price_lists_group ON price_lists (tenant_id, customer_group);

CREATE TABLE price_list_items (
    price_list_id  uuid NOT NULL REFERENCES price_lists(id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES tenants(id),
    product_id     uuid NOT NULL REFERENCES products(id),
    variant_id     uuid REFERENCES product_variants(id),
    price          numeric(12,2) NOT NULL CHECK (price >= 0),
    UNIQUE NULLS NOT DISTINCT (price_list_id, product_id, variant_id)
);
CREATE INDEX price_list_items_product ON price_list_items (product_id, price_list_id);

CREATE FUNCTION buyer_price(p_tenant uuid, p_user uuid, p_product uuid, p_variant uuid, p_list numeric,
                            p_at timestamptz) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT i.price
          FROM customer_group_members m
          JOIN price_lists l ON l.tenant_id = m.tenant_id AND l.customer_group = m.group_name
          JOIN price_list_items i ON i.price_list_id = l.id
         WHERE p_user IS NOT NULL AND m.user_id = p_user AND m.tenant_id = p_tenant
           AND i.product_id = p_product AND (i.variant_id = p_variant OR i.variant_id IS NULL)
           AND (l.starts_at IS NULL OR l.starts_at <= p_at) AND (l.ends_at IS NULL OR p_at < l.ends_at)
         ORDER BY i.variant_id IS NULL, i.price
         LIMIT 1), p_list)
$$;
