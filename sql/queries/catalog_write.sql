-- Upserts used by `catalog load`. Each returns the owner of the row it touched, so a file
-- cannot move a key, buyer or period from one merchant to another by reusing its id.

-- name: upsert_merchant
-- Update first and insert only a merchant that is new: INSERT .. ON CONFLICT fires the
-- BEFORE INSERT trigger even when it ends in an update, which would leave a new, unused
-- order-number sequence behind on every re-load.
WITH updated AS (
    UPDATE merchants
       SET name = $2, default_currency = $3, order_prefix = $4
     WHERE code = $1
 RETURNING id
), inserted AS (
    INSERT INTO merchants (code, name, default_currency, order_prefix)
    SELECT $1, $2, $3, $4
     WHERE NOT EXISTS (SELECT FROM updated)
    ON CONFLICT (code) DO UPDATE
       SET name = EXCLUDED.name, default_currency = EXCLUDED.default_currency,
           order_prefix = EXCLUDED.order_prefix
    RETURNING id
)
SELECT id FROM updated
UNION ALL
SELECT id FROM inserted;

-- name: upsert_merchant_settings
INSERT INTO merchant_settings (merchant_id, precheck_autocharge_desktop,
                               precheck_autocharge_mobile, payment_page_url, default_host)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (merchant_id) DO UPDATE
   SET precheck_autocharge_desktop = EXCLUDED.precheck_autocharge_desktop,
       precheck_autocharge_mobile = EXCLUDED.precheck_autocharge_mobile,
       payment_page_url = EXCLUDED.payment_page_url, default_host = EXCLUDED.default_host;

-- name: upsert_merchant_key
-- A status left out ($4 null) is 'active' for a new key and unchanged for a stored one: a
-- revoked key comes back only when a file says so.
INSERT INTO merchant_keys AS k (public_key, merchant_id, secret, status)
VALUES ($1, $2, $3, COALESCE($4::text, 'active'))
ON CONFLICT (public_key) DO UPDATE
   SET secret = EXCLUDED.secret, status = COALESCE($4::text, k.status)
 WHERE k.merchant_id = EXCLUDED.merchant_id
RETURNING merchant_id;

-- name: upsert_subbrand
INSERT INTO subbrands (merchant_id, alias, host) VALUES ($1, $2, $3)
ON CONFLICT (merchant_id, alias) DO UPDATE SET host = EXCLUDED.host;

-- name: upsert_product
INSERT INTO products (merchant_id, code, name, kind, billing_period, tier)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (merchant_id, code) DO UPDATE
   SET name = EXCLUDED.name, kind = EXCLUDED.kind,
       billing_period = EXCLUDED.billing_period, tier = EXCLUDED.tier
RETURNING id;

-- name: replace_product_prices
WITH gone AS (
    DELETE FROM product_prices
     WHERE product_id = $1 AND currency <> ALL ($2::text[])
)
INSERT INTO product_prices (product_id, currency, amount)
SELECT $1, c, a FROM unnest($2::text[], $3::bigint[]) AS t (c, a)
ON CONFLICT (product_id, currency) DO UPDATE SET amount = EXCLUDED.amount;

-- name: upsert_period
INSERT INTO periods AS p (id, product_id, length, prices, payment_method)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE
   SET length = EXCLUDED.length, prices = EXCLUDED.prices,
       payment_method = EXCLUDED.payment_method
 WHERE p.product_id = EXCLUDED.product_id
RETURNING product_id;

-- name: upsert_coupon
-- times_redeemed from the file seeds the counter of a new coupon (demo data); a stored
-- coupon keeps its live count unless the file's is higher: a reload never gives back
-- redemptions that orders already used.
-- active left out ($9 null) is true for a new coupon and unchanged for a stored one.
INSERT INTO coupons AS c (merchant_id, code, percent_off, amount_off, max_redemptions,
                          times_redeemed, valid_from, valid_until, active)
VALUES ($1, $2, $3, $4, $5, COALESCE($6, 0), $7, $8, COALESCE($9::boolean, true))
ON CONFLICT (merchant_id, code) DO UPDATE
   SET percent_off = EXCLUDED.percent_off, amount_off = EXCLUDED.amount_off,
       max_redemptions = EXCLUDED.max_redemptions,
       times_redeemed = GREATEST(c.times_redeemed, COALESCE($6, 0)),
       valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
       active = COALESCE($9::boolean, c.active);

-- name: upsert_buyer
INSERT INTO buyers AS b (id, merchant_id, email) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email
 WHERE b.merchant_id = EXCLUDED.merchant_id
RETURNING merchant_id;

-- name: upsert_charge_method
-- A status left out ($4 null): 'active' when new, unchanged when stored.
INSERT INTO charge_methods AS m (id, buyer_id, type, status)
VALUES ($1, $2, $3, COALESCE($4::text, 'active'))
ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, status = COALESCE($4::text, m.status)
 WHERE m.buyer_id = EXCLUDED.buyer_id
RETURNING buyer_id;

-- name: upsert_subscription
-- A status left out ($4 null): 'active' when new, unchanged when stored.
INSERT INTO subscriptions AS s (id, buyer_id, product_id, status, current_period_end)
VALUES ($1, $2, $3, COALESCE($4::text, 'active'), $5)
ON CONFLICT (id) DO UPDATE
   SET product_id = EXCLUDED.product_id, status = COALESCE($4::text, s.status),
       current_period_end = EXCLUDED.current_period_end
 WHERE s.buyer_id = EXCLUDED.buyer_id
RETURNING buyer_id;


-- name: lock_catalog_load
-- Serializes `catalog load` runs (released at the load's commit or rollback).
SELECT pg_advisory_xact_lock(hashtext('order-service:catalog-load'));
