-- The KPI views read monthly snapshots (refresh_kpi_snapshots) corrected by
-- the accounts marked since; the figures must be those of the definition
-- (subbilling_internal.kpi_movements_ref, computed live from the dated
-- history) whatever the state: no snapshot, a fresh one, one with
-- backdated and current changes made after it, one of another day or time
-- zone, one invalidated by a plan's new price.  Random histories, seeded.
BEGIN;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SET LOCAL subbilling.notify = off;

SELECT plan(32);
SELECT setseed(0.0815);

INSERT INTO products (code, name) VALUES ('k_saas', 'Snapshot SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'k_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('k_m', '1 month', 'flat', '99.00 SEK'), ('k_q', '3 months', 'flat', '299.99 SEK'),
               ('k_y', '1 year', 'flat', '1001.00 SEK'), ('k_seat', '1 month', 'per_unit', '33.33 SEK'),
               ('k_em', '1 month', 'flat', '10.00 EUR'), ('k_eseat', '1 month', 'per_unit', '3.75 EUR'))
       AS x(code, bp, model, price);
INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods) VALUES
    ('k_forever', 'forever 15 %', 15, NULL, 'forever', NULL),
    ('k_rep', 'repeating 33 %', 33, NULL, 'repeating', 3);

CREATE FUNCTION pg_temp.rnd(n integer) RETURNS integer LANGUAGE sql VOLATILE RETURN floor(random() * n)::integer;
-- n random steps on random subscriptions of the test's accounts, at random
-- dates from the subscription's start to today (backdated ones included);
-- steps the product refuses are skipped.  Returns the steps taken.
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
         WHERE a.external_id LIKE 'k\_%' ORDER BY random() LIMIT 1;
        plans_ := CASE s.currency WHEN 'EUR' THEN '{k_em,k_eseat}'::text[] ELSE '{k_m,k_q,k_y,k_seat}'::text[] END;
        d := s.start_date + pg_temp.rnd(greatest(current_date - s.start_date, 1));
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
                                                  THEN (ARRAY['k_forever', 'k_rep'])[1 + pg_temp.rnd(2)] END);
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
-- n random issued lines (invoices or credit notes, with or without a
-- service period) on random test accounts
CREATE FUNCTION pg_temp.lines(n integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    acc   bigint;
    cur   text;
    iid   bigint;
    num   record;
    issue date;
    lo    date;
    amt   subbilling.price;
BEGIN
    FOR k IN 1 .. n LOOP
        SELECT a.id, a.currency INTO acc, cur FROM subbilling.accounts a WHERE a.external_id LIKE 'k\_%' ORDER BY random() LIMIT 1;
        issue := date '2024-01-01' + pg_temp.rnd(700);
        lo := issue - 60 + pg_temp.rnd(150);
        amt := subbilling.price_minor(pg_temp.rnd(1000000) - 400000, cur);
        CONTINUE WHEN subbilling.minor_units(amt) = 0;
        INSERT INTO subbilling.invoices (account_id, currency, net, tax, total)
        VALUES (acc, cur, subbilling.price_minor(0, cur), subbilling.price_minor(0, cur), subbilling.price_minor(0, cur))
        RETURNING id INTO iid;
        INSERT INTO subbilling.invoice_lines (account_id, invoice_id, kind, description, period, quantity, net, tax_rate, tax)
        VALUES (acc, iid, CASE WHEN subbilling.minor_units(amt) < 0 THEN 'credit' ELSE 'recurring' END, 'random line',
                CASE WHEN random() < 0.85 THEN daterange(lo, lo + 1 + pg_temp.rnd(400)) END, 1, amt, 0,
                subbilling.price_minor(0, cur));
        num := subbilling_internal.take_invoice_number(issue);
        UPDATE subbilling.invoices x
           SET status = 'open', series_id = num.series_id, number_seq = num.number_seq, number = num.number,
               net = amt, tax = subbilling.price_minor(0, cur), total = amt,
               kind = CASE WHEN subbilling.minor_units(amt) < 0 THEN 'credit_note' ELSE 'invoice' END,
               issue_date = issue, due_date = issue + 30, reference = 'KR' || iid, finalized_at = now()
         WHERE x.account_id = acc AND x.id = iid;
    END LOOP;
END $$;
-- rows in which revenue_recognition and its definition differ (both ways)
CREATE FUNCTION pg_temp.rdiff() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ((TABLE subbilling.revenue_recognition EXCEPT ALL TABLE subbilling_internal.revenue_recognition_ref)
                          UNION ALL
                          (TABLE subbilling_internal.revenue_recognition_ref EXCEPT ALL TABLE subbilling.revenue_recognition)) x
$$;
CREATE FUNCTION pg_temp.usable() RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state
                    WHERE computed_on = current_date AND time_zone = current_setting('TimeZone') AND NOT building)
$$;

-- 120 customers (a fifth in EUR), one subscription each from 2023 on
DO $$
DECLARE
    acc bigint;
    cur text;
BEGIN
    FOR n IN 1 .. 120 LOOP
        cur := CASE WHEN n % 5 = 0 THEN 'EUR' ELSE 'SEK' END;
        INSERT INTO subbilling.accounts (external_id, name, country, currency)
        VALUES ('k_' || n, 'Snapshot ' || n, 'SE', cur) RETURNING id INTO acc;
        PERFORM subbilling.subscribe(acc, CASE cur WHEN 'EUR' THEN 'k_em' ELSE (ARRAY['k_m', 'k_q', 'k_y', 'k_seat'])[1 + n % 4] END,
                                     1 + n % 3, date '2023-01-01' + pg_temp.rnd(900),
                                     CASE WHEN cur = 'SEK' AND n % 7 = 0 THEN 'k_forever' END,
                                     CASE WHEN n % 11 = 0 THEN 1 + pg_temp.rnd(30) END);
    END LOOP;
END $$;
SELECT cmp_ok(pg_temp.steps(300), '>', 100, 'a random history of more than 100 changes');
SELECT pg_temp.lines(150);

-- no snapshot: everything live
DELETE FROM subbilling_internal.kpi_snapshot_state;
SELECT ok(NOT pg_temp.usable(), 'no snapshot');
SELECT is(pg_temp.diff(), 0::bigint, 'without a snapshot the views give the definition''s rows');
SELECT is(pg_temp.rdiff(), 0::bigint, 'revenue_recognition too');
SELECT cmp_ok((SELECT count(*) FROM subbilling_internal.kpi_movements_ref), '>', 40::bigint, 'over more than 40 months and currencies');

-- a fresh snapshot
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 1000::bigint, 'refresh_kpi_snapshots writes the customer rows');
SELECT ok(pg_temp.usable() AND NOT EXISTS (SELECT FROM subbilling_internal.kpi_dirty_accounts),
          'the snapshot is of today, no account marked');
SELECT is(pg_temp.diff(), 0::bigint, 'from the fresh snapshot: the definition''s rows');
SELECT is(pg_temp.rdiff(), 0::bigint, 'revenue_recognition too');
UPDATE subbilling_internal.kpi_recognition_months SET recognised = recognised + 1
 WHERE (currency, month) = (SELECT currency, min(month) FROM subbilling_internal.kpi_recognition_months WHERE currency = 'SEK' GROUP BY currency);
SELECT cmp_ok(pg_temp.rdiff(), '>', 0::bigint, 'revenue_recognition reads the snapshot (a wrong row shows)');
UPDATE subbilling_internal.kpi_recognition_months SET recognised = recognised - 1
 WHERE (currency, month) = (SELECT currency, min(month) FROM subbilling_internal.kpi_recognition_months WHERE currency = 'SEK' GROUP BY currency);
-- the snapshot is what the views read: a wrong snapshot row shows
UPDATE subbilling_internal.kpi_snapshot_months SET end_mrr = end_mrr + 1
 WHERE (currency, month) = (SELECT currency, max(month) FROM subbilling_internal.kpi_snapshot_months WHERE currency = 'SEK' GROUP BY currency);
SELECT is(pg_temp.diff(), 2::bigint, 'the views read the snapshot (a wrong row shows; the test can fail)');
UPDATE subbilling_internal.kpi_snapshot_months SET end_mrr = end_mrr - 1
 WHERE (currency, month) = (SELECT currency, max(month) FROM subbilling_internal.kpi_snapshot_months WHERE currency = 'SEK' GROUP BY currency);

-- changes after the snapshot, backdated and current: marked in their transaction
SELECT cmp_ok(pg_temp.steps(60), '>', 20, 'more random changes after the snapshot');
SELECT cmp_ok((SELECT count(DISTINCT account_id) FROM subbilling_internal.kpi_dirty_accounts), '>', 10::bigint,
              'their accounts are marked');
SELECT ok(pg_temp.usable(), 'the snapshot stays usable');
SELECT is(pg_temp.diff(), 0::bigint, 'snapshot + marked accounts live: the definition''s rows');
SELECT pg_temp.lines(40);
UPDATE invoices SET status = 'void', voided_at = now() WHERE id IN (SELECT i.id FROM invoices i JOIN accounts a ON a.id = i.account_id
                                                   WHERE a.external_id LIKE 'k\_%' AND i.status = 'open' ORDER BY i.id LIMIT 5);
SELECT cmp_ok((SELECT count(DISTINCT account_id) FROM subbilling_internal.kpi_recognition_dirty), '>', 10::bigint,
              'new and voided invoices mark their accounts');
SELECT is(pg_temp.rdiff(), 0::bigint, 'revenue_recognition from the snapshot + marked accounts: the definition''s rows');
SELECT results_eq($$ SELECT month, currency, mrr FROM kpi_mrr ORDER BY 1, 2 $$,
                  $$ SELECT month, currency, subbilling.amount(subbilling.price_minor(end_mrr, currency))
                       FROM subbilling_internal.kpi_movements_ref ORDER BY 1, 2 $$,
                  'kpi_mrr from the snapshot equals the definition');

-- the marked accounts only: their rows replaced, the sums corrected, the marks cleared
SELECT cmp_ok(refresh_kpi_snapshots(true), '>', 0::bigint, 'refresh_kpi_snapshots(true) recomputes the marked accounts');
SELECT ok(pg_temp.usable() AND NOT EXISTS (SELECT FROM subbilling_internal.kpi_dirty_accounts),
          'the snapshot is usable, no account marked');
SELECT is(pg_temp.diff(), 0::bigint, 'after the marked accounts'' refresh: the definition''s rows');
SELECT ok(NOT EXISTS (SELECT FROM subbilling_internal.kpi_recognition_dirty) AND pg_temp.rdiff() = 0,
          'revenue_recognition too, no account marked');
SELECT cmp_ok(pg_temp.steps(40), '>', 10, 'more changes');
SELECT is(refresh_kpi_snapshots(true) > 0 AND pg_temp.diff() = 0, true, 'refreshed again: the definition''s rows');
SELECT throws_ok('SELECT refresh_kpi_snapshots(NULL)', '22004', 'only_marked must not be null', 'only_marked NULL is refused');

-- another time zone, another day: not usable, computed live
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SELECT ok(NOT pg_temp.usable(), 'a snapshot taken in another time zone is not used');
SELECT is(pg_temp.diff(), 0::bigint, 'there the views compute live: the definition''s rows');
SET LOCAL TimeZone = 'UTC';
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date - 1;
SELECT is(pg_temp.diff(), 0::bigint, 'a snapshot of yesterday is not used: the definition''s rows');
UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date;

-- a campaign's terms change the figures of every account holding it: no
-- snapshot is usable
UPDATE campaigns SET plan_codes = '{k_m}' WHERE code = 'k_forever';
SELECT ok(NOT pg_temp.usable(), 'a campaign''s new terms invalidate the snapshot');
SELECT is(pg_temp.diff(), 0::bigint, 'and the views compute live: the definition''s rows');

-- as the reader, after a refresh
SELECT cmp_ok(refresh_kpi_snapshots(), '>', 1000::bigint, 'a second refresh');
DO $$ BEGIN
    PERFORM set_config('k.want', (SELECT md5(string_agg(concat_ws(' ', month, currency, end_mrr, new_customers, churned_customers), ',' ORDER BY month, currency))
                                    FROM subbilling_internal.kpi_movements_ref), true);
END $$;
SET LOCAL ROLE subbilling_reader;
SELECT is((SELECT md5(string_agg(concat_ws(' ', month, currency, subbilling.minor_units(subbilling.price(end_mrr, currency)),
                                           new_customers, churned_customers), ',' ORDER BY month, currency))
             FROM kpi_mrr_movements),
          current_setting('k.want'), 'the reader reads the movements from the snapshot, the definition''s figures');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
