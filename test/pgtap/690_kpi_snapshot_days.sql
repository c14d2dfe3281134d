-- KPI snapshots across days: a month that closed before the snapshot's day
-- is measured on its last day, so its snapshot rows stay valid on later
-- days; the months from the snapshot's boundary month (the month of its
-- day) on are computed live until refresh_kpi_snapshots(true) brings the
-- snapshot to today, recomputing only those months (and marked accounts).
-- The figures must be the definition's (kpi_movements_ref) whatever the
-- day.  current_date is moved the only ways a test can: by time zone (a
-- snapshot taken in Etc/GMT+12, read in Etc/GMT-14, one or two days later:
-- this history has no payment stop, whose lift is a timestamp, so its
-- figures depend on the date alone) and by setting the snapshot's day back
-- (to the last day of last month: a month rollover, with that month's rows
-- made wrong as the 'as of that day' rows they would be).  Random
-- histories (plan and quantity changes, pauses, cancellations, suspensions,
-- discounts, returns; backdated ones too), seeded.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = off;

SELECT plan(25);
SELECT setseed(0.4242);

INSERT INTO products (code, name) VALUES ('d_saas', 'Days SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'd_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('d_m', '1 month', 'flat', '99.00 SEK'), ('d_q', '3 months', 'flat', '299.99 SEK'),
               ('d_y', '1 year', 'flat', '1001.00 SEK'), ('d_seat', '1 month', 'per_unit', '33.33 SEK'),
               ('d_em', '1 month', 'flat', '10.00 EUR'), ('d_eseat', '1 month', 'per_unit', '3.75 EUR'))
       AS x(code, bp, model, price);
INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods) VALUES
    ('d_forever', 'forever 15 %', 15, NULL, 'forever', NULL),
    ('d_rep', 'repeating 33 %', 33, NULL, 'repeating', 3);

CREATE FUNCTION pg_temp.rnd(n integer) RETURNS integer LANGUAGE sql VOLATILE RETURN floor(random() * n)::integer;
-- n random steps on random subscriptions of the test's accounts, at random
-- dates from the subscription's start to today (backdated ones included),
-- more of them in the last two months; steps the product refuses are
-- skipped.  Returns the steps taken.
CREATE FUNCTION pg_temp.steps(n integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    d      date;
    k      integer;
    done   integer := 0;
    plans_ text[];
BEGIN
    FOR i IN 1 .. n LOOP
        SELECT x.* INTO s FROM subbilling.subscriptions x JOIN subbilling.accounts a ON a.id = x.account_id
         WHERE a.external_id LIKE 'd\_%' ORDER BY random() LIMIT 1;
        plans_ := CASE s.currency WHEN 'EUR' THEN '{d_em,d_eseat}'::text[] ELSE '{d_m,d_q,d_y,d_seat}'::text[] END;
        d := CASE WHEN random() < 0.5 THEN greatest(s.start_date, current_date - pg_temp.rnd(62))
                  ELSE s.start_date + pg_temp.rnd(greatest(current_date - s.start_date, 1)) END;
        k := pg_temp.rnd(10);
        BEGIN
            IF k < 3 THEN
                PERFORM subbilling.change_plan(s.id, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], d);
            ELSIF k < 5 THEN
                PERFORM subbilling.change_quantity(s.id, 1 + pg_temp.rnd(8), d);
            ELSIF k < 6 THEN
                PERFORM subbilling.pause(s.id, d, d + 1 + pg_temp.rnd(90));
            ELSIF k < 7 THEN
                PERFORM subbilling.cancel(s.id, d);
            ELSIF k < 8 THEN
                PERFORM subbilling.set_subscription_status(s.id, (ARRAY['past_due', 'suspended', 'active'])[1 + pg_temp.rnd(3)], 'test');
            ELSE
                PERFORM subbilling.subscribe(s.account_id, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], 1 + pg_temp.rnd(3), d,
                                             CASE WHEN s.currency = 'SEK' AND random() < 0.3
                                                  THEN (ARRAY['d_forever', 'd_rep'])[1 + pg_temp.rnd(2)] END);
            END IF;
            done := done + 1;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    RETURN done;
END $$;
-- rows in which the views' movements and the definition's differ (both ways)
CREATE FUNCTION pg_temp.diff() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ((TABLE subbilling_internal.kpi_movements EXCEPT ALL TABLE subbilling_internal.kpi_movements_ref)
                          UNION ALL
                          (TABLE subbilling_internal.kpi_movements_ref EXCEPT ALL TABLE subbilling_internal.kpi_movements)) x
$$;
-- snapshot customer rows that differ from the live ones (both ways)
CREATE FUNCTION pg_temp.rows_diff() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ((TABLE subbilling_internal.kpi_snapshot_customers EXCEPT ALL TABLE subbilling_internal.kpi_customer_movements)
                          UNION ALL
                          (TABLE subbilling_internal.kpi_customer_movements EXCEPT ALL TABLE subbilling_internal.kpi_snapshot_customers)) x
$$;
-- month sums that differ from the sums of the snapshot's customer rows
CREATE FUNCTION pg_temp.sums_diff() RETURNS bigint LANGUAGE sql AS $$
    WITH s AS (
        SELECT c.currency, c.month, count(*) AS customer_rows, sum(c.prev) AS start_mrr,
               coalesce(sum(c.cur) FILTER (WHERE c.prev = 0 AND c.first_month = c.month), 0) AS new_mrr,
               coalesce(sum(c.cur - c.prev) FILTER (WHERE c.prev > 0 AND c.cur > c.prev), 0) AS expansion_mrr,
               coalesce(sum(c.cur) FILTER (WHERE c.prev = 0 AND c.first_month < c.month), 0) AS reactivation_mrr,
               coalesce(sum(c.prev - c.cur) FILTER (WHERE c.cur > 0 AND c.cur < c.prev), 0) AS contraction_mrr,
               coalesce(sum(c.prev) FILTER (WHERE c.cur = 0), 0) AS churned_mrr, sum(c.cur) AS end_mrr,
               count(*) FILTER (WHERE c.prev > 0) AS customers_start,
               count(*) FILTER (WHERE c.prev = 0 AND c.first_month = c.month) AS new_customers,
               count(*) FILTER (WHERE c.prev = 0 AND c.first_month < c.month) AS reactivated_customers,
               count(*) FILTER (WHERE c.cur = 0) AS churned_customers, count(*) FILTER (WHERE c.cur > 0) AS customers_end,
               sum(c.subscriptions) AS subscriptions_end
          FROM subbilling_internal.kpi_snapshot_customers c
         GROUP BY c.currency, c.month
    )
    SELECT count(*) FROM ((SELECT * FROM s EXCEPT ALL SELECT * FROM subbilling_internal.kpi_snapshot_months WHERE customer_rows <> 0)
                          UNION ALL
                          (SELECT * FROM subbilling_internal.kpi_snapshot_months WHERE customer_rows <> 0
                           EXCEPT ALL SELECT * FROM s)) x
$$;
-- adds d to one month's snapshot figures (the month sums and one customer
-- row of that month with MRR): a wrong snapshot month
CREATE FUNCTION pg_temp.spoil(m date, d bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE subbilling_internal.kpi_snapshot_months SET end_mrr = end_mrr + d WHERE currency = 'SEK' AND month = m;
$$;
-- the snapshot's boundary month (of its day, or of today if earlier)
CREATE FUNCTION pg_temp.boundary() RETURNS date LANGUAGE sql AS $$
    SELECT date_trunc('month', LEAST(computed_on, current_date))::date FROM subbilling_internal.kpi_snapshot_state
$$;

-- 100 customers (a fifth in EUR), one subscription each from 2023 on
DO $$
DECLARE
    acc bigint;
    cur text;
BEGIN
    FOR n IN 1 .. 100 LOOP
        cur := CASE WHEN n % 5 = 0 THEN 'EUR' ELSE 'SEK' END;
        INSERT INTO subbilling.accounts (external_id, name, country, currency)
        VALUES ('d_' || n, 'Days ' || n, 'SE', cur) RETURNING id INTO acc;
        PERFORM subbilling.subscribe(acc, CASE cur WHEN 'EUR' THEN 'd_em' ELSE (ARRAY['d_m', 'd_q', 'd_y', 'd_seat'])[1 + n % 4] END,
                                     1 + n % 3, date '2023-01-01' + pg_temp.rnd(900 + (current_date - date '2025-06-20')),
                                     CASE WHEN cur = 'SEK' AND n % 7 = 0 THEN 'd_forever' END,
                                     CASE WHEN n % 11 = 0 THEN 1 + pg_temp.rnd(30) END);
    END LOOP;
END $$;
SELECT cmp_ok(pg_temp.steps(250), '>', 80, 'a random history of more than 80 changes');
SELECT ok(NOT EXISTS (SELECT FROM dunning_actions d JOIN accounts a ON a.id = d.account_id WHERE a.external_id LIKE 'd\_%')
          AND EXISTS (SELECT FROM subscriptions s JOIN accounts a ON a.id = s.account_id
                       WHERE a.external_id LIKE 'd\_%' AND s.status = 'suspended'),
          'no payment stop (the figures depend on the date alone), and suspended subscriptions (not counted today)');

-- a snapshot of yesterday (or the day before): taken in Etc/GMT+12, read in Etc/GMT-14
SET LOCAL TimeZone = 'Etc/GMT+12';
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 1000::bigint, 'a full refresh on a day in Etc/GMT+12');
UPDATE subbilling_internal.kpi_snapshot_state SET time_zone = 'Etc/GMT-14';
SET LOCAL TimeZone = 'Etc/GMT-14';
SELECT ok((SELECT computed_on < current_date FROM subbilling_internal.kpi_snapshot_state), 'read a day or two later');
SELECT is(pg_temp.diff(), 0::bigint, 'a snapshot of an earlier day: the definition''s rows');
-- the closed months come from the snapshot, the boundary month on does not
SELECT pg_temp.spoil((pg_temp.boundary() - interval '1 month')::date, 1);
SELECT is(pg_temp.diff(), 2::bigint, 'the month before the boundary is read from the snapshot (a wrong row shows)');
SELECT pg_temp.spoil((pg_temp.boundary() - interval '1 month')::date, -1);
SELECT pg_temp.spoil(pg_temp.boundary(), 1000);
SELECT is(pg_temp.diff(), 0::bigint, 'the boundary month is computed live (its snapshot row is not read)');
SELECT pg_temp.spoil(pg_temp.boundary(), -1000);

-- changes on the later day, backdated and current: marked, read live
SELECT cmp_ok(pg_temp.steps(40), '>', 10, 'changes after the snapshot');
SELECT is(pg_temp.diff(), 0::bigint, 'an earlier day''s snapshot with marked accounts: the definition''s rows');

-- the daily refresh: the months from the boundary on, and the marked accounts
UPDATE subbilling_internal.kpi_snapshot_customers SET subscriptions = subscriptions + 100
 WHERE month = (pg_temp.boundary() - interval '2 months')::date
   AND account_id = (SELECT min(c.account_id) FROM subbilling_internal.kpi_snapshot_customers c
                      WHERE c.month = (pg_temp.boundary() - interval '2 months')::date
                        AND c.account_id NOT IN (SELECT account_id FROM subbilling_internal.kpi_dirty_accounts));
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 50::bigint, 'refresh_kpi_snapshots(true) brings the snapshot to today');
SELECT ok((SELECT computed_on = current_date AND time_zone = 'Etc/GMT-14' AND NOT building FROM subbilling_internal.kpi_snapshot_state)
          AND NOT EXISTS (SELECT FROM subbilling_internal.kpi_dirty_accounts), 'of today, no account marked');
SELECT is(pg_temp.rows_diff(), 2::bigint,
          'it recomputed neither the closed months of unmarked accounts (a wrong row there stays) nor anything else wrongly');
UPDATE subbilling_internal.kpi_snapshot_customers SET subscriptions = subscriptions - 100
 WHERE month = (pg_temp.boundary() - interval '2 months')::date AND subscriptions >= 100;
SELECT ok(pg_temp.rows_diff() = 0 AND pg_temp.sums_diff() = 0,
          'the snapshot holds the live customer rows, the month sums are their sums');
SELECT is(pg_temp.diff(), 0::bigint, 'and the views give the definition''s rows');

-- a month rollover: the snapshot of the last day of last month, whose rows of
-- that month were as of that day (made wrong here), read today
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = date_trunc('month', current_date)::date - 1;
SELECT is(pg_temp.boundary(), (date_trunc('month', current_date) - interval '1 month')::date,
          'its boundary is last month');
UPDATE subbilling_internal.kpi_snapshot_customers SET cur = cur + 7
 WHERE month = pg_temp.boundary() AND cur > 0;
SELECT pg_temp.spoil(pg_temp.boundary(), 7);
SELECT is(pg_temp.diff(), 0::bigint, 'last month is measured on its last day, live: the definition''s rows');
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 50::bigint, 'the daily refresh after the rollover');
SELECT ok(pg_temp.rows_diff() = 0 AND pg_temp.sums_diff() = 0 AND pg_temp.diff() = 0,
          'it recomputed last month and this one: live rows, their sums, the definition''s figures');

-- a snapshot taken in another time zone is not used, and the daily refresh rebuilds it whole
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date - 1, time_zone = 'Asia/Tokyo';
SELECT pg_temp.spoil((pg_temp.boundary() - interval '3 months')::date, 1);
SELECT is(pg_temp.diff(), 0::bigint, 'a snapshot of another time zone is not read');
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 1000::bigint, 'the daily refresh rebuilds it whole');
SELECT ok((SELECT computed_on = current_date AND time_zone = 'Etc/GMT-14' FROM subbilling_internal.kpi_snapshot_state)
          AND pg_temp.rows_diff() = 0 AND pg_temp.sums_diff() = 0, 'in this time zone, the live rows');

-- a snapshot dated after today (the clock went back): the months from today's on are live
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date + 45;
SELECT is(pg_temp.boundary(), date_trunc('month', current_date)::date, 'the boundary is this month');
SELECT is(pg_temp.diff(), 0::bigint, 'the definition''s rows');

-- the reader, on a snapshot of an earlier day
SET LOCAL TimeZone = 'Etc/GMT+12';
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 1000::bigint, 'a full refresh in Etc/GMT+12');
UPDATE subbilling_internal.kpi_snapshot_state SET time_zone = 'Etc/GMT-14';
SET LOCAL TimeZone = 'Etc/GMT-14';
DO $$ BEGIN
    PERFORM set_config('k.want', (SELECT md5(string_agg(concat_ws(' ', month, currency, end_mrr, new_customers, churned_customers), ',' ORDER BY month, currency))
                                    FROM subbilling_internal.kpi_movements_ref), true);
END $$;
SET LOCAL ROLE subbilling_reader;
SELECT is((SELECT md5(string_agg(concat_ws(' ', month, currency, subbilling.minor_units(subbilling.price(mrr, currency)),
                                           x.new_customers, x.churned_customers), ',' ORDER BY month, currency))
             FROM kpi_mrr JOIN kpi_growth x USING (month, currency)),
          current_setting('k.want'), 'the reader reads an earlier day''s snapshot: the definition''s figures');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
