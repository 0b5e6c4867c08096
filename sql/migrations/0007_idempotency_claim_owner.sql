-- An Idempotency-Key claim carries the id of the request that holds it. A claim left
-- in progress past the stale limit is taken over by a retry (its request is presumed
-- dead); if that request was only slow, it must then neither complete the new holder's
-- claim with its own order nor release it. place_order completes, and the release
-- deletes, only the claim with the caller's id.
--
-- Errors place_order raises besides 0003's (SQLSTATE P0001, MESSAGE is the code):
--   idempotency_claim_lost   the caller's claim was taken over; nothing was written

ALTER TABLE idempotency_keys ADD COLUMN claim_id uuid;

-- The 7-argument place_order of 0005 stays beside this one, so instances of the previous
-- release keep writing orders while a rolling upgrade replaces them; a later migration
-- drops it.
CREATE FUNCTION place_order(
    p_order        jsonb,
    p_items        jsonb,
    p_event        jsonb,
    p_idem_scope   text,
    p_idem_key     text,
    p_idem_status  integer,
    p_idem_body    json,
    p_idem_claim   uuid
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_family     text := p_order ->> 'family';
    v_merchant   bigint := (p_order ->> 'merchant_id')::bigint;
    v_coupon     bigint := (p_order ->> 'coupon_id')::bigint;
    v_reference  text;
    v_address    jsonb;
BEGIN
    IF v_coupon IS NOT NULL THEN
        UPDATE coupons SET times_redeemed = times_redeemed + 1
         WHERE id = v_coupon
           AND merchant_id = v_merchant
           AND (max_redemptions IS NULL OR times_redeemed < max_redemptions);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'coupon_exhausted' USING HINT = p_order ->> 'coupon_code';
        END IF;
    END IF;

    IF v_family = 'me_order' THEN
        SELECT m.order_prefix || '-' || nextval(m.order_number_seq)
          INTO STRICT v_reference
          FROM merchants m WHERE m.id = v_merchant;
        p_order := jsonb_set(p_order, '{reference}', to_jsonb(v_reference));

        -- A given address replaces the customer's default; without one the default is used.
        INSERT INTO customers AS c (merchant_id, account, default_address)
        VALUES (v_merchant, p_order ->> 'customer_account', p_order #> '{details,address}')
        ON CONFLICT (merchant_id, account) DO UPDATE
           SET default_address = COALESCE(EXCLUDED.default_address, c.default_address),
               updated_at = now()
        RETURNING c.default_address INTO v_address;

        p_order := jsonb_set(p_order, '{details,address}', COALESCE(v_address, 'null'));
        p_event := jsonb_set(p_event, '{payload,data,order,reference}', to_jsonb(v_reference));
        p_event := jsonb_set(p_event, '{payload,data,order,customer,address}',
                             COALESCE(v_address, 'null'));
        IF p_idem_body IS NOT NULL THEN
            -- Its only keys, id and order_id, keep their order through jsonb.
            p_idem_body := jsonb_set(p_idem_body::jsonb, '{order_id}', to_jsonb(v_reference))::json;
        END IF;
    END IF;

    INSERT INTO orders SELECT * FROM jsonb_populate_record(NULL::orders, p_order);
    INSERT INTO order_items SELECT * FROM jsonb_populate_recordset(NULL::order_items, p_items);
    INSERT INTO outbox (event_id, event_type, routing_key, aggregate_id, payload)
    VALUES ((p_event ->> 'event_id')::uuid, p_event ->> 'event_type', p_event ->> 'routing_key',
            p_order ->> 'id', p_event -> 'payload');

    IF p_idem_key IS NOT NULL THEN
        -- Only the request that holds the claim completes it; one whose claim was taken
        -- over meanwhile writes nothing (the whole call rolls back).
        UPDATE idempotency_keys
           SET status = 'completed', response_status = p_idem_status,
               response_body = p_idem_body, order_id = p_order ->> 'id'
         WHERE scope = p_idem_scope AND key = p_idem_key
           AND status = 'in_progress' AND claim_id = p_idem_claim;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency_claim_lost';
        END IF;
    END IF;

    RETURN v_reference;
END;
$$;
