-- Roles and privileges: subbilling_operator runs the lifecycle, subbilling_reader
-- reads, PUBLIC executes nothing that writes; definer functions pin search_path.
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(68);
\ir 300_fixture.psql

SELECT has_role('subbilling_operator', 'role subbilling_operator exists');
SELECT has_role('subbilling_reader', 'role subbilling_reader exists');
SELECT ok(NOT rolcanlogin, rolname || ' cannot log in (grant it to login roles)')
  FROM pg_roles WHERE rolname IN ('subbilling_operator', 'subbilling_reader') ORDER BY rolname;

SELECT is_empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'subbilling'::regnamespace AND p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
$$, 'every SECURITY DEFINER function pins its search_path');
SELECT is_empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'subbilling'::regnamespace AND p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%pg_temp')
$$, 'and puts pg_temp last');
SELECT is_empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'subbilling'::regnamespace AND p.provolatile = 'v' AND p.prokind = 'f'
       AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'no volatile function of the extension is executable by PUBLIC');
SELECT is_empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'subbilling'::regnamespace AND p.prosecdef
       AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'no SECURITY DEFINER function is executable by PUBLIC');
SELECT is_empty($$
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind IN ('r', 'v', 'S')
       AND (has_table_privilege('public', c.oid, 'SELECT') OR has_table_privilege('public', c.oid, 'INSERT')
            OR has_table_privilege('public', c.oid, 'UPDATE') OR has_table_privilege('public', c.oid, 'DELETE'))
$$, 'PUBLIC has no privilege on any table, view or sequence');
SELECT is_empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)
       AND obj_description(p.oid, 'pg_proc') IS NULL
$$, 'every function of the extension has a comment');
SELECT is_empty($$
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'subbilling'::regnamespace AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
$$, 'every table and view of the extension has a comment');
SELECT volatility_is('subbilling', f, 'volatile', f || ' is VOLATILE')
  FROM unnest(ARRAY['subscribe', 'add_addon', 'remove_addon', 'change_plan', 'change_quantity', 'pause', 'resume',
                    'cancel', 'record_usage', 'migrate_subscriptions', 'advance_subscriptions', 'set_subscription_status',
                    'events_after']) f;
SELECT volatility_is('subbilling_internal', 'emit_event', 'volatile', 'emit_event is VOLATILE');
SELECT volatility_is('subbilling', f, 'stable', f || ' is STABLE')
  FROM unnest(ARRAY['subscription_status', 'subscription_history', 'subscription_items_on']) f;
SELECT is_definer('subbilling', f, f || ' is SECURITY DEFINER')
  FROM unnest(ARRAY['subscribe', 'add_addon', 'remove_addon', 'change_plan', 'change_quantity', 'pause', 'resume',
                    'cancel', 'record_usage', 'migrate_subscriptions', 'advance_subscriptions']) f;

-- ---------------------------------------------------------------- as the roles
CREATE ROLE t_nobody NOLOGIN;
CREATE ROLE t_op NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE t_rd NOLOGIN IN ROLE subbilling_reader;
GRANT USAGE ON SCHEMA subbilling TO t_nobody;
SELECT pg_temp.acct('t_se') AS acct, subscribe(pg_temp.acct('t_se2'), 't_basic', 1, pg_temp.d(-5)) AS sub \gset

SET LOCAL ROLE t_nobody;
SELECT throws_ok(format('SELECT subbilling.subscribe(%s, %L)', :acct, 't_basic'), '42501',
                 'permission denied for function subscribe', 'PUBLIC cannot subscribe');
SELECT throws_ok(format('SELECT subbilling.cancel(%s)', :sub), '42501',
                 'permission denied for function cancel', 'PUBLIC cannot cancel');
SELECT throws_ok(format('SELECT subbilling_internal.emit_event(%s, %L, NULL, %L)', :acct, 'x.y', '{}'), '42501',
                 'permission denied for schema subbilling_internal', 'PUBLIC cannot emit events');
SELECT throws_ok('SELECT * FROM subbilling.events_after(0)', '42501',
                 'permission denied for function events_after', 'PUBLIC cannot read events');
SELECT throws_ok('SELECT * FROM subbilling.subscriptions', '42501',
                 'permission denied for table subscriptions', 'PUBLIC cannot read subscriptions');
RESET ROLE;

SET LOCAL ROLE t_op;
SELECT lives_ok(format('SELECT subbilling.subscribe(%s, %L, 2)', :acct, 't_pro'), 'the operator subscribes');
SELECT lives_ok(format('SELECT subbilling.change_quantity(%s, 3)', :sub), 'the operator changes a quantity');
SELECT lives_ok(format('SELECT subbilling.pause(%s, current_date + 1)', :sub), 'the operator pauses');
SELECT lives_ok('SELECT * FROM subbilling.events_after(0)', 'the operator reads events');
SELECT lives_ok('SELECT subbilling.advance_subscriptions()', 'the operator advances statuses');
SELECT lives_ok($$INSERT INTO subbilling.accounts (external_id, name, country, currency) VALUES ('t_op_made', 'Op', 'SE', 'SEK')$$,
                'the operator adds accounts (CHECKs call is_country_code)');
SELECT lives_ok($$INSERT INTO subbilling.plans (code, product_id, name, billing_period, price)
                  SELECT 't_op_plan', id, 'Op plan', 'monthly', '1.00 SEK' FROM subbilling.products WHERE code = 't_saas'$$,
                'the operator adds plans');
SELECT lives_ok($$UPDATE subbilling.plans SET name = 'Pro!' WHERE code = 't_pro'$$, 'the operator edits plans');
SELECT throws_ok($$UPDATE subbilling.plans SET price = '1.00 SEK' WHERE code = 't_pro'$$, '55000', NULL,
                 'the operator cannot reprice a plan in use either');
SELECT throws_ok(format('INSERT INTO subbilling.subscriptions (account_id, status, currency, start_date, billing_anchor) VALUES (%s, %L, %L, current_date, current_date)',
                        :acct, 'active', 'SEK'), '42501',
                 'permission denied for table subscriptions', 'subscriptions change only through the functions');
SELECT throws_ok(format('UPDATE subbilling.subscription_items SET quantity = 1 WHERE subscription_id = %s', :sub), '42501',
                 'permission denied for table subscription_items', 'items change only through the functions');
SELECT throws_ok(format('SELECT subbilling_internal.emit_event(%s, %L, NULL, %L)', :acct, 'x.y', '{}'), '42501',
                 'permission denied for schema subbilling_internal', 'emit_event is internal, even for the operator');
SELECT throws_ok($$DELETE FROM subbilling.plans WHERE code = 't_op_plan'$$, '42501',
                 'permission denied for table plans', 'the operator retires plans (active = false), never deletes');
RESET ROLE;

SET LOCAL ROLE t_rd;
SELECT throws_ok(format('SELECT * FROM subbilling.subscription_history(%s)', :sub), '42501', NULL,
                 'the reader does not read a history (customer data)');
SELECT throws_ok(format('SELECT subbilling.subscription_status(%s)', :sub), '42501', NULL, 'nor a status');
SELECT throws_ok('SELECT count(*) FROM subbilling.subscription_item_history', '42501', NULL,
                 'the reader does not read the history view (customer data; it reads the KPI views)');
SELECT throws_ok(format('SELECT subbilling.change_quantity(%s, 5)', :sub), '42501',
                 'permission denied for function change_quantity', 'the reader changes nothing');
SELECT throws_ok('SELECT * FROM subbilling.accounts', '42501', 'permission denied for table accounts', 'the reader does not read tables');
SELECT throws_ok('SELECT * FROM subbilling.events_after(0)', '42501', 'permission denied for function events_after', 'nor the outbox');
RESET ROLE;

-- A role with no grant at all: PUBLIC's USAGE on the schema lets it use the types and their
-- pure functions, and nothing else.
CREATE ROLE t_plain NOLOGIN;
SET LOCAL ROLE t_plain;
SELECT is(subbilling.price('19.99', 'SEK') * 3, '59.97 SEK'::subbilling.price, 'PUBLIC can use the price type and its functions');
SELECT is(subbilling.period_start('2024-01-31', 'monthly', 1), '2024-02-29'::date, 'PUBLIC can use billing periods');
SELECT throws_ok('SELECT * FROM subbilling.accounts', '42501',
                 'permission denied for table accounts', 'PUBLIC cannot read accounts');
SELECT throws_ok(format('SELECT subbilling.subscribe(%s, %L)', :acct, 't_basic'), '42501',
                 'permission denied for function subscribe', 'PUBLIC (no grant at all) cannot subscribe');
RESET ROLE;

SELECT is((SELECT count(*)::int FROM subscription_items WHERE subscription_id = :sub AND voided_at IS NULL), 2,
          'what the operator did was written (quantity change: two items)');

SELECT * FROM finish();
ROLLBACK;
