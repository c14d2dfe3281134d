-- The worker's SQL surface: objects, settings, privileges, run_worker_cycle(),
-- worker_status.  The background worker itself is tested in test/t/010_worker.pl.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SELECT plan(63);

-- Runs a query as another role, returning its single value as text.
CREATE FUNCTION pg_temp.as_role(r name, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    EXECUTE q INTO res;
    RESET ROLE;
    RETURN res;
END
$$;

CREATE ROLE subbilling_tap_nobody NOLOGIN;
GRANT USAGE ON SCHEMA subbilling TO subbilling_tap_nobody;
CREATE ROLE subbilling_tap_operator NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE subbilling_tap_reader NOLOGIN IN ROLE subbilling_reader;

-- Objects ---------------------------------------------------------------------
SELECT has_table('subbilling', 'worker_runs', 'table worker_runs');
SELECT has_table('subbilling', 'billing_errors', 'table billing_errors');
SELECT has_view('subbilling', 'worker_status', 'view worker_status');
SELECT col_is_pk('subbilling', 'worker_runs', 'id', 'worker_runs keyed by id');
SELECT col_is_pk('subbilling', 'billing_errors', ARRAY['account_id', 'id'],
                 'billing_errors keyed by (account_id, id): customer-owned');
SELECT col_not_null('subbilling', 'billing_errors', 'account_id', 'billing_errors.account_id NOT NULL');
SELECT col_type_is('subbilling', 'billing_errors', 'account_id', 'bigint', 'account_id is bigint');
SELECT col_type_is('subbilling', 'worker_runs', 'id', 'bigint', 'run ids are bigint');
SELECT col_type_is('subbilling', 'worker_runs', 'started_at', 'timestamp with time zone', 'started_at timestamptz');
SELECT has_function('subbilling', 'wake_worker', '{}'::name[], 'wake_worker()');
SELECT function_returns('subbilling', 'wake_worker', '{}'::name[], 'boolean', 'wake_worker() returns boolean');
SELECT has_function('subbilling', 'run_worker_cycle', ARRAY['timestamp with time zone'], 'run_worker_cycle(timestamptz)');
SELECT has_function('subbilling', 'run_billing_batch', ARRAY['integer', 'timestamp with time zone'], 'run_billing_batch(int, timestamptz)');
SELECT has_function('subbilling', 'run_dunning_batch', ARRAY['integer', 'date'], 'run_dunning_batch(int, date)');
SELECT has_function('subbilling', 'worker_config', '{}'::name[], 'worker_config()');
SELECT has_function('subbilling', 'current_run_id', '{}'::name[], 'current_run_id()');
SELECT volatility_is('subbilling', 'wake_worker', '{}'::name[], 'volatile', 'wake_worker() is volatile');
SELECT volatility_is('subbilling', 'run_worker_cycle', ARRAY['timestamp with time zone'], 'volatile', 'run_worker_cycle() is volatile');
SELECT volatility_is('subbilling', 'worker_config', '{}'::name[], 'stable', 'worker_config() is stable');
SELECT volatility_is('subbilling', 'current_run_id', '{}'::name[], 'stable', 'current_run_id() is stable');
SELECT isnt_definer('subbilling', 'wake_worker', '{}'::name[], 'wake_worker() is not SECURITY DEFINER');
SELECT has_role('subbilling_operator', 'role subbilling_operator exists');
SELECT has_role('subbilling_reader', 'role subbilling_reader exists');
SELECT is((SELECT count(*)::int FROM pg_catalog.pg_description d
            WHERE d.objoid IN ('subbilling.worker_runs'::regclass, 'subbilling.billing_errors'::regclass,
                               'subbilling.worker_status'::regclass,
                               'subbilling.wake_worker()'::regprocedure,
                               'subbilling.run_worker_cycle(timestamptz)'::regprocedure,
                               'subbilling.run_billing_batch(int, timestamptz)'::regprocedure,
                               'subbilling.run_dunning_batch(int, date)'::regprocedure,
                               'subbilling.worker_config()'::regprocedure,
                               'subbilling.current_run_id()'::regprocedure)
              AND d.objsubid = 0), 9, 'every object has a comment');

-- Settings --------------------------------------------------------------------
SELECT results_eq(
    $$SELECT name::text, context::text, vartype::text, boot_val, coalesce(min_val, ''),
             coalesce(max_val, ''), coalesce(unit, '')
        FROM pg_catalog.pg_settings WHERE name LIKE 'subbilling.%' AND name NOT LIKE 'subbilling.webhook%' ORDER BY name$$,
    $$VALUES ('subbilling.batch_size', 'sighup', 'integer', '1000', '1', '1000000', ''),
             ('subbilling.database', 'sighup', 'string', 'postgres', '', '', ''),
             ('subbilling.kpi_read', 'user', 'enum', 'exact', '', '', ''),
             ('subbilling.kpi_refresh_interval', 'sighup', 'integer', '60', '0', '2147483647', 's'),
             ('subbilling.naptime', 'sighup', 'integer', '60', '1', '2147483647', 's'),
             ('subbilling.notify', 'superuser', 'bool', 'on', '', '', ''),
             ('subbilling.worker_enabled', 'sighup', 'bool', 'on', '', '', '')$$,
    'the seven settings: contexts, types, defaults, ranges, units');
SELECT is((SELECT row(c.enabled, c.naptime, c.batch_size, c.database, c.notify)::text
             FROM subbilling.worker_config() c),
          row(current_setting('subbilling.worker_enabled')::boolean,
              (SELECT setting::int FROM pg_catalog.pg_settings WHERE name = 'subbilling.naptime'),
              current_setting('subbilling.batch_size')::int,
              current_setting('subbilling.database'),
              current_setting('subbilling.notify')::boolean)::text,
          'worker_config() reports the session''s settings, naptime in seconds');
SELECT throws_ok($$SET subbilling.naptime = 5$$, '55P02',
                 'parameter "subbilling.naptime" cannot be changed now', 'naptime is reload-only');
SELECT throws_ok($$SET subbilling.worker_enabled = off$$, '55P02',
                 'parameter "subbilling.worker_enabled" cannot be changed now', 'worker_enabled is reload-only');
SELECT throws_ok($$SET subbilling.no_such_setting = 1$$, '42602',
                 'invalid configuration parameter name "subbilling.no_such_setting"',
                 'the subbilling. prefix is reserved');
SELECT lives_ok($$SET LOCAL subbilling.notify = off$$, 'a superuser may switch notify off');
SELECT is(current_setting('subbilling.notify'), 'off', 'notify is off in this transaction');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SET subbilling.notify = on')$$, '42501',
                 'permission denied to set parameter "subbilling.notify"', 'notify is superuser-only');

-- Privileges ------------------------------------------------------------------
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SELECT subbilling.wake_worker()')$$,
                 '42501', 'permission denied for function wake_worker', 'PUBLIC may not wake the worker');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SELECT subbilling.run_worker_cycle()')$$,
                 '42501', 'permission denied for function run_worker_cycle', 'PUBLIC may not run a cycle');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SELECT subbilling.run_billing_batch(1, now())')$$,
                 '42501', 'permission denied for function run_billing_batch', 'PUBLIC may not run a billing batch');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_nobody', 'SELECT count(*) FROM subbilling.worker_status')$$,
                 '42501', 'permission denied for view worker_status', 'PUBLIC may not read worker_status');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT subbilling.wake_worker()')$$,
                 '42501', 'permission denied for function wake_worker', 'readers may not wake the worker');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT count(*) FROM subbilling.worker_status')$$,
                 '42501', 'permission denied for view worker_status', 'readers (BI tools) do not read worker_status');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT count(*) FROM subbilling.worker_runs')$$,
                 '42501', 'permission denied for table worker_runs', 'readers do not read worker_runs (error messages)');
SELECT throws_ok($$SELECT pg_temp.as_role('subbilling_tap_reader', 'SELECT count(*) FROM subbilling.billing_errors')$$,
                 '42501', 'permission denied for table billing_errors', 'readers do not read billing_errors (customer data)');
SELECT is(pg_temp.as_role('subbilling_tap_operator',
          'SELECT count(*) FROM (SELECT FROM subbilling.worker_status UNION ALL SELECT FROM subbilling.worker_runs UNION ALL SELECT FROM subbilling.billing_errors) s'),
          (SELECT (1 + (SELECT count(*) FROM subbilling.worker_runs) + (SELECT count(*) FROM subbilling.billing_errors))::text),
          'operators read worker_status, worker_runs and billing_errors');
SELECT is(pg_temp.as_role('subbilling_tap_operator', 'SELECT subbilling.wake_worker() IS NOT NULL'), 'true',
          'operators may call wake_worker()');
SELECT is(pg_temp.as_role('subbilling_tap_operator', 'SELECT row(c.*)::text FROM subbilling.run_worker_cycle() c'),
          '(0,0,0)', 'operators may run a cycle');

-- run_worker_cycle() with nothing due ---------------------------------------------
SELECT is(subbilling.current_run_id(), NULL, 'current_run_id() is NULL outside a run');
SELECT results_eq($$SELECT * FROM subbilling.run_worker_cycle('2030-01-31 12:00+00')$$,
                  $$VALUES (0, 0, 0)$$, 'run_worker_cycle() returns zeros when nothing is due');
SELECT is((SELECT row(origin, status, pid = pg_backend_pid(), as_of, batch_size, batches, invoices, errors,
                      dunning_steps, transitions, finished_at IS NOT NULL, sqlstate, message)::text
             FROM subbilling.worker_runs ORDER BY id DESC LIMIT 1),
          row('sql', 'ok', true, '2030-01-31 12:00+00'::timestamptz,
              current_setting('subbilling.batch_size')::int, 2, 0, 0, 0, 0, true, NULL::text, NULL::text)::text,
          'the cycle is recorded: origin sql, as_of, one billing and one dunning batch');
SELECT is(subbilling.current_run_id(), NULL, 'current_run_id() is cleared after the run');

-- run_worker_cycle() with fake batch functions (rolled back with the test) ---------
CREATE TEMP SEQUENCE tap_calls;
CREATE TEMP TABLE tap_seen (run_id bigint, batch_size int, as_of timestamptz);
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint := nextval('tap_calls');
BEGIN
    INSERT INTO tap_seen VALUES (subbilling.current_run_id(), run_billing_batch.batch_size, run_billing_batch.as_of);
    IF n < 3 THEN
        RETURN QUERY SELECT 3, 1, true;
    ELSE
        RETURN QUERY SELECT 2, 0, false;
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION subbilling.run_dunning_batch(batch_size int, as_of date)
RETURNS TABLE (steps int, errors int, more boolean)
LANGUAGE sql VOLATILE AS $$ SELECT 5, 2, false $$;
SELECT results_eq($$SELECT * FROM subbilling.run_worker_cycle('2030-02-01 00:00+00')$$,
                  $$VALUES (8, 4, 5)$$, 'three billing batches and one dunning batch add up');
SELECT is((SELECT row(batches, invoices, errors, dunning_steps, status)::text
             FROM subbilling.worker_runs ORDER BY id DESC LIMIT 1),
          '(4,8,4,5,ok)', 'the run row holds the sums');
SELECT is((SELECT row(count(*), count(DISTINCT run_id), min(run_id) = (SELECT max(id) FROM subbilling.worker_runs),
                      bool_and(batch_size = current_setting('subbilling.batch_size')::int),
                      bool_and(as_of = '2030-02-01 00:00+00'))::text FROM tap_seen),
          '(3,1,t,t,t)', 'each batch saw current_run_id(), batch_size and as_of');

-- a batch that claims more but does nothing ends the phase instead of looping
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE sql VOLATILE AS $$ SELECT 0, 0, true $$;
SELECT results_eq($$SELECT * FROM subbilling.run_worker_cycle()$$, $$VALUES (0, 2, 5)$$,
                  'a batch with more = true but no progress ends the billing phase');
SELECT is((SELECT row(batches, status, message)::text FROM subbilling.worker_runs ORDER BY id DESC LIMIT 1),
          '(2,ok,"billing stopped: a batch reported more due work but handled none")',
          'one billing batch, one dunning batch, and the early end explained');

-- an error in a batch propagates and records nothing (the caller's transaction fails)
CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE plpgsql VOLATILE AS $$ BEGIN RAISE EXCEPTION 'engine failure' USING ERRCODE = 'SBT02'; END $$;
CREATE TEMP TABLE tap_before AS SELECT count(*) AS n FROM subbilling.worker_runs;
SELECT throws_ok($$SELECT * FROM subbilling.run_worker_cycle()$$, 'SBT02', 'engine failure',
                 'an error in a batch reaches the caller of run_worker_cycle()');
SELECT is((SELECT count(*) FROM subbilling.worker_runs), (SELECT n FROM tap_before),
          'the failed cycle left no run row');

-- worker_status ---------------------------------------------------------------
SELECT is((SELECT count(*)::int FROM subbilling.worker_status), 1, 'worker_status has one row');
SELECT is((SELECT row(last_run_id = (SELECT max(id) FROM subbilling.worker_runs), last_run_origin,
                      last_run_status, last_run_invoices, last_run_errors, last_run_dunning_steps,
                      last_ok_finished_at IS NOT NULL)::text
             FROM subbilling.worker_status),
          '(t,sql,ok,0,2,5,t)', 'worker_status shows the last run');
SELECT is((SELECT row(open_errors, recent_errors)::text FROM subbilling.worker_status),
          row(0::bigint, '[]'::jsonb)::text, 'no open billing errors');
INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, sqlstate, message, created_at)
VALUES (42, 7, 1, '22000', 'currency mismatch', '2030-01-01 10:00+00'),
       (43, 8, 1, '22003', 'price out of range', '2030-01-01 11:00+00'),
       (44, 9, 1, 'XX000', 'resolved already', '2030-01-01 12:00+00');
UPDATE subbilling.billing_errors SET resolved_at = now() WHERE account_id = 44;
SELECT is((SELECT open_errors FROM subbilling.worker_status), 2::bigint, 'open_errors counts unresolved errors');
SELECT is((SELECT jsonb_path_query_array(recent_errors, '$[*].account_id') FROM subbilling.worker_status),
          '[43, 42]'::jsonb, 'recent_errors lists open errors, newest first');
SELECT is((SELECT recent_errors->0->>'message' FROM subbilling.worker_status), 'price out of range',
          'recent_errors carries the message');

-- Constraints -----------------------------------------------------------------
SELECT throws_ok($$INSERT INTO subbilling.billing_errors (message) VALUES ('x')$$, '23502', NULL,
                 'billing_errors needs an account_id');
SELECT throws_ok($$INSERT INTO subbilling.worker_runs (pid, as_of, batch_size, status) VALUES (1, now(), 1, 'bogus')$$,
                 '23514', NULL, 'worker_runs.status is running, ok or error');
SELECT throws_ok($$INSERT INTO subbilling.worker_runs (pid, as_of, batch_size, status) VALUES (1, now(), 1, 'error')$$,
                 '23514', NULL, 'a failed run has a finish time and a message');

SELECT * FROM finish();
ROLLBACK;
