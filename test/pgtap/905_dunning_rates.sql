-- Dunning never stalls on a missing reference rate: the steps are taken,
-- interest is charged up to the last day with a known rate and the rest by a
-- later step once the rate is set (set_reference_rate); worker_status warns
-- about countries whose rates end within 30 days.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
\ir 660_fixture.psql

SELECT plan(14);

SELECT is((SELECT rate FROM reference_rates WHERE country = 'SE' AND valid @> '2026-03-01'::date), 2.00::numeric,
          'the Swedish reference rate of 2026H1 is shipped');

-- a Norwegian invoice due 2026-01-31: the shipped Norwegian rates end 2025-12-31
DELETE FROM reference_rates WHERE country = 'NO' AND upper(valid) > '2026-01-01';
SELECT pg_temp.account('nr1', 'NO', 'NOK') AS nr1 \gset
CREATE TEMP TABLE nr AS SELECT pg_temp.invoice('nr1', '1000.00 NOK', '2026-01-01') AS inv;
CREATE FUNCTION pg_temp.inv() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT inv FROM nr);
SELECT is((SELECT due_date FROM invoices WHERE id = pg_temp.inv()), '2026-01-31'::date, 'due 2026-01-31');

SELECT FROM run_dunning('2026-02-01');
SELECT FROM run_dunning('2026-02-10');
SELECT is(run_dunning('2026-02-20'), 1, 'the second reminder (with interest) is taken without a rate');
SELECT results_eq($$SELECT action, interest FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 2$$,
                  $$VALUES ('reminder', NULL::text)$$, 'no interest charged for days without a rate');
SELECT is((SELECT payload->>'interest_note' FROM events WHERE invoice_id = pg_temp.inv() AND type = 'dunning.reminder'
            AND (payload->>'step_no')::int = 2),
          'no reference rate for NO from 2026-02-01: interest from then on is charged by a later step',
          'the event says why and from when');
SELECT is((SELECT count(*) FROM billing_errors WHERE account_id = :nr1), 0::bigint, 'no billing error');
SELECT is(run_dunning('2026-03-02'), 1, 'the payment stop is taken');
SELECT is((SELECT status FROM subscriptions WHERE id = pg_temp.sub('nr1')), 'suspended', 'the subscription is suspended');

-- the rate is set: the collection charges the interest of all the days since the due date
SELECT is(set_reference_rate('NO', '2026-01-01', 4.00), '[2026-01-01,2026-07-01)'::daterange,
          'set_reference_rate: valid to the end of the half-year');
SELECT is(run_dunning('2026-03-17'), 1, 'the collection is taken');
SELECT results_eq($$SELECT action, interest FROM pg_temp.steps(pg_temp.inv()) WHERE step_no = 4$$,
                  -- 1250.00 NOK open, 45 days (2026-02-01 .. 2026-03-17) at 4.00 + 8 = 12 %: 125000 * 45 * 12 / 36500 = 1849.3
                  $$VALUES ('collection', '18.49 NOK')$$, 'the collection charges the interest of the days since the due date');
SELECT throws_ok($$SELECT set_reference_rate('XX1', '2026-01-01', 4)$$, '22023', NULL, 'an invalid country is refused');

-- worker_status warns while a country's rates end within 30 days
SELECT is((SELECT rate_warnings @> '[{"country": "NO"}]' FROM worker_status), true,
          'worker_status warns about NO (its rates end 2026-06-30, less than 30 days ahead)');
INSERT INTO reference_rates (country, valid, rate)
SELECT 'NO', daterange('2026-07-01', greatest(current_date + 100, '2026-07-02')), 4.00;
SELECT is((SELECT rate_warnings @> '[{"country": "NO"}]' FROM worker_status), false,
          'no warning once the rates reach more than 30 days ahead');

SELECT * FROM finish();
ROLLBACK;
