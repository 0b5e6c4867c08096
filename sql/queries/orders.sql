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

-- name: place_plain_orders
-- Several orders that need none of place_order's steps besides its inserts (no coupon to
-- count, no Payway-style reference or customer, no Idempotency-Key to complete), written
-- by one statement: $1 their rows of orders, $2 all their items, $3 their events (each
-- with its aggregate_id), as JSON arrays. One INSERT per table instead of three per
-- order: PostgreSQL starts an executor, and builds the table's CHECK constraints again,
-- for every statement a plpgsql function runs, which made place_order cost PostgreSQL
-- about twice the CPU per order of these three statements (0.21 against 0.11 ms, batches
-- of 16 of the benchmark's orders). The items' foreign key to their order is checked at
-- the end of the statement, when every order is in. If any order fails, none is written.
WITH orders_written AS (
    INSERT INTO orders SELECT * FROM jsonb_populate_recordset(NULL::orders, $1::jsonb)
), items_written AS (
    INSERT INTO order_items SELECT * FROM jsonb_populate_recordset(NULL::order_items, $2::jsonb)
)
INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
SELECT event_id, event_type, routing_key, aggregate_id, payload
  FROM jsonb_to_recordset($3::jsonb)
       AS event (event_id uuid, event_type text, routing_key text, aggregate_id text,
                 payload jsonb);

-- name: place_customer_orders
-- Several Payway-style orders with place_order's steps for them (a reference from the
-- merchant's sequence; the customer's default address upserted, and the address used
-- written into the order and its event) but no coupon and no Idempotency-Key, each of a
-- different customer (the upsert can touch a row once per statement), by one statement:
-- $1 is a JSON array with one [order row, items, event] entry per order. Their
-- references come back in order. If any order fails, none is written.
WITH batch AS MATERIALIZED (
    SELECT entry -> 0 AS o, entry -> 1 AS items, entry -> 2 AS event, n
      FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS entries (entry, n)
), numbered AS MATERIALIZED (
    -- Sorted, references are drawn in the batch's order (PostgreSQL evaluates a volatile
    -- output column after the sort; the join alone can return the rows reversed).
    SELECT batch.n, m.order_prefix || '-' || nextval(m.order_number_seq) AS reference
      FROM batch JOIN merchants m ON m.id = (batch.o ->> 'merchant_id')::bigint
     ORDER BY batch.n
), customers_written AS (
    INSERT INTO customers AS c (merchant_id, account, default_address)
    SELECT (o ->> 'merchant_id')::bigint, o ->> 'customer_account', o #> '{details,address}'
      FROM batch
     ORDER BY n
    ON CONFLICT (merchant_id, account) DO UPDATE
       SET default_address = COALESCE(EXCLUDED.default_address, c.default_address),
           updated_at = now()
    RETURNING c.merchant_id, c.account, c.default_address
), completed AS MATERIALIZED (
    SELECT batch.n, numbered.reference, batch.items, batch.event,
           jsonb_set(jsonb_set(batch.o, '{reference}', to_jsonb(numbered.reference)),
                     '{details,address}', COALESCE(written.default_address, 'null')) AS o,
           COALESCE(written.default_address, 'null') AS address
      FROM batch
      JOIN numbered USING (n)
      JOIN customers_written AS written
        ON written.merchant_id = (batch.o ->> 'merchant_id')::bigint
       AND written.account = batch.o ->> 'customer_account'
), orders_written AS (
    INSERT INTO orders
    SELECT row.* FROM completed, jsonb_populate_record(NULL::orders, completed.o) AS row
), items_written AS (
    INSERT INTO order_items
    SELECT item.* FROM completed,
           jsonb_populate_recordset(NULL::order_items, completed.items) AS item
), events_written AS (
    INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
    SELECT (event ->> 'event_id')::uuid, event ->> 'event_type', event ->> 'routing_key',
           o ->> 'id',
           jsonb_set(jsonb_set(event -> 'payload', '{data,order,reference}', to_jsonb(reference)),
                     '{data,order,customer,address}', address)
      FROM completed
     ORDER BY n
)
SELECT reference FROM completed ORDER BY n;

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

-- name: order_written_before
-- Whether an order whose write was cut off with its connection (the reply to the commit
-- lost) was written then after all, by that write: its row under its id, merchant and
-- creation time to the microsecond, all three the service's own ($3 the text of the row's
-- created_at; an order id drawn again by another order is not it). Its reference, or no
-- row.
SELECT reference
  FROM orders
 WHERE id = $1 AND merchant_id = $2 AND created_at = $3::text::timestamptz;
