-- The lifecycle's error messages as a user sees them: SQLSTATE, message,
-- DETAIL and HINT.  Fixed dates in the past keep the output stable as time
-- passes; ids are shown as S (the subscription), A (the account) and N
-- (items, pauses, usage), since other tests may have drawn ids before.
SET search_path = subbilling, public;
SET DateStyle = ISO;
SET TimeZone = 'UTC';

CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
    h text;
    m text;
    s bigint := (SELECT max(id) FROM subbilling.subscriptions);
    a bigint := (SELECT max(id) FROM subbilling.accounts);
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    m := SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN E'\n  DETAIL: ' || d ELSE '' END
                                     || CASE WHEN h <> '' THEN E'\n  HINT: ' || h ELSE '' END;
    m := regexp_replace(m, 'account ' || a || '\M', 'account A', 'g');
    m := regexp_replace(m, 'subscription ' || s || '\M', 'subscription S', 'g');
    m := regexp_replace(m, '(Usage|Item|item|Pause) \d+', '\1 N', 'g');
    RETURN m;
END
$$;

INSERT INTO products (code, name) VALUES ('msg', 'Messages');
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price)
SELECT v.code, p.id, v.code, v.kind, 'monthly', 'per_unit', v.price::price
  FROM products p, (VALUES ('msg-basic', 'base', '10.00 SEK'), ('msg-pro', 'base', '20.00 SEK'),
                           ('msg-extra', 'addon', '5.00 SEK'), ('msg-eur', 'base', '1.00 EUR')) v(code, kind, price)
 WHERE p.code = 'msg';
INSERT INTO accounts (external_id, name, country, currency, time_zone) VALUES ('msg-1', 'Msg AB', 'SE', 'SEK', 'Europe/Stockholm');
SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'msg-1'), 'msg-basic', 2, '2025-01-15') IS NOT NULL AS subscribed;

-- catalog and accounts
\pset format unaligned
\pset tuples_only on
SELECT pg_temp.err($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model)
                     SELECT 'msg-bad', id, 'x', 'SEK', 'monthly', 'graduated' FROM products WHERE code = 'msg'$$);
SELECT pg_temp.err($$INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
                     SELECT 'msg-bad', id, 'x', 'monthly', 'usage', '1.00 SEK' FROM products WHERE code = 'msg'$$);
SELECT pg_temp.err($$INSERT INTO plans (code, product_id, name, currency, billing_period, pricing_model, tiers)
                     SELECT 'msg-bad', id, 'x', 'SEK', 'monthly', 'graduated',
                            ARRAY[ROW(100, '1.00 SEK', NULL)::tier, ROW(50, '1.00 SEK', NULL)::tier, ROW(NULL, '1.00 SEK', NULL)::tier]
                       FROM products WHERE code = 'msg'$$);
SELECT pg_temp.err($$UPDATE plans SET price = '11.00 SEK' WHERE code = 'msg-basic'$$);
SELECT pg_temp.err($$UPDATE accounts SET currency = 'EUR' WHERE external_id = 'msg-1'$$);
SELECT pg_temp.err($$INSERT INTO accounts (name, country, currency, time_zone) VALUES ('x', 'SE', 'SEK', 'Europe/Atlantis')$$);
SELECT pg_temp.err($$INSERT INTO accounts (name, country, currency) VALUES ('x', 'SE', 'XYZ')$$);

-- subscribe
SELECT pg_temp.err($$SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'msg-1'), 'msg-extra')$$);
SELECT pg_temp.err($$SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'msg-1'), 'msg-eur')$$);
SELECT pg_temp.err($$SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'msg-1'), 'msg-nope')$$);
SELECT pg_temp.err($$SELECT subscribe((SELECT id FROM accounts WHERE external_id = 'msg-1'), 'msg-basic', 0)$$);

-- changes
SELECT pg_temp.err($$SELECT change_plan((SELECT max(id) FROM subscriptions), 'msg-pro', '2025-02-01', 'tomorrow')$$);
SELECT change_quantity((SELECT max(id) FROM subscriptions), 3, '2025-03-01') IS NOT NULL AS changed;
SELECT pg_temp.err($$SELECT change_quantity((SELECT max(id) FROM subscriptions), 4, '2025-02-01')$$);
SELECT pg_temp.err($$SELECT add_addon((SELECT max(id) FROM subscriptions), 'msg-pro', 1, '2025-04-01')$$);
SELECT add_addon((SELECT max(id) FROM subscriptions), 'msg-extra', 1, '2025-04-01') IS NOT NULL AS added;
SELECT pg_temp.err($$SELECT add_addon((SELECT max(id) FROM subscriptions), 'msg-extra', 2, '2025-04-02')$$);

-- pause and resume
SELECT pause((SELECT max(id) FROM subscriptions), '2025-06-01', '2025-07-01') IS NOT NULL AS paused;
SELECT pg_temp.err($$SELECT pause((SELECT max(id) FROM subscriptions), '2025-06-15')$$);
SELECT pg_temp.err($$SELECT pause((SELECT max(id) FROM subscriptions), '2025-09-01', '2025-08-01')$$);
SELECT pg_temp.err($$SELECT resume((SELECT max(id) FROM subscriptions), '2025-06-01')$$);
SELECT pg_temp.err($$SELECT resume((SELECT max(id) FROM subscriptions), '2025-08-01')$$);

-- usage
SELECT record_usage((SELECT max(id) FROM subscriptions), 'msg-extra', 3, '2025-05-01 12:00+02', 'u-1') IS NOT NULL AS recorded;
SELECT pg_temp.err($$SELECT record_usage((SELECT max(id) FROM subscriptions), 'msg-extra', 4, '2025-05-01 12:00+02', 'u-1')$$);
SELECT pg_temp.err($$SELECT record_usage((SELECT max(id) FROM subscriptions), 'msg-pro', 1, '2025-05-01 12:00+02', 'u-2')$$);

-- cancel, and after it
SELECT cancel((SELECT max(id) FROM subscriptions), '2025-10-01') IS NOT NULL AS canceled;
SELECT pg_temp.err($$SELECT cancel((SELECT max(id) FROM subscriptions), '2025-09-01')$$);
SELECT pg_temp.err($$SELECT change_quantity((SELECT max(id) FROM subscriptions), 5, '2025-10-01')$$);
SELECT pg_temp.err($$SELECT pause((SELECT max(id) FROM subscriptions), '2025-11-01')$$);
SELECT pg_temp.err($$SELECT set_subscription_status((SELECT max(id) FROM subscriptions), 'past_due')$$);
SELECT pg_temp.err($$SELECT record_usage((SELECT max(id) FROM subscriptions), 'msg-extra', 2, '2025-05-02 12:00+02', 'u-3')$$);

-- history guards
SELECT pg_temp.err($$DELETE FROM subscription_items$$);
SELECT pg_temp.err($$UPDATE subscription_items SET quantity = 9$$);

-- the events written, as types
\pset tuples_only off
\pset format aligned
SELECT type, payload->>'change' AS change, payload->>'effective' AS effective
  FROM events ORDER BY id;
