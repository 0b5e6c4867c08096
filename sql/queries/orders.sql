-- name: place_order
SELECT place_order($1::jsonb, $2::jsonb, $3::jsonb, $4, $5, $6, $7::jsonb);

-- name: order_by_id
SELECT o.*, COALESCE(
         (SELECT jsonb_agg(jsonb_build_object(
                     'position', i.position, 'action', i.action,
                     'productCode', i.product_code, 'subscriptionId', i.subscription_id,
                     'periodId', i.period_id, 'unitAmount', i.unit_amount,
                     'quantity', i.quantity, 'amount', i.amount) ORDER BY i.position)
            FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb) AS items
  FROM orders o
 WHERE o.id = $1 AND o.merchant_id = $2;
