-- Every cart write bumps carts.version under the cart row lock. Checkout writes its order only
-- while the version is still the one it priced: one conditional UPDATE inside the order's single
-- statement, instead of locking the cart and reading it all again in a longer transaction.
ALTER TABLE carts ADD COLUMN version bigint NOT NULL DEFAULT 0;
