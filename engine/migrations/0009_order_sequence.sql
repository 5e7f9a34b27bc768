-- next_order_sequence without an exception block: a plpgsql EXCEPTION clause opens a
-- subtransaction on every call, and every order calls it. The sequence is created on a
-- tenant's first order; two first orders racing to create it make one statement fail with a
-- unique violation, which the checkout retries.
CREATE OR REPLACE FUNCTION next_order_sequence(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    seq text := 'order_seq_' || replace(p_tenant::text, '-', '');
BEGIN
    IF to_regclass(seq) IS NULL THEN
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', seq);
    END IF;
    RETURN nextval(seq);
END $$;
