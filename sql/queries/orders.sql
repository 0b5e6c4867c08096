-- name: place_order
SELECT place_order($1::jsonb, $2::jsonb, $3::jsonb, $4, $5, $6, $7::json, $8::uuid);

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
