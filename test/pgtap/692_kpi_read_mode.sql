-- The read mode of the MRR views (subbilling.kpi_read, docs/kpis.md): in
-- mode exact (the default) the figures are the definition's; in mode
-- snapshot, with a usable snapshot, they are the snapshot's as they are (as
-- of its day and refresh, marks not applied, months up to the snapshot's),
-- nothing computed live; without a usable snapshot (none, invalidated, of
-- another time zone) mode snapshot reads as exact.  kpi_snapshot_status
-- says which, how old the snapshot is and how many accounts changed since.
-- A snapshot of an earlier day is made as in 690: taken in Etc/GMT+12, read
-- in Etc/GMT-14 (a day or two later); the figures the definition gave when
-- it was taken are kept to compare with.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL subbilling.notify = off;
SET LOCAL TimeZone = 'Etc/GMT+12';
SET LOCAL jit = off;  -- the views' plans are estimated expensive; compiling them would take seconds (docs/kpis.md)

SELECT plan(28);

-- the setting
SELECT is((SELECT row(context, vartype, boot_val, enumvals)::text FROM pg_catalog.pg_settings WHERE name = 'subbilling.kpi_read'),
          row('user', 'enum', 'exact', '{exact,snapshot}'::text[])::text,
          'subbilling.kpi_read: set by any user, exact or snapshot, exact by default');
SELECT throws_ok($$SET LOCAL subbilling.kpi_read = 'stale'$$, '22023',
                 'invalid value for parameter "subbilling.kpi_read": "stale"', 'any other value is refused');

INSERT INTO products (code, name) VALUES ('r_saas', 'Read SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'r_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('r_m', '1 month', 'flat', '99.00 SEK'), ('r_seat', '1 month', 'per_unit', '33.33 SEK'),
               ('r_em', '1 month', 'flat', '10.00 EUR'), ('r_unused', '1 month', 'flat', '5.00 SEK')) AS x(code, bp, model, price);
-- 30 customers (a fifth in EUR), one subscription each, started over the last two years
DO $$
DECLARE
    acc bigint;
    cur text;
BEGIN
    FOR n IN 1 .. 30 LOOP
        cur := CASE WHEN n % 5 = 0 THEN 'EUR' ELSE 'SEK' END;
        INSERT INTO subbilling.accounts (external_id, name, country, currency)
        VALUES ('r_' || n, 'Read ' || n, 'SE', cur) RETURNING id INTO acc;
        PERFORM subbilling.subscribe(acc, CASE cur WHEN 'EUR' THEN 'r_em' WHEN 'SEK' THEN (ARRAY['r_m', 'r_seat'])[1 + n % 2] END,
                                     1 + n % 3, current_date - 25 * n);
    END LOOP;
END $$;
-- customers with MRR left out in one or the other (both ways)
CREATE FUNCTION pg_temp.diff(a regclass, b regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT ALL TABLE %s) UNION ALL (TABLE %s EXCEPT ALL TABLE %s)) x', a, b, b, a)
       INTO n;
    RETURN n;
END $$;
CREATE TEMP VIEW movements AS SELECT * FROM subbilling_internal.kpi_movements;
CREATE TEMP VIEW movements_ref AS SELECT * FROM subbilling_internal.kpi_movements_ref;

-- no snapshot yet: mode snapshot reads as exact, and says so
SET LOCAL subbilling.kpi_read = 'snapshot';
SELECT is((SELECT row(as_of, refreshed_at, time_zone, of_today, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          row(NULL::date, NULL::timestamptz, NULL::text, false, 'exact_no_snapshot', 'no snapshot')::text,
          'no snapshot: one row, mode snapshot falls back to exact');
SELECT is(pg_temp.diff('movements', 'movements_ref'), 0::bigint, 'and the figures are the definition''s');

-- the snapshot, taken on a day in Etc/GMT+12; the definition's figures then
SET LOCAL subbilling.kpi_read = 'exact';
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 100::bigint, 'a full refresh on a day in Etc/GMT+12');
CREATE TEMP TABLE at_snapshot AS SELECT * FROM subbilling_internal.kpi_movements_ref;
CREATE TEMP TABLE mrr_at_snapshot AS SELECT * FROM kpi_mrr;
SELECT is((SELECT row(as_of, refreshed_at, time_zone, marked_accounts, of_today, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          row(current_date, now(), 'Etc/GMT+12', 0::bigint, true, 'exact', NULL::text)::text,
          'a snapshot of today, read in mode exact');

-- read a day or two later, after a backdated change of one account
UPDATE subbilling_internal.kpi_snapshot_state SET time_zone = 'Etc/GMT-14';
SET LOCAL TimeZone = 'Etc/GMT-14';
SELECT ok((SELECT computed_on < current_date FROM subbilling_internal.kpi_snapshot_state), 'read a day or two later');
SELECT lives_ok($$SELECT change_quantity(s.id, 9, current_date - 70)
                    FROM subscriptions s JOIN accounts a ON a.id = s.account_id WHERE a.external_id = 'r_7'$$,
                'a backdated change (9 seats from 70 days ago)');
SELECT is((SELECT count(DISTINCT account_id) FROM subbilling_internal.kpi_dirty_accounts), 1::bigint, 'its account is marked');
SELECT cmp_ok(pg_temp.diff('at_snapshot', 'movements_ref'), '>', 0::bigint,
              'the definition''s figures are no longer those of the snapshot''s time');

-- mode exact: the definition's
SELECT is(pg_temp.diff('movements', 'movements_ref'), 0::bigint, 'mode exact: the definition''s figures');
SELECT is((SELECT row(as_of, time_zone, marked_accounts, of_today, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          (SELECT row(computed_on, 'Etc/GMT-14', 1::bigint, false, 'exact', NULL::text)::text
             FROM subbilling_internal.kpi_snapshot_state),
          'the status: of the earlier day, one account marked since, mode exact');

-- mode snapshot: the snapshot's figures as they are, as of its day
SET LOCAL subbilling.kpi_read = 'snapshot';
SELECT is(pg_temp.diff('movements', 'at_snapshot'), 0::bigint,
          'mode snapshot: the figures of the snapshot''s time (the mark not applied, months up to the snapshot''s)');
SELECT is((SELECT max(month) FROM subbilling_internal.kpi_movements),
          (SELECT date_trunc('month', computed_on)::date FROM subbilling_internal.kpi_snapshot_state),
          'the last month is the snapshot''s');
SELECT is(pg_temp.diff('kpi_mrr', 'mrr_at_snapshot'), 0::bigint, 'kpi_mrr too');
SELECT is((SELECT row(as_of, refreshed_at, marked_accounts, of_today, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          (SELECT row(computed_on, now(), 1::bigint, false, 'snapshot', NULL::text)::text FROM subbilling_internal.kpi_snapshot_state),
          'the status: the snapshot''s day and refresh, one account changed since, mode snapshot');
-- nothing is computed live: a wrong row in the boundary month (read live in mode exact) shows
UPDATE subbilling_internal.kpi_snapshot_months SET end_mrr = end_mrr + 1000
 WHERE currency = 'SEK' AND month = (SELECT date_trunc('month', computed_on) FROM subbilling_internal.kpi_snapshot_state);
SELECT is(pg_temp.diff('movements', 'at_snapshot'), 2::bigint, 'mode snapshot reads the boundary month from the snapshot');
SET LOCAL subbilling.kpi_read = 'exact';
SELECT is(pg_temp.diff('movements', 'movements_ref'), 0::bigint, 'mode exact computes it live');
SET LOCAL subbilling.kpi_read = 'snapshot';
UPDATE subbilling_internal.kpi_snapshot_months SET end_mrr = end_mrr - 1000
 WHERE currency = 'SEK' AND month = (SELECT date_trunc('month', computed_on) FROM subbilling_internal.kpi_snapshot_state);

-- the reader reads the status and the views in mode snapshot
GRANT SELECT ON mrr_at_snapshot TO subbilling_reader;
SET LOCAL ROLE subbilling_reader;
SELECT is((SELECT read_mode FROM kpi_snapshot_status), 'snapshot', 'the reader reads kpi_snapshot_status');
SELECT is((SELECT count(*) FROM kpi_mrr), (SELECT count(*) FROM mrr_at_snapshot), 'and kpi_mrr in mode snapshot');
RESET ROLE;

-- the daily refresh brings it to today: both modes give the definition's figures
UPDATE subbilling_internal.kpi_snapshot_state SET refreshed_at = '2000-01-01';
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 0::bigint, 'the daily refresh');
SELECT is((SELECT row(as_of, refreshed_at, marked_accounts, of_today, read_mode)::text FROM kpi_snapshot_status),
          row(current_date, now(), 0::bigint, true, 'snapshot')::text, 'the status: of today, refreshed now, nothing marked');
SELECT is(pg_temp.diff('movements', 'movements_ref'), 0::bigint, 'mode snapshot on a snapshot of today: the definition''s figures');
-- the marked-only refresh sets the refresh time too
UPDATE subbilling_internal.kpi_snapshot_state SET refreshed_at = '2000-01-01';
SELECT is(refresh_kpi_snapshots(true), 0::bigint, 'a marked-only refresh with nothing marked');
SELECT is((SELECT refreshed_at FROM kpi_snapshot_status), now(), 'the marked-only refresh sets refreshed_at');

-- a snapshot of another time zone is not usable: exact, and the status says why
UPDATE subbilling_internal.kpi_snapshot_state SET time_zone = 'Asia/Tokyo', computed_on = current_date - 1;
SELECT is((SELECT row(of_today, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          row(false, 'exact_no_snapshot', 'other time zone')::text, 'another time zone: mode snapshot falls back to exact');
SELECT is(pg_temp.diff('movements', 'movements_ref'), 0::bigint, 'with the definition''s figures');

-- invalidated (a plan's price changed): no snapshot
UPDATE subbilling_internal.kpi_snapshot_state SET time_zone = 'Etc/GMT-14', computed_on = current_date;
UPDATE plans SET price = '6.00 SEK' WHERE code = 'r_unused';
SELECT is((SELECT row(as_of, read_mode, unusable_reason)::text FROM kpi_snapshot_status),
          row(NULL::date, 'exact_no_snapshot', 'no snapshot')::text,
          'invalidated by a change of a plan: mode snapshot falls back to exact');

SELECT * FROM finish();
ROLLBACK;
