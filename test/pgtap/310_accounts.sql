-- Accounts, payment methods, and the rules that make them ready to distribute by account.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(55);
\ir 300_fixture.psql

-- ---------------------------------------------------------------- accounts
SELECT is((SELECT (payment_terms_days, tax_exempt, metadata, time_zone, dunning_policy_id)
             FROM accounts WHERE external_id = 't_se3'),
          ROW(30, false, '{}'::jsonb, 'Europe/Stockholm'::text, NULL::bigint), 'account defaults');
SELECT lives_ok($$INSERT INTO accounts (name, country, currency) VALUES ('No external id', 'FI', 'EUR')$$,
                'external_id is optional; time zone defaults to UTC');
SELECT is((SELECT time_zone FROM accounts WHERE name = 'No external id'), 'UTC', 'default time zone UTC');
SELECT is(cardinality(ARRAY(SELECT c FROM (SELECT chr(a) || chr(b) AS c FROM generate_series(65, 90) a, generate_series(65, 90) b) x
                             WHERE is_country_code(c))), 249, 'is_country_code knows the 249 ISO 3166-1 alpha-2 codes');
SELECT ok(is_country_code('SE') AND is_country_code('NO') AND is_country_code('DK') AND is_country_code('FI')
          AND NOT is_country_code('XK') AND NOT is_country_code('se') AND NOT is_country_code('SWE'),
          'is_country_code: Nordic codes yes; XK, lower case, alpha-3 no');

PREPARE ins_acct(text, text, text, text, integer, jsonb) AS
    INSERT INTO accounts (external_id, name, email, country, currency, time_zone, payment_terms_days, metadata)
    VALUES ('t_new', 'New', $1, $2, $3, coalesce($4, 'UTC'), coalesce($5, 30), coalesce($6, '{}'));
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'XX', 'SEK', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_country_iso3166"', 'unknown country');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'se', 'SEK', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_country_iso3166"', 'lower-case country');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'sek', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_currency_format"', 'lower-case currency');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'ABC', NULL, NULL, NULL)$$,
                 '22023', 'unknown currency code "ABC"', 'unknown currency');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', 'Mars/Olympus_Mons', NULL, NULL)$$,
                 '22023', 'time zone "Mars/Olympus_Mons" not recognized', 'unknown time zone');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', '+02:00', NULL, NULL)$$,
                 '22023', 'time zone "+02:00" is not a time zone name', 'UTC offset instead of a zone name');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', 'XYZ+167', NULL, NULL)$$,
                 '22023', 'time zone "XYZ+167" is not a time zone name', 'a POSIX zone 167 hours off: refused, only names from pg_timezone_names');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', 'CEST', NULL, NULL)$$,
                 '22023', 'time zone "CEST" is not a time zone name', 'an abbreviation with a fixed offset (CEST): refused');
SELECT throws_ok($$EXECUTE ins_acct('not-an-address', 'SE', 'SEK', NULL, NULL, NULL)$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_email_format"', 'email without @');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', NULL, -1, NULL)$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_payment_terms_range"', 'negative payment terms');
SELECT throws_ok($$EXECUTE ins_acct(NULL, 'SE', 'SEK', NULL, NULL, '[1]')$$,
                 '23514', 'new row for relation "accounts" violates check constraint "accounts_metadata_object"', 'metadata not an object');
SELECT throws_ok($$INSERT INTO accounts (external_id, name, country, currency) VALUES ('t_se', 'Dup', 'SE', 'SEK')$$,
                 '23505', 'duplicate key value violates unique constraint "accounts_external_id_key"', 'external_id is unique');
SELECT throws_ok($$INSERT INTO accounts (name, country, currency, dunning_policy_id) VALUES ('X', 'SE', 'SEK', -1)$$,
                 '23503', NULL, 'unknown dunning policy');
SELECT lives_ok($$EXECUTE ins_acct('a@b.example', 'NO', 'NOK', 'Europe/Oslo', 10, '{"segment": "smb"}')$$, 'a valid account');

SELECT lives_ok($$UPDATE accounts SET currency = 'EUR' WHERE external_id = 't_se3'$$, 'currency of an account without subscriptions can change');
SELECT lives_ok($$UPDATE accounts SET currency = 'SEK' WHERE external_id = 't_se3'$$, 'and back');
SELECT isnt(subscribe(pg_temp.acct('t_se3'), 't_basic'), NULL, 't_se3 subscribes');
SELECT throws_ok($$UPDATE accounts SET currency = 'EUR' WHERE external_id = 't_se3'$$, '55000',
                 format('account %s has subscriptions in SEK; its currency cannot change', pg_temp.acct('t_se3')),
                 'currency of an account with subscriptions is fixed');
SELECT throws_ok($$UPDATE accounts SET id = id + 1000000 WHERE external_id = 't_se3'$$, '55000',
                 format('the id of account %s cannot change', pg_temp.acct('t_se3')), 'account id is fixed');
SELECT lives_ok($$UPDATE accounts SET name = 'Tredje AB (publ)', payment_terms_days = 15, tax_exempt = true
                   WHERE external_id = 't_se3'$$, 'other account fields stay editable');

-- ---------------------------------------------------------------- payment methods
SELECT lives_ok($$
    INSERT INTO payment_methods (account_id, kind, details)
    SELECT pg_temp.acct('t_se'), k, jsonb_build_object('label', k)
      FROM unnest(ARRAY['card', 'autogiro', 'avtalegiro', 'betalingsservice', 'sepa_debit', 'invoice',
                        'e_invoice', 'swish', 'vipps', 'mobilepay', 'bank_transfer']) k
$$, 'every payment method kind');
SELECT results_eq($$SELECT kind FROM payment_methods WHERE account_id = pg_temp.acct('t_se') AND automatic ORDER BY kind$$,
                  ARRAY['autogiro', 'avtalegiro', 'betalingsservice', 'card', 'sepa_debit'],
                  'card and direct debits are automatic');
SELECT throws_ok($$INSERT INTO payment_methods (account_id, kind) VALUES (pg_temp.acct('t_se'), 'cash')$$,
                 '23514', 'new row for relation "payment_methods" violates check constraint "payment_methods_kind_check"', 'unknown kind');
SELECT throws_ok($$INSERT INTO payment_methods (account_id, kind) VALUES (-1, 'card')$$,
                 '23503', NULL, 'payment method of an unknown account');
SELECT lives_ok($$UPDATE payment_methods SET is_default = true WHERE account_id = pg_temp.acct('t_se') AND kind = 'autogiro'$$,
                'one default payment method');
SELECT throws_ok($$UPDATE payment_methods SET is_default = true WHERE account_id = pg_temp.acct('t_se') AND kind = 'card'$$,
                 '23505', 'duplicate key value violates unique constraint "payment_methods_one_default"', 'a second default for one account');
SELECT lives_ok($$INSERT INTO payment_methods (account_id, kind, is_default) VALUES (pg_temp.acct('t_no'), 'avtalegiro', true)$$,
                'another account has its own default');
SELECT throws_ok($$INSERT INTO payment_methods (account_id, kind, is_default, active) VALUES (pg_temp.acct('t_de'), 'sepa_debit', true, false)$$,
                 '23514', 'new row for relation "payment_methods" violates check constraint "payment_methods_default_is_active"', 'an inactive default');
SELECT throws_ok($$INSERT INTO payment_methods (account_id, kind, details) VALUES (pg_temp.acct('t_de'), 'card', '"x"')$$,
                 '23514', 'new row for relation "payment_methods" violates check constraint "payment_methods_details_object"', 'details not an object');

-- ---------------------------------------------------------------- ready to distribute by account
CREATE TEMP VIEW customer_tables AS
    SELECT c.oid, c.relname FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind = 'r'
       AND c.relname IN ('payment_methods', 'subscriptions', 'subscription_items', 'subscription_pauses',
                         'subscription_discounts', 'usage', 'events');
SELECT col_is_pk('subbilling', t, ARRAY['account_id', 'id'], t || ': PRIMARY KEY (account_id, id)')
  FROM unnest(ARRAY['payment_methods', 'subscriptions', 'subscription_items', 'subscription_pauses',
                    'subscription_discounts', 'usage', 'events']) t;
SELECT col_not_null('subbilling', t, 'account_id', t || '.account_id NOT NULL')
  FROM unnest(ARRAY['payment_methods', 'subscriptions', 'subscription_items', 'subscription_pauses',
                    'subscription_discounts', 'usage', 'events']) t;
SELECT col_type_is('subbilling', t, 'account_id', 'bigint', t || '.account_id is bigint')
  FROM unnest(ARRAY['payment_methods', 'subscriptions', 'subscription_items']) t;
SELECT is_empty($$
    SELECT t.relname, i.indexrelid::regclass::text
      FROM customer_tables t JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
     WHERE (i.indisunique OR i.indisexclusion)
       AND NOT (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'account_id')
               = ANY (i.indkey::int2[])
$$, 'every UNIQUE, PRIMARY KEY and EXCLUDE index of a customer table includes account_id');
SELECT is_empty($$
    SELECT con.conname
      FROM pg_catalog.pg_constraint con
      JOIN customer_tables src ON src.oid = con.conrelid
      JOIN customer_tables dst ON dst.oid = con.confrelid
     WHERE con.contype = 'f'
       AND NOT (SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = src.oid AND a.attname = 'account_id')
               = ANY (con.conkey)
$$, 'every foreign key between customer tables is composite with account_id');
SELECT is_empty($$
    SELECT con.conname
      FROM pg_catalog.pg_constraint con
      JOIN pg_catalog.pg_class src ON src.oid = con.conrelid
     WHERE con.contype = 'f' AND src.relname IN ('products', 'plans', 'campaigns', 'dunning_policies', 'subscription_transitions')
       AND src.relnamespace = 'subbilling'::regnamespace
       AND con.confrelid IN (SELECT oid FROM customer_tables UNION SELECT 'subbilling.accounts'::regclass)
$$, 'nothing points from catalog tables to customer tables');
SELECT results_eq($$
    SELECT i.indexrelid::regclass::text FROM pg_catalog.pg_index i
     WHERE i.indrelid = 'subbilling.accounts'::regclass AND i.indisunique ORDER BY 1
$$, ARRAY['accounts_external_id_key', 'accounts_pkey'],
    'accounts: the id, and external_id as the one global unique (docs/catalog.md)');

SELECT * FROM finish();
ROLLBACK;
