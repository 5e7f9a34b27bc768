-- A customer holds at most MAX_UNPAID_ORDERS unpaid orders at once (issue 13: one customer
-- could hold every unit of a product in unpaid BANK_TRANSFER orders). Each unpaid order its
-- buyer places claims a numbered slot (1..limit) in the order's own statement. The primary key
-- makes two concurrent orders unable to take one slot, whichever process they run in; a slot
-- whose order is no longer PENDING_PAYMENT (paid, cancelled, expired) may be claimed again.
-- No trigger and no counter to keep in step with every status change: whether a slot is taken
-- is read from the order it names.
CREATE TABLE unpaid_order_slots (
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    slot       int NOT NULL CHECK (slot >= 1),
    order_id   uuid NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, slot)
);
