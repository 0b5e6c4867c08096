-- Orders of the three endpoint families, their items, the event outbox and idempotency records.

CREATE TABLE orders (
    -- 8-character base62 for the merchant endpoints, 24 hex for the Payway-style one.
    id                    text PRIMARY KEY CHECK (id ~ '^([A-Za-z0-9]{8}|[a-f0-9]{24})$'),
    merchant_id           bigint NOT NULL REFERENCES merchants (id),
    family                text NOT NULL CHECK (family IN ('initials_url', 'oneclick', 'me_order')),
    status                text NOT NULL DEFAULT 'created' CHECK (status IN ('created')),
    reference             text,
    currency              char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    base_amount           bigint NOT NULL CHECK (base_amount >= 0),
    discount_percent      integer CHECK (discount_percent BETWEEN 0 AND 100),
    discount_amount       bigint NOT NULL DEFAULT 0 CHECK (discount_amount >= 0),
    coupon_id             bigint REFERENCES coupons (id),
    coupon_code           text,
    coupon_amount         bigint NOT NULL DEFAULT 0 CHECK (coupon_amount >= 0),
    total_amount          bigint NOT NULL CHECK (total_amount >= 0),
    autocharge            boolean,
    autocharge_explicit   boolean,
    is_mobile             boolean,
    subbrand              text,
    payment_url           text,
    sequence              text CHECK (length(sequence) <= 64),
    buyer_id              uuid REFERENCES buyers (id),
    buyer                 jsonb,
    charge_method_id      text REFERENCES charge_methods (id),
    customer_account      text,
    buyer_ip              inet,
    source                text,
    source_id             text,
    ga_client_id          text,
    -- The x-token of the signed request that created the order: a byte-for-byte replay
    -- carries the same token and is refused by this index.
    request_token         text,
    metadata              jsonb,
    details               jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (total_amount <= base_amount),
    CHECK (family <> 'me_order' OR customer_account IS NOT NULL)
);
CREATE UNIQUE INDEX orders_request_token_key ON orders (merchant_id, request_token)
    WHERE request_token IS NOT NULL;
CREATE UNIQUE INDEX orders_reference_key ON orders (merchant_id, reference)
    WHERE reference IS NOT NULL;
CREATE INDEX orders_merchant_created_idx ON orders (merchant_id, created_at);

CREATE TABLE order_items (
    order_id         text NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    action           text CHECK (action IN ('purchase', 'upgrade', 'downgrade', 'renew')),
    product_id       bigint NOT NULL REFERENCES products (id),
    product_code     text NOT NULL,
    subscription_id  uuid REFERENCES subscriptions (id),
    period_id        char(24) REFERENCES periods (id),
    unit_amount      bigint NOT NULL CHECK (unit_amount >= 0),
    quantity         integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    amount           bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (order_id, position)
);

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    event_type    text NOT NULL,
    routing_key   text NOT NULL,
    aggregate_id  text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
-- The relay scans only what is still to send.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE idempotency_keys (
    scope            text NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,
    status           text NOT NULL CHECK (status IN ('in_progress', 'completed')),
    response_status  integer,
    response_body    jsonb,
    order_id         text REFERENCES orders (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    locked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
