-- Catalogue: indexes for every list / search / filter / sort of products, categories and
-- reviews, and the triggers that keep the denormalised summaries consistent in the same
-- transaction as the rows they summarise:
--   products.stock_available   = sum of its stock rows' available   (stock triggers)
--   products.units_sold        += change of its stock rows' sold     (stock triggers; "popularity")
--   categories.product_count   = visible products directly in it     (products triggers)
--   products.rating_*          = its PUBLISHED reviews               (reviews trigger)
-- Every summary moves by deltas (x = x + d), never by re-reading a sum: concurrent writers
-- then commute under the row lock instead of overwriting each other's totals.

-- ----------------------------------------------------------------------------- product indexes
-- Customers see `deleted_at IS NULL AND status = 'ACTIVE'`; staff filter on the other statuses.
-- (tenant_id, status, <sort key>, id) serves "one status, ordered by key, id tie-break" as a
-- plain ordered index scan in either direction, and a count as an index-only scan.
CREATE INDEX products_by_created    ON products (tenant_id, status, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_by_price      ON products (tenant_id, status, price, id) WHERE deleted_at IS NULL;
CREATE INDEX products_by_name       ON products (tenant_id, status, name, id) WHERE deleted_at IS NULL;
CREATE INDEX products_by_popularity ON products (tenant_id, status, units_sold, id) WHERE deleted_at IS NULL;
CREATE INDEX products_by_stock      ON products (tenant_id, status, stock_available, id) INCLUDE (track_inventory)
    WHERE deleted_at IS NULL;
-- Category pages and the category filter (a category and its descendants: category_id = ANY).
-- It covers every sort key and the stock columns, so a category page's ids come from an
-- index-only scan plus a top-N sort, however large the category (see listing.page_query).
CREATE INDEX products_by_category   ON products (tenant_id, category_id, status, price, id)
    INCLUDE (name, created_at, units_sold, stock_available, track_inventory) WHERE deleted_at IS NULL;
-- The derived OUT_OF_STOCK status is a small slice: its own partial index.
CREATE INDEX products_out_of_stock  ON products (tenant_id, created_at, id)
    WHERE deleted_at IS NULL AND status = 'ACTIVE' AND track_inventory AND stock_available = 0;
-- Staff listings that include deleted products.
CREATE INDEX products_all_by_created ON products (tenant_id, created_at, id);
-- Full-text search and the tag filter (`tags @> ARRAY[...]`).
CREATE INDEX products_search ON products USING gin (search_vector);
CREATE INDEX products_tags   ON products USING gin (tags);

CREATE INDEX product_variants_product_live ON product_variants (product_id, position, id) WHERE deleted_at IS NULL;

-- ----------------------------------------------------------------------------- review indexes
CREATE INDEX reviews_product_rating  ON reviews (product_id, status, rating, id);
CREATE INDEX reviews_product_helpful ON reviews (product_id, status, helpful_count, id);
CREATE INDEX reviews_moderation      ON reviews (tenant_id, status, created_at, id);
-- "Has this user a delivered order containing the product?" (the verified-purchase rule).
CREATE INDEX orders_user_status ON orders (user_id, status);

-- ----------------------------------------------------------------------------- stock -> products
-- Statement-level with transition tables, so a bulk COPY of 100 000 stock rows costs one
-- grouped UPDATE, and a reservation batch touching many rows one UPDATE per product.
CREATE FUNCTION stock_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products p
       SET stock_available = p.stock_available + d.available,
           units_sold = p.units_sold + d.sold
      FROM (SELECT product_id, sum(available)::int AS available, sum(sold)::int AS sold
              FROM new_rows GROUP BY product_id) d
     WHERE p.id = d.product_id;
    RETURN NULL;
END $$;

CREATE FUNCTION stock_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- new minus old, summed per product: a UNION ALL and a GROUP BY, never a join of the two
    -- transition tables (they have no statistics, and a nested loop over them is quadratic).
    UPDATE products p
       SET stock_available = p.stock_available + d.available,
           units_sold = p.units_sold + d.sold
      FROM (SELECT product_id, sum(available)::int AS available, sum(sold)::int AS sold
              FROM (SELECT product_id, available, sold FROM new_rows
                    UNION ALL
                    SELECT product_id, -available, -sold FROM old_rows) x
             GROUP BY product_id
            HAVING sum(available) <> 0 OR sum(sold) <> 0) d
     WHERE p.id = d.product_id;
    RETURN NULL;
END $$;

CREATE FUNCTION stock_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products p
       SET stock_available = p.stock_available - d.available
      FROM (SELECT product_id, sum(available)::int AS available FROM old_rows GROUP BY product_id) d
     WHERE p.id = d.product_id;
    RETURN NULL;
END $$;

CREATE TRIGGER stock_summary_insert AFTER INSERT ON stock
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION stock_after_insert();
CREATE TRIGGER stock_summary_update AFTER UPDATE ON stock
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION stock_after_update();
CREATE TRIGGER stock_summary_delete AFTER DELETE ON stock
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION stock_after_delete();

-- ----------------------------------------------------------------------------- products -> categories
-- categories.product_count counts visible products (not deleted, stored status ACTIVE)
-- directly in the category; the API adds descendants up when it shows a subtree.
CREATE FUNCTION products_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE categories c SET product_count = c.product_count + d.n
      FROM (SELECT category_id, count(*)::int AS n FROM new_rows
             WHERE category_id IS NOT NULL AND deleted_at IS NULL AND status = 'ACTIVE'
             GROUP BY category_id) d
     WHERE c.id = d.category_id;
    RETURN NULL;
END $$;

CREATE FUNCTION products_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Most product updates (stock, ratings, prices) do not move visibility: skip cheaply.
    -- (A set difference, not a join: see stock_after_update.)
    IF NOT EXISTS (
        SELECT id, category_id, status, deleted_at IS NULL FROM new_rows
        EXCEPT ALL
        SELECT id, category_id, status, deleted_at IS NULL FROM old_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE categories c SET product_count = c.product_count + d.n
      FROM (SELECT category_id, sum(n)::int AS n FROM (
                SELECT category_id, 1 AS n FROM new_rows
                 WHERE category_id IS NOT NULL AND deleted_at IS NULL AND status = 'ACTIVE'
                UNION ALL
                SELECT category_id, -1 FROM old_rows
                 WHERE category_id IS NOT NULL AND deleted_at IS NULL AND status = 'ACTIVE') x
             GROUP BY category_id HAVING sum(n) <> 0) d
     WHERE c.id = d.category_id;
    RETURN NULL;
END $$;

CREATE FUNCTION products_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE categories c SET product_count = c.product_count - d.n
      FROM (SELECT category_id, count(*)::int AS n FROM old_rows
             WHERE category_id IS NOT NULL AND deleted_at IS NULL AND status = 'ACTIVE'
             GROUP BY category_id) d
     WHERE c.id = d.category_id;
    RETURN NULL;
END $$;

CREATE TRIGGER products_category_count_insert AFTER INSERT ON products
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION products_after_insert();
CREATE TRIGGER products_category_count_update AFTER UPDATE ON products
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION products_after_update();
CREATE TRIGGER products_category_count_delete AFTER DELETE ON products
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION products_after_delete();

-- ----------------------------------------------------------------------------- reviews -> products
-- Only PUBLISHED reviews count. Row-level: reviews arrive one at a time.
CREATE FUNCTION reviews_rating_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'PUBLISHED' THEN
        UPDATE products SET rating_count = rating_count - 1,
                            rating_sum = rating_sum - OLD.rating,
                            rating_distribution[OLD.rating] = rating_distribution[OLD.rating] - 1
         WHERE id = OLD.product_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'PUBLISHED' THEN
        UPDATE products SET rating_count = rating_count + 1,
                            rating_sum = rating_sum + NEW.rating,
                            rating_distribution[NEW.rating] = rating_distribution[NEW.rating] + 1
         WHERE id = NEW.product_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER reviews_rating_summary AFTER INSERT OR DELETE OR UPDATE OF status, rating, product_id ON reviews
    FOR EACH ROW EXECUTE FUNCTION reviews_rating_summary();
