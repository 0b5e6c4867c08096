-- Merchants and everything the catalog file describes.

CREATE TABLE merchants (
    id                  bigserial PRIMARY KEY,
    code                text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    default_currency    char(3) NOT NULL CHECK (default_currency ~ '^[A-Z]{3}$'),
    order_prefix        text NOT NULL CHECK (order_prefix ~ '^[A-Z0-9]{1,20}$'),
    -- Per-merchant counter for the Payway-style order reference (PREFIX-<n>); a sequence
    -- hands out numbers without locking a row for the length of a transaction.
    order_number_seq    regclass,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchant_keys (
    public_key   text PRIMARY KEY CHECK (length(public_key) BETWEEN 1 AND 200),
    merchant_id  bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    secret       text NOT NULL CHECK (length(secret) >= 8),
    status       text NOT NULL CHECK (status IN ('active', 'revoked'))
);
CREATE INDEX merchant_keys_merchant_idx ON merchant_keys (merchant_id);

CREATE TABLE merchant_settings (
    merchant_id                  bigint PRIMARY KEY REFERENCES merchants (id) ON DELETE CASCADE,
    precheck_autocharge_desktop  boolean NOT NULL,
    precheck_autocharge_mobile   boolean NOT NULL,
    payment_page_url             text NOT NULL
        CHECK (payment_page_url LIKE '%{order_id}%'),
    default_host                 text NOT NULL CHECK (length(default_host) BETWEEN 1 AND 253)
);

CREATE TABLE subbrands (
    merchant_id  bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    alias        text NOT NULL CHECK (alias ~ '^[A-Za-z0-9_]{1,100}$'),
    host         text NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
    PRIMARY KEY (merchant_id, alias)
);

CREATE TABLE products (
    id              bigserial PRIMARY KEY,
    merchant_id     bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    code            text NOT NULL CHECK (length(code) BETWEEN 1 AND 100),
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('subscription', 'one_time')),
    billing_period  text CHECK (billing_period ~ '^P'),
    tier            integer NOT NULL DEFAULT 0,
    UNIQUE (merchant_id, code),
    UNIQUE (merchant_id, id)
);

CREATE TABLE product_prices (
    product_id  bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount      bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (product_id, currency)
);

CREATE TABLE coupons (
    id                bigserial PRIMARY KEY,
    merchant_id       bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    code              text NOT NULL CHECK (length(code) BETWEEN 1 AND 100),
    percent_off       integer CHECK (percent_off BETWEEN 0 AND 100),
    amount_off        jsonb CHECK (amount_off IS NULL OR jsonb_typeof(amount_off) = 'object'),
    max_redemptions   integer CHECK (max_redemptions >= 0),
    times_redeemed    integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
    valid_from        timestamptz,
    valid_until       timestamptz,
    active            boolean NOT NULL DEFAULT true,
    UNIQUE (merchant_id, code),
    CHECK ((percent_off IS NULL) <> (amount_off IS NULL)),
    CHECK (max_redemptions IS NULL OR times_redeemed <= max_redemptions),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until)
);

CREATE TABLE buyers (
    id           uuid PRIMARY KEY,
    merchant_id  bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    email        text NOT NULL CHECK (email LIKE '%_@_%'),
    UNIQUE (merchant_id, id)
);

CREATE TABLE charge_methods (
    id        text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    buyer_id  uuid NOT NULL REFERENCES buyers (id) ON DELETE CASCADE,
    type      text NOT NULL,
    status    text NOT NULL CHECK (status IN ('active', 'expired', 'disabled'))
);
CREATE INDEX charge_methods_buyer_idx ON charge_methods (buyer_id);

CREATE TABLE subscriptions (
    id                  uuid PRIMARY KEY,
    buyer_id            uuid NOT NULL REFERENCES buyers (id) ON DELETE CASCADE,
    product_id          bigint NOT NULL REFERENCES products (id),
    status              text NOT NULL CHECK (status IN ('active', 'cancelled', 'expired')),
    current_period_end  timestamptz
);
CREATE INDEX subscriptions_buyer_idx ON subscriptions (buyer_id);

CREATE TABLE periods (
    id              char(24) PRIMARY KEY CHECK (id ~ '^[a-f0-9]{24}$'),
    product_id      bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    length          text NOT NULL CHECK (length ~ '^P'),
    prices          jsonb NOT NULL CHECK (jsonb_typeof(prices) = 'object'),
    payment_method  text NOT NULL CHECK (length(payment_method) BETWEEN 1 AND 40)
);
CREATE INDEX periods_product_idx ON periods (product_id);

-- Payway-style customers: an account (JWT sub) of a merchant, with a default address.
CREATE TABLE customers (
    merchant_id      bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    account          text NOT NULL CHECK (length(account) BETWEEN 1 AND 255),
    default_address  jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, account)
);
