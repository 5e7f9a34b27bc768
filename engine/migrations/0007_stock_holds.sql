-- Stock holds: who a reserved unit belongs to between reserving it and writing the order.
--
-- The product actor's reservation transaction adds `quantity` to stock.reserved AND inserts one
-- hold per granted reservation, in one statement. The order transaction deletes its holds
-- (from then on order_items + orders.stock_state say where the units are); a checkout that
-- fails deletes its holds while giving the units back. So a hold that is still here long
-- after it was made belongs to a process that crashed in between, and the reconciler
-- (engine.stock.reclaim_orphaned_holds) deletes it and returns its units to available.
-- Deleting a hold is what gives its units back, exactly once: whoever deletes the row
-- (order, failed checkout, reconciler) owns the units, the others find nothing to delete.
-- The table only ever holds in-flight checkouts, so it stays tiny and cheap to insert into.
CREATE TABLE stock_holds (
    id          uuid PRIMARY KEY,            -- made by the reserving process, so it needs no RETURNING
    tenant_id   uuid NOT NULL,               -- the stock row's (no FK: the stock row already carries it)
    -- No foreign key: its per-row check doubled the cost of a flash-sale batch, and stock rows
    -- are never deleted (products are soft-deleted); the reconciler skips a hold whose stock
    -- row is gone.
    stock_id    uuid NOT NULL,
    quantity    int NOT NULL CHECK (quantity > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- No index on created_at either: the reconciler scans a table of in-flight checkouts every
-- tick, while every reservation would pay for the index entry.

-- Housekeeping deletes relayed outbox rows older than a day in batches; without this the
-- batch would scan the table.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
