-- Every merchant gets its own sequence for Payway-style order references, made when the
-- merchant is inserted so no request ever has to create one.

CREATE FUNCTION merchants_create_order_number_seq() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_name text := format('merchant_order_seq_%s', NEW.id);
BEGIN
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I START 1000', v_name);
    NEW.order_number_seq := v_name::regclass;
    RETURN NEW;
END;
$$;

CREATE TRIGGER merchants_order_number_seq BEFORE INSERT ON merchants
    FOR EACH ROW EXECUTE FUNCTION merchants_create_order_number_seq();
