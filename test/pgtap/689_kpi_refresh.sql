-- The full refresh computes every customer's movement rows in one pass
-- (kpi_customer_movements: each item's price and months once, window
-- functions for last month's MRR); the marked-only refresh corrects the
-- month sums with kpi_movement_parts.  Over random histories (plan and
-- quantity changes, pauses, payment stops, discounts forever, repeating and
-- 100 % off, cancellations, returns, two currencies; seeded):
--  * the customer rows equal the ones the definition gives (kpi_customer_months
--    with last month's MRR joined by month), row by row;
--  * after a full and after a marked-only refresh the views give the
--    definition's rows, the snapshot's rows are the live rows and the month
--    sums are the sums of the snapshot's rows; start + new + expansion +
--    reactivation - contraction - churn = end, and each month starts where
--    the last ended;
--  * a deliberately broken computation (pauses ignored; a gap in a
--    customer's months taken for consecutive months) is caught.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = off;

SELECT plan(18);
SELECT setseed(0.2718);

INSERT INTO products (code, name) VALUES ('r_saas', 'Refresh SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'r_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('r_m', '1 month', 'flat', '99.00 SEK'), ('r_q', '3 months', 'flat', '299.99 SEK'),
               ('r_y', '1 year', 'flat', '1001.00 SEK'), ('r_seat', '1 month', 'per_unit', '33.33 SEK'),
               ('r_em', '1 month', 'flat', '10.00 EUR'), ('r_eseat', '1 month', 'per_unit', '3.75 EUR'))
       AS x(code, bp, model, price);
INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods) VALUES
    ('r_forever', 'forever 15 %', 15, NULL, 'forever', NULL),
    ('r_rep', 'repeating 33 %', 33, NULL, 'repeating', 3),
    ('r_free', 'two periods free', 100, NULL, 'repeating', 2),
    ('r_amt', 'forever 5 off', NULL, '5.00 SEK', 'forever', NULL);

CREATE FUNCTION pg_temp.rnd(n integer) RETURNS integer LANGUAGE sql VOLATILE RETURN floor(random() * n)::integer;
-- n random steps on random subscriptions of the test's accounts, at random
-- dates from the subscription's start to today (backdated ones included);
-- steps the product refuses are skipped.  Returns the steps taken.
CREATE FUNCTION pg_temp.steps(n integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    d      date;
    k      integer;
    iid    bigint;
    done   integer := 0;
    plans_ text[];
BEGIN
    FOR i IN 1 .. n LOOP
        SELECT x.* INTO s FROM subbilling.subscriptions x JOIN subbilling.accounts a ON a.id = x.account_id
         WHERE a.external_id LIKE 'r\_%' ORDER BY random() LIMIT 1;
        plans_ := CASE s.currency WHEN 'EUR' THEN '{r_em,r_eseat}'::text[] ELSE '{r_m,r_q,r_y,r_seat}'::text[] END;
        d := s.start_date + pg_temp.rnd(greatest(current_date - s.start_date, 1));
        k := pg_temp.rnd(11);
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
                -- a payment stop from d, lifted after a while or still holding
                INSERT INTO subbilling.invoices (account_id, subscription_id, currency, net, tax, total)
                VALUES (s.account_id, s.id, s.currency, subbilling.price_minor(0, s.currency),
                        subbilling.price_minor(0, s.currency), subbilling.price_minor(0, s.currency))
                RETURNING id INTO iid;
                INSERT INTO subbilling.events (account_id, type, payload) VALUES (s.account_id, 'dunning.reminder', '{}');
                INSERT INTO subbilling.dunning_actions (account_id, invoice_id, step_no, action, executed_on, open_amount,
                                                        subscription_id, event_id, lifted_at)
                VALUES (s.account_id, iid, 3, 'payment_stop', d, subbilling.price_minor(100, s.currency), s.id,
                        (SELECT max(e.id) FROM subbilling.events e WHERE e.account_id = s.account_id),
                        CASE WHEN random() < 0.7 THEN (d + 1 + pg_temp.rnd(60))::timestamptz END);
            ELSE
                PERFORM subbilling.subscribe(s.account_id, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], 1 + pg_temp.rnd(3), d,
                                             CASE WHEN s.currency = 'SEK' AND random() < 0.4
                                                  THEN (ARRAY['r_forever', 'r_rep', 'r_free', 'r_amt'])[1 + pg_temp.rnd(4)] END);
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
-- the customer rows as the definition gives them: each month with MRR
-- (kpi_customer_months) against the month before, and the month after the
-- last one of a run (churn), up to the current month
CREATE TEMP VIEW want_rows AS
WITH cm AS (
    SELECT c.account_id, c.currency, c.month, c.mrr, c.subscriptions,
           min(c.month) OVER (PARTITION BY c.account_id, c.currency) AS first_month
      FROM subbilling_internal.kpi_customer_months c
)
SELECT coalesce(a.account_id, b.account_id) AS account_id, coalesce(a.currency, b.currency) AS currency,
       coalesce(a.month, (b.month + interval '1 month')::date) AS month,
       coalesce(a.mrr, 0)::bigint AS cur, coalesce(b.mrr, 0)::bigint AS prev,
       coalesce(a.subscriptions, 0)::bigint AS subscriptions, coalesce(a.first_month, b.first_month) AS first_month
  FROM cm a
  FULL JOIN cm b ON b.account_id = a.account_id AND b.currency = a.currency AND (b.month + interval '1 month')::date = a.month
 WHERE coalesce(a.month, (b.month + interval '1 month')::date) <= date_trunc('month', current_date);
CREATE FUNCTION pg_temp.rows_diff(rel text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT account_id, currency, month, cur, prev, subscriptions, first_month FROM %s
                                           EXCEPT ALL TABLE want_rows)
                                          UNION ALL
                                          (TABLE want_rows EXCEPT ALL
                                           SELECT account_id, currency, month, cur, prev, subscriptions, first_month FROM %s)) x',
                   rel, rel) INTO n;
    RETURN n;
END $$;
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
-- months in which the identity or the continuity fails
CREATE FUNCTION pg_temp.identity_fails() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*)
      FROM (SELECT v.*, lag(v.end_mrr) OVER (PARTITION BY v.currency ORDER BY v.month) AS last_end
              FROM subbilling_internal.kpi_movements v) v
     WHERE v.start_mrr + v.new_mrr + v.expansion_mrr + v.reactivation_mrr - v.contraction_mrr - v.churned_mrr <> v.end_mrr
        OR v.start_mrr <> coalesce(v.last_end, 0)
        OR least(v.new_mrr, v.expansion_mrr, v.reactivation_mrr, v.contraction_mrr, v.churned_mrr) < 0
$$;

-- 150 customers (a fifth in EUR), one subscription each from 2023 on
DO $$
DECLARE
    acc bigint;
    cur text;
BEGIN
    FOR n IN 1 .. 150 LOOP
        cur := CASE WHEN n % 5 = 0 THEN 'EUR' ELSE 'SEK' END;
        INSERT INTO subbilling.accounts (external_id, name, country, currency)
        VALUES ('r_' || n, 'Refresh ' || n, 'SE', cur) RETURNING id INTO acc;
        PERFORM subbilling.subscribe(acc, CASE cur WHEN 'EUR' THEN 'r_em' ELSE (ARRAY['r_m', 'r_q', 'r_y', 'r_seat'])[1 + n % 4] END,
                                     1 + n % 3, date '2023-01-01' + pg_temp.rnd(900),
                                     CASE WHEN cur = 'SEK' AND n % 6 = 0 THEN (ARRAY['r_forever', 'r_free'])[1 + n % 2] END,
                                     CASE WHEN n % 11 = 0 THEN 1 + pg_temp.rnd(30) END);
    END LOOP;
END $$;
SELECT cmp_ok(pg_temp.steps(400), '>', 150, 'a random history of more than 150 changes');
SELECT ok((SELECT count(*) FROM subscription_pauses p JOIN accounts a ON a.id = p.account_id WHERE a.external_id LIKE 'r\_%') > 5
          AND (SELECT count(*) FROM dunning_actions d JOIN accounts a ON a.id = d.account_id
                WHERE a.external_id LIKE 'r\_%' AND d.action = 'payment_stop') > 5
          AND (SELECT count(*) FROM subscription_discounts d JOIN accounts a ON a.id = d.account_id WHERE a.external_id LIKE 'r\_%') > 10,
          'with pauses, payment stops and discounts');

-- the customer rows, live
SELECT cmp_ok((SELECT count(*) FROM want_rows), '>', 2000::bigint, 'more than 2,000 customer rows');
SELECT is(pg_temp.rows_diff('subbilling_internal.kpi_customer_movements'), 0::bigint,
          'kpi_customer_movements gives the definition''s customer rows, row by row');

-- a full refresh
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 2000::bigint, 'the full refresh writes the customer rows');
SELECT is(pg_temp.rows_diff('subbilling_internal.kpi_snapshot_customers'), 0::bigint, 'the snapshot holds the definition''s customer rows');
SELECT is(pg_temp.sums_diff(), 0::bigint, 'the month sums are the sums of the snapshot''s rows');
SELECT is(pg_temp.diff(), 0::bigint, 'the views give the definition''s rows');
SELECT is(pg_temp.identity_fails(), 0::bigint,
          'start + new + expansion + reactivation - contraction - churn = end, each month starting where the last ended');

-- changes after it, then the marked accounts only
SELECT cmp_ok(pg_temp.steps(120), '>', 40, 'more random changes');
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 0::bigint, 'the marked-only refresh recomputes the marked accounts');
SELECT ok(pg_temp.rows_diff('subbilling_internal.kpi_snapshot_customers') = 0 AND pg_temp.sums_diff() = 0,
          'after it the snapshot holds the definition''s customer rows and their sums');
SELECT ok(pg_temp.diff() = 0 AND pg_temp.identity_fails() = 0, 'the views give the definition''s rows, the identity holds');

-- a broken computation is caught: the same view with one decision changed
-- (the original put back after each)
CREATE TEMP TABLE good_def AS SELECT pg_get_viewdef('subbilling_internal.kpi_customer_movements'::regclass) AS def;
CREATE FUNCTION pg_temp.set_view(def text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'CREATE OR REPLACE VIEW subbilling_internal.kpi_customer_movements WITH (security_barrier) AS ' || def;
END $$;
CREATE FUNCTION pg_temp.break_view(old_text text, new_text text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    def text := (SELECT g.def FROM good_def g);
BEGIN
    IF strpos(def, old_text) = 0 THEN
        RETURN false;
    END IF;
    PERFORM pg_temp.set_view(replace(def, old_text, new_text));
    RETURN true;
END $$;
SELECT ok(pg_temp.break_view('z.during @> g.day', 'false'), 'broken: pauses ignored');
SELECT ok(refresh_kpi_snapshots() > 0 AND pg_temp.diff() > 0 AND pg_temp.rows_diff('subbilling_internal.kpi_snapshot_customers') > 0,
          'a full refresh that ignores pauses is caught');
SELECT ok(pg_temp.break_view('(c.prev_month = ((c.month - ''1 mon''::interval))::date)', '(c.prev_month IS NOT NULL)'),
          'broken: a gap in a customer''s months taken for consecutive months');
SELECT ok(refresh_kpi_snapshots() > 0 AND pg_temp.diff() > 0, 'a full refresh with that mistake is caught');
SELECT pg_temp.set_view((SELECT def FROM good_def));
SELECT ok(refresh_kpi_snapshots() > 0 AND pg_temp.diff() = 0, 'the view put back: the definition''s rows again');

SELECT * FROM finish();
ROLLBACK;
