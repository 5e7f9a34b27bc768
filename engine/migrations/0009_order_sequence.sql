-- A tenant's order sequence is created with the tenant (a trigger; existing tenants get theirs
-- here), so numbering an order is a plain nextval: no plpgsql EXCEPTION block (which opened a
-- subtransaction on every call) and no race between a tenant's first orders to create it.
CREATE FUNCTION order_sequence_name(p_tenant uuid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'order_seq_' || replace(p_tenant::text, '-', '') $$;

CREATE FUNCTION create_order_sequence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', order_sequence_name(NEW.id));
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_order_sequence AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION create_order_sequence();

DO $$
DECLARE
    t uuid;
BEGIN
    FOR t IN SELECT id FROM tenants LOOP
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', order_sequence_name(t));
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION next_order_sequence(p_tenant uuid) RETURNS bigint
LANGUAGE sql AS $$ SELECT nextval(order_sequence_name(p_tenant)::regclass) $$;
