-- name: catalog_merchants
SELECT m.id, m.code, m.name, m.default_currency, m.order_prefix,
       s.precheck_autocharge_desktop, s.precheck_autocharge_mobile,
       s.payment_page_url, s.default_host
  FROM merchants m
  JOIN merchant_settings s ON s.merchant_id = m.id;

-- name: catalog_keys
SELECT k.public_key, k.merchant_id, k.secret, k.status
  FROM merchant_keys k
  JOIN merchant_settings s USING (merchant_id);

-- name: catalog_subbrands
SELECT merchant_id, alias, host FROM subbrands;

-- name: catalog_products
SELECT id, merchant_id, code, name, kind, billing_period, tier FROM products;

-- name: catalog_prices
SELECT product_id, currency, amount FROM product_prices;

-- name: catalog_periods
SELECT id, product_id, length, prices, payment_method FROM periods;

-- name: catalog_coupons
SELECT id, merchant_id, code, percent_off, amount_off, max_redemptions,
       valid_from, valid_until, active
  FROM coupons;

-- name: catalog_buyers
SELECT id, merchant_id, email FROM buyers;

-- name: catalog_charge_methods
SELECT id, buyer_id, type, status FROM charge_methods;

-- name: catalog_subscriptions
SELECT id, buyer_id, product_id, status, current_period_end FROM subscriptions;
