-- Where an order's units are: RESERVED from checkout, SOLD once paid, RELEASED when an unpaid
-- order ends (cancel, expiry), RETURNED when a paid order is cancelled. engine.stock moves the
-- units only together with a check-and-set of this column, so one order's units can never be
-- sold, released or returned twice, whichever paths ask (status change, job redelivery).
ALTER TABLE orders ADD COLUMN stock_state text NOT NULL DEFAULT 'RESERVED'
    CHECK (stock_state IN ('RESERVED', 'SOLD', 'RELEASED', 'RETURNED'));
