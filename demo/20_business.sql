-- The demo business: a coffee-by-mail roastery (Rosteriet, Sweden and Norway)
-- and a SaaS company (Molnkontor, selling in EUR and SEK).  Catalog, accounts,
-- subscriptions with a trial, an upgrade, add-ons, usage, a summer pause, a
-- cancellation and a price change with grandfathering; then the history and
-- the event outbox.  Dates are relative to today, so the story is always "now".
SET search_path = subbilling, public;

\echo
\echo '== lifecycle: catalog'
INSERT INTO products (code, name, tax_rate) VALUES
    ('coffee', 'Rosteriet coffee subscription', 12),     -- food VAT in Sweden
    ('saas',   'Molnkontor office suite',       25);

INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, price, trial_days, setup_fee)
SELECT v.code, p.id, v.name, v.kind, v.period::billing_period, v.model, v.price::price, v.trial, v.setup::price
  FROM (VALUES
    ('coffee-month-sek',   'coffee', 'Two bags a month',        'base',  'monthly',   'per_unit', '189.00 SEK', 0,  NULL),
    ('coffee-month-nok',   'coffee', 'Two bags a month (NO)',   'base',  'monthly',   'per_unit', '219.00 NOK', 0,  NULL),
    ('coffee-quarter-sek', 'coffee', 'Café quarter box',        'base',  'quarterly', 'per_unit', '529.00 SEK', 0,  NULL),
    ('grinder-rent-sek',   'coffee', 'Grinder rental',          'addon', 'monthly',   'flat',     '49.00 SEK',  0,  '199.00 SEK'),
    ('saas-starter-eur',   'saas',   'Starter',                 'base',  'monthly',   'flat',     '29.00 EUR',  14, NULL),
    ('saas-team-eur',      'saas',   'Team (per seat)',         'base',  'monthly',   'per_unit', '12.00 EUR',  14, NULL),
    ('saas-team-sek',      'saas',   'Team (per seat, SEK)',    'base',  'monthly',   'per_unit', '129.00 SEK', 14, NULL),
    ('saas-support-eur',   'saas',   'Priority support',        'addon', 'yearly',    'flat',     '99.00 EUR',  0,  NULL)
  ) v(code, product, name, kind, period, model, price, trial, setup)
  JOIN products p ON p.code = v.product;
INSERT INTO plans (code, product_id, name, kind, billing_period, pricing_model, tiers, billing_timing, included_units)
SELECT 'saas-api-eur', id, 'API calls (10 000 included)', 'addon', 'monthly', 'usage',
       ARRAY[ROW(10000, '0.00 EUR', NULL)::tier, ROW(NULL, '0.01 EUR', NULL)::tier], 'in_arrears', 10000
  FROM products WHERE code = 'saas';
INSERT INTO campaigns (code, name, amount_off, duration, duration_periods, plan_codes)
VALUES ('KAFFE3', '50 kr off the first three months', '50.00 SEK', 'repeating', 3, '{coffee-month-sek}');
INSERT INTO campaigns (code, name, percent_off, duration, valid, max_redemptions)
VALUES ('WELCOME', 'Half price, first period', 50, 'once', daterange(current_date - 365, current_date + 365), 1000);

SELECT code, kind, pricing_model, billing_period, price, billing_timing AS timing, trial_days AS trial, setup_fee
  FROM plans ORDER BY product_id, kind DESC, code;

\echo
\echo '== lifecycle: accounts and payment methods'
INSERT INTO accounts (external_id, name, email, country, currency, time_zone, payment_terms_days) VALUES
    ('cust-1001', 'Anna Berg',         'anna@example.se',     'SE', 'SEK', 'Europe/Stockholm', 30),
    ('cust-1002', 'Ola Nordmann',      'ola@example.no',      'NO', 'NOK', 'Europe/Oslo',      14),
    ('cust-1003', 'Café Lyktan AB',    'ekonomi@lyktan.se',   'SE', 'SEK', 'Europe/Stockholm', 30),
    ('cust-2001', 'Studio Nord GmbH',  'buha@studionord.de',  'DE', 'EUR', 'Europe/Berlin',    14),
    ('cust-2002', 'Kuutio Oy',         'laskut@kuutio.fi',    'FI', 'EUR', 'Europe/Helsinki',  14),
    ('cust-2003', 'Molnbyrån AB',      'faktura@molnbyran.se','SE', 'SEK', 'Europe/Stockholm', 20);
INSERT INTO payment_methods (account_id, kind, is_default, details)
SELECT a.id, v.kind, true, v.details::jsonb
  FROM (VALUES ('cust-1001', 'autogiro',   '{"bankgiro": "5050-1055", "mandate": "AG-1001"}'),
              ('cust-1002', 'avtalegiro', '{"mandate": "AV-1002"}'),
              ('cust-1003', 'invoice',    '{}'),
              ('cust-2001', 'card',       '{"brand": "visa", "last4": "4242"}'),
              ('cust-2002', 'sepa_debit', '{"mandate": "SEPA-2002"}'),
              ('cust-2003', 'e_invoice',  '{"peppol": "0007:5566778899"}')) v(ext, kind, details)
  JOIN accounts a ON a.external_id = v.ext;
SELECT a.external_id, a.name, a.country, a.currency, a.time_zone, pm.kind AS pays_by, pm.automatic
  FROM accounts a JOIN payment_methods pm ON pm.account_id = a.id AND pm.is_default ORDER BY a.external_id;

\echo
\echo '== lifecycle: subscriptions and their changes'
CREATE TEMP TABLE demo_sub (who text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.acct(ext text) RETURNS bigint LANGUAGE sql STABLE
    RETURN (SELECT id FROM subbilling.accounts WHERE external_id = ext);
CREATE FUNCTION pg_temp.sub(w text) RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT id FROM demo_sub WHERE who = w);

-- Anna: two bags a month since 75 days ago, with the KAFFE3 campaign
INSERT INTO demo_sub VALUES ('anna', subscribe(pg_temp.acct('cust-1001'), 'coffee-month-sek', 2, current_date - 75, 'KAFFE3'));
-- Ola: the Norwegian plan; a summer pause, then cancels at the end of his period
INSERT INTO demo_sub VALUES ('ola', subscribe(pg_temp.acct('cust-1002'), 'coffee-month-nok', 1, current_date - 120));
SELECT pause(pg_temp.sub('ola'), current_date - 60, current_date - 30) AS ola_pause_id;
SELECT cancel(pg_temp.sub('ola')) AS ola_canceled;
-- Café Lyktan: five boxes a quarter, a rented grinder, then more boxes
INSERT INTO demo_sub VALUES ('cafe', subscribe(pg_temp.acct('cust-1003'), 'coffee-quarter-sek', 5, current_date - 200));
SELECT add_addon(pg_temp.sub('cafe'), 'grinder-rent-sek', 1, current_date - 200) AS cafe_grinder_item;
SELECT change_quantity(pg_temp.sub('cafe'), 8, current_date - 20) AS cafe_more_boxes_item;
-- Studio Nord: starter with a trial, upgrade to Team x5 straight away, priority support, API usage
INSERT INTO demo_sub VALUES ('studio', subscribe(pg_temp.acct('cust-2001'), 'saas-starter-eur', 1, current_date - 40, 'WELCOME'));
SELECT change_plan(pg_temp.sub('studio'), 'saas-team-eur', current_date - 10) AS studio_upgrade_item;
SELECT change_quantity(pg_temp.sub('studio'), 5, current_date - 10 + 1) AS studio_seats_item;
SELECT add_addon(pg_temp.sub('studio'), 'saas-support-eur', 1, current_date - 10) AS studio_support_item;
SELECT add_addon(pg_temp.sub('studio'), 'saas-api-eur', 1, current_date - 10) AS studio_api_item;
SELECT count(record_usage(pg_temp.sub('studio'), 'saas-api-eur', 1000 + 100 * d,
                          date_trunc('day', now()) - make_interval(days => d, hours => -9), 'batch-' || d)) AS usage_rows
  FROM generate_series(1, 9) d;
SELECT record_usage(pg_temp.sub('studio'), 'saas-api-eur', 1100, date_trunc('day', now()) - make_interval(days => 1, hours => -9), 'batch-1')
       = (SELECT id FROM usage WHERE idempotency_key = 'batch-1') AS retry_is_idempotent;
-- Kuutio: twelve seats, leaving at the end of the current period
INSERT INTO demo_sub VALUES ('kuutio', subscribe(pg_temp.acct('cust-2002'), 'saas-team-eur', 12, current_date - 50, NULL, 0));
SELECT cancel(pg_temp.sub('kuutio')) AS kuutio_canceled;
-- Molnbyrån: in its 14-day trial, seats 3 -> 8 from tomorrow
INSERT INTO demo_sub VALUES ('moln', subscribe(pg_temp.acct('cust-2003'), 'saas-team-sek', 3, current_date - 3));
SELECT change_quantity(pg_temp.sub('moln'), 8, current_date + 1) AS moln_seats_item;

SELECT a.name AS account, h.plan_code AS plan, h.quantity AS qty, s.status, s.start_date, s.trial_end, s.cancel_at
  FROM demo_sub d JOIN subscriptions s ON s.id = d.id JOIN accounts a ON a.id = s.account_id
  CROSS JOIN LATERAL subscription_items_on(s.id, least(current_date, s.cancel_at - 1)) h
 WHERE h.kind = 'base' ORDER BY s.id;

\echo
\echo '-- the item history of Studio Nord (never overwritten: each change closes one item and opens the next)'
SELECT kind, plan_code, quantity, price, valid_from, valid_until, reason
  FROM subscription_history(pg_temp.sub('studio'));

\echo
\echo '-- what Café Lyktan held 30 days ago, and what it holds today'
SELECT current_date - 30 AS on_date, plan_code, quantity FROM subscription_items_on(pg_temp.sub('cafe'), current_date - 30)
UNION ALL
SELECT current_date, plan_code, quantity FROM subscription_items_on(pg_temp.sub('cafe'), current_date);

\echo
\echo '-- statuses over time: computed from the dated data'
SELECT d.who, subscription_status(d.id, current_date - 45) AS "45 days ago", subscription_status(d.id) AS today,
       subscription_status(d.id, current_date + 45) AS "in 45 days"
  FROM demo_sub d ORDER BY d.id;

\echo
\echo '-- API usage of Studio Nord per day (account time zone Europe/Berlin)'
SELECT usage_date, sum(quantity) AS calls FROM usage WHERE subscription_id = pg_temp.sub('studio')
 GROUP BY usage_date ORDER BY usage_date DESC LIMIT 3;

\echo
\echo '== lifecycle: a price change with grandfathering'
-- Two bags a month goes from 189 to 199 kr.  The plan in use cannot change its
-- price; a new plan takes new customers, and existing ones move in 30 days.
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT 'coffee-month-sek-v2', product_id, name, billing_period, pricing_model, '199.00 SEK' FROM plans WHERE code = 'coffee-month-sek';
UPDATE plans SET active = false WHERE code = 'coffee-month-sek';
SELECT migrate_subscriptions('coffee-month-sek', 'coffee-month-sek-v2', current_date + 30) AS migrated;
SELECT plan_code, quantity, price, valid_from, valid_until, reason FROM subscription_history(pg_temp.sub('anna'));

\echo
\echo '== lifecycle: the event outbox (the same JSON went out on NOTIFY subbilling at each commit)'
SELECT e.id, e.type, a.external_id AS account, e.subscription_id AS sub,
       coalesce(e.payload->>'change', e.payload->>'status') AS what,
       coalesce(e.payload->>'effective', e.payload->>'from', e.payload->>'start_date') AS effective
  FROM events_after(0, 100) e JOIN accounts a ON a.id = e.account_id;

\echo
\echo '-- one payload in full'
SELECT jsonb_pretty(payload) AS "subscription.changed (Studio Nord upgrade)"
  FROM events WHERE subscription_id = pg_temp.sub('studio') AND payload->>'change' = 'plan';
