-- A product actor's whole batch of reservations in one statement: lock the stock row, admit the
-- reservations first come first served while they fit (a large one that does not fit does not
-- stop a smaller one behind it), raise stock.reserved by their sum with a conditional UPDATE,
-- and record one hold per admitted reservation (migration 0007). Called as one statement, it
-- is one transaction and one round trip, so the row lock is held for the work alone, never
-- across a round trip to the API process. A missing stock row admits nothing.
-- Returns, per reservation in the order given, whether it was admitted, and the units still
-- available afterwards.
CREATE FUNCTION reserve_stock(p_stock uuid, p_holds uuid[], p_quantities int[],
                              OUT granted boolean[], OUT left_over int)
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
    v_available int;
    v_total int := 0;
    i int;
BEGIN
    granted := '{}';
    SELECT tenant_id, available INTO v_tenant, v_available FROM stock WHERE id = p_stock FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        v_available := 0;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_quantities, 1), 0) LOOP
        IF v_tenant IS NOT NULL AND p_quantities[i] > 0 AND p_quantities[i] <= v_available - v_total THEN
            granted := granted || true;
            v_total := v_total + p_quantities[i];
        ELSE
            granted := granted || false;
        END IF;
    END LOOP;
    IF v_total > 0 THEN
        -- Still conditional: the row lock makes it certain, the condition makes it obvious.
        UPDATE stock SET reserved = reserved + v_total, updated_at = now()
         WHERE id = p_stock AND available >= v_total;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stock % changed under its row lock', p_stock;
        END IF;
        INSERT INTO stock_holds (id, tenant_id, stock_id, quantity, created_at)
        SELECT h.id, v_tenant, p_stock, h.q, clock_timestamp()
          FROM unnest(p_holds, p_quantities, granted) AS h(id, q, ok)
         WHERE h.ok;
    END IF;
    left_over := v_available - v_total;
END $$;
