-- name: place_order
SELECT place_order($1::jsonb, $2::jsonb, $3::jsonb, $4, $5, $6, $7::json, $8::uuid);

-- name: place_orders
-- Several orders in one statement (one transaction): $1 is a JSON array with one entry
-- per order, the eight arguments of place_order in order (the Idempotency-Key response
-- body as JSON text, which keeps its keys in order). One reference per order, in order;
-- if any order fails, none is written.
SELECT place_order(x -> 0, x -> 1, x -> 2, x ->> 3, x ->> 4, (x ->> 5)::integer,
                   (x ->> 6)::json, (x ->> 7)::uuid) AS reference
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS batch (x, n)
 ORDER BY n;

-- name: order_by_id
-- One order of one merchant with its items (any family); the request token stays inside.
SELECT o.id, o.reference, o.status, o.family, o.currency, o.base_amount,
       o.discount_percent, o.discount_amount, o.coupon_code, o.coupon_amount,
       o.total_amount, o.autocharge, o.autocharge_explicit, o.is_mobile, o.subbrand,
       o.payment_url, o.sequence, o.buyer_id, o.buyer, o.charge_method_id,
       o.customer_account, o.buyer_ip, o.source, o.source_id, o.ga_client_id,
       o.metadata, o.details, o.created_at,
       COALESCE(
         (SELECT jsonb_agg(jsonb_build_object(
                     'position', i.position, 'action', i.action,
                     'productCode', i.product_code, 'subscriptionId', i.subscription_id,
                     'periodId', i.period_id, 'unitAmount', i.unit_amount,
                     'quantity', i.quantity, 'amount', i.amount) ORDER BY i.position)
            FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb) AS items
  FROM orders o
 WHERE o.id = $1 AND o.merchant_id = $2;

-- name: order_of_request_token
-- The order a signed request (its x-token) created, to name it when the request is sent
-- again.
SELECT id FROM orders WHERE merchant_id = $1 AND request_token = $2;
