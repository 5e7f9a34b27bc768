-- The product summary leaves the reservation's hot path (issue 14).
--
-- Until now every UPDATE of a stock row fired `stock_summary_update`, which rewrote the wide
-- products row. stock_available sits in three of that row's 13 indexes, so the rewrite was never
-- a HOT update: a one-row conditional `reserved = reserved + 1` ran at ~0.3 of the rate of the
-- same UPDATE on a bare table (pgbench, 64 clients). Reservations and their releases change
-- only `reserved`; they are the hot path, and listing-by-stock can live with a bounded lag there.
--
-- Now:
--   * on_hand or sold changed (restock, stock correction, sale, return): products follow in the
--     same transaction, by deltas, exactly as before (row-level, only when those moved);
--   * only reserved changed (reserve, release, expiry, cancel of an unpaid order, reclaim):
--     the product is marked in `stock_summary_dirty`, and a refresher
--     (engine.stock_summary.refresh) recomputes products.stock_available from its stock rows
--     every STOCK_SUMMARY_INTERVAL_MS. Marking locks the product's dirty row (ON CONFLICT DO
--     UPDATE ... WHERE false locks without writing) so a refresher that deletes the mark waits
--     for that transaction and then sees its change: no change is ever left unmarked.
--   The mark costs an index probe and a tuple lock; the stock row itself stays a HOT update.
-- units_sold moves only with `sold`, so it stays exact and synchronous.

CREATE TABLE stock_summary_dirty (
    product_id uuid PRIMARY KEY
);

DROP TRIGGER stock_summary_update ON stock;

CREATE FUNCTION stock_after_update_exact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products p
       SET stock_available = p.stock_available + (NEW.available - OLD.available),
           units_sold = p.units_sold + (NEW.sold - OLD.sold)
     WHERE p.id = NEW.product_id;
    RETURN NULL;
END $$;

CREATE FUNCTION stock_after_update_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stock_summary_dirty (product_id) VALUES (NEW.product_id)
        ON CONFLICT (product_id) DO UPDATE SET product_id = EXCLUDED.product_id WHERE false;
    RETURN NULL;
END $$;

CREATE TRIGGER stock_summary_exact AFTER UPDATE OF on_hand, sold ON stock FOR EACH ROW
    WHEN (OLD.on_hand <> NEW.on_hand OR OLD.sold <> NEW.sold)
    EXECUTE FUNCTION stock_after_update_exact();
CREATE TRIGGER stock_summary_mark AFTER UPDATE OF reserved ON stock FOR EACH ROW
    WHEN (OLD.reserved <> NEW.reserved AND OLD.on_hand = NEW.on_hand AND OLD.sold = NEW.sold)
    EXECUTE FUNCTION stock_after_update_mark();

-- Units coming back (available went up) wake the product actors' sold-out memory in every
-- process (engine.stock_signals): one NOTIFY per row whose available rose. Reservations lower
-- available and never notify, so the hot path pays nothing for it.
CREATE FUNCTION stock_after_update_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stock_up', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER stock_up_notify AFTER UPDATE ON stock FOR EACH ROW
    WHEN (NEW.available > OLD.available)
    EXECUTE FUNCTION stock_after_update_notify();
