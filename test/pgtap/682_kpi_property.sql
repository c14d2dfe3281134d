-- Property tests of the KPI views over random histories (seeded, so every
-- run is the same; bounded to a few seconds):
--  * MRR: 300 subscriptions in two currencies, each with a random history of
--    plan changes (monthly, quarterly, yearly, per seat), quantity changes,
--    pauses, trials, discounts (forever, repeating, once), cancellations and
--    returns.  In every month and currency start + new + expansion +
--    reactivation - contraction - churn = end exactly, each month starts
--    where the last ended, no movement is negative, and end MRR equals an
--    oracle written independently (a loop over the items, day by day).
--  * Revenue recognition: 400 random issued lines (in advance, in arrears,
--    without a period, credit notes) in two currencies.  Every line's months
--    sum to its net, every month but the last is its exact share rounded,
--    and opening + billed - recognised = closing deferred in every month.
BEGIN;
LOCK TABLE subbilling.accounts, subbilling.subscriptions, subbilling.subscription_items, subbilling.invoices,
           subbilling.invoice_lines
    IN SHARE UPDATE EXCLUSIVE MODE;
SET LOCAL search_path = subbilling, public;
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
\ir 600_fixture.psql
SET LOCAL subbilling.notify = off;

SELECT plan(11);
SELECT setseed(0.4711);

INSERT INTO products (code, name) VALUES ('q_saas', 'Property SaaS');
INSERT INTO plans (code, product_id, name, billing_period, pricing_model, price)
SELECT x.code, (SELECT id FROM products WHERE code = 'q_saas'), x.code, x.bp::billing_period, x.model, x.price::price
  FROM (VALUES ('q_m', '1 month', 'flat', '99.00 SEK'), ('q_m2', '1 month', 'flat', '249.50 SEK'),
               ('q_q', '3 months', 'flat', '299.99 SEK'), ('q_y', '1 year', 'flat', '1001.00 SEK'),
               ('q_seat', '1 month', 'per_unit', '33.33 SEK'), ('q_w', '2 weeks', 'flat', '45.00 SEK'),
               ('q_em', '1 month', 'flat', '10.00 EUR'), ('q_eseat', '1 month', 'per_unit', '3.75 EUR'),
               ('q_ey', '1 year', 'flat', '111.11 EUR'))
       AS x(code, bp, model, price);
INSERT INTO campaigns (code, name, percent_off, amount_off, duration, duration_periods) VALUES
    ('q_forever', 'forever 15 %', 15, NULL, 'forever', NULL),
    ('q_rep', 'repeating 33 %', 33, NULL, 'repeating', 3),
    ('q_once', 'once 20 off', NULL, '20.00 SEK', 'once', NULL),
    ('q_amt', 'forever 5 off', NULL, '5.00 SEK', 'forever', NULL);

-- random histories: each subscription starts in 2023-2025 and takes up to
-- 6 random steps 5-120 days apart; steps the product refuses are skipped
CREATE FUNCTION pg_temp.rnd(n integer) RETURNS integer LANGUAGE sql VOLATILE RETURN floor(random() * n)::integer;
DO $$
DECLARE
    acc     bigint;
    sid     bigint;
    cur     text;
    plans_  text[];
    d       date;
    k       integer;
    ok_     integer := 0;
BEGIN
    FOR n IN 1 .. 300 LOOP
        cur := CASE WHEN random() < 0.25 THEN 'EUR' ELSE 'SEK' END;
        plans_ := CASE cur WHEN 'EUR' THEN '{q_em,q_eseat,q_ey}'::text[] ELSE '{q_m,q_m2,q_q,q_y,q_seat,q_w}'::text[] END;
        -- some customers hold two subscriptions (churn only when both end)
        IF n > 1 AND random() < 0.15 THEN
            SELECT a.id INTO acc FROM subbilling.accounts a WHERE a.external_id LIKE 'q\_%' AND a.currency = cur
             ORDER BY random() LIMIT 1;
        END IF;
        IF acc IS NULL OR random() >= 0.15 THEN
            INSERT INTO subbilling.accounts (external_id, name, country, currency)
            VALUES ('q_' || n, 'Property ' || n, 'SE', cur) RETURNING id INTO acc;
        END IF;
        d := date '2023-01-01' + pg_temp.rnd(1000);
        sid := subbilling.subscribe(acc, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], 1 + pg_temp.rnd(5), d,
                                    CASE WHEN cur = 'SEK' AND random() < 0.3
                                         THEN (ARRAY['q_forever', 'q_rep', 'q_once', 'q_amt'])[1 + pg_temp.rnd(4)] END,
                                    CASE WHEN random() < 0.2 THEN 1 + pg_temp.rnd(60) END);
        FOR s IN 1 .. pg_temp.rnd(7) LOOP
            d := d + 5 + pg_temp.rnd(115);
            EXIT WHEN d > current_date - 1;
            k := pg_temp.rnd(10);
            BEGIN
                IF k < 3 THEN
                    PERFORM subbilling.change_plan(sid, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], d);
                ELSIF k < 6 THEN
                    PERFORM subbilling.change_quantity(sid, 1 + pg_temp.rnd(8), d);
                ELSIF k < 8 THEN
                    PERFORM subbilling.pause(sid, d, d + 1 + pg_temp.rnd(90));
                    d := d + 91;
                ELSIF k < 9 THEN
                    PERFORM subbilling.cancel(sid, d);
                    -- the customer may come back later
                    IF random() < 0.5 THEN
                        d := d + 20 + pg_temp.rnd(200);
                        sid := subbilling.subscribe(acc, plans_[1 + pg_temp.rnd(array_length(plans_, 1))], 1, d);
                    ELSE
                        EXIT;
                    END IF;
                ELSE
                    PERFORM subbilling.cancel(sid, d + 30);
                    EXIT;
                END IF;
                ok_ := ok_ + 1;
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
        END LOOP;
        acc := NULL;
    END LOOP;
    RAISE NOTICE '% steps taken', ok_;
END
$$;
SELECT cmp_ok((SELECT count(*) FROM subscription_items WHERE account_id IN (SELECT id FROM accounts WHERE external_id LIKE 'q\_%')),
              '>', 500::bigint, 'a random history of more than 500 items');

SELECT is((SELECT count(*) FROM subbilling_internal.kpi_movements
            WHERE start_mrr + new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr <> end_mrr),
          0::bigint, 'start + new + expansion + reactivation - contraction - churn = end, every month and currency');
SELECT is((SELECT count(*) FROM subbilling_internal.kpi_movements m
             JOIN subbilling_internal.kpi_movements n ON n.currency = m.currency AND n.month = (m.month + interval '1 month')::date
            WHERE n.start_mrr <> m.end_mrr OR n.customers_start <> m.customers_end),
          0::bigint, 'each month starts where the one before ended');
SELECT is((SELECT count(*) FROM subbilling_internal.kpi_movements
            WHERE least(new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr, end_mrr) < 0),
          0::bigint, 'no movement is negative');
SELECT cmp_ok((SELECT count(*) FROM subbilling_internal.kpi_movements
                WHERE new_mrr > 0 AND expansion_mrr > 0 AND contraction_mrr > 0 AND churned_mrr > 0),
              '>', 5::bigint, 'the history has months with every kind of movement');
SELECT cmp_ok((SELECT sum(reactivation_mrr) FROM subbilling_internal.kpi_movements), '>', 0::numeric,
              'and reactivations');

-- the oracle: per currency and month, the MRR on the snapshot day summed
-- item by item in a loop, with the rules of the definition written out again
CREATE FUNCTION pg_temp.oracle_mrr(cur text, day date) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    total   bigint := 0;
    full_   subbilling.price;
    disc    subbilling.price;
    ks      date;
    d       record;
BEGIN
    FOR r IN SELECT i.*, s.trial_end, s.start_date, s.billing_anchor, p.price, p.pricing_model, p.billing_period, p.code
               FROM subbilling.subscription_items i
               JOIN subbilling.subscriptions s ON s.account_id = i.account_id AND s.id = i.subscription_id
               JOIN subbilling.plans p ON p.id = i.plan_id
              WHERE s.currency = cur AND i.voided_at IS NULL LOOP
        CONTINUE WHEN NOT (day >= lower(r.validity) AND (upper_inf(r.validity) OR day < upper(r.validity)));
        CONTINUE WHEN day < coalesce(r.trial_end, r.start_date);
        CONTINUE WHEN EXISTS (SELECT FROM subbilling.subscription_pauses z WHERE z.subscription_id = r.subscription_id
                                 AND day >= lower(z.during) AND (upper_inf(z.during) OR day < upper(z.during)));
        full_ := CASE r.pricing_model WHEN 'flat' THEN r.price ELSE r.price * r.quantity END;
        ks := lower(subbilling.period_of(r.billing_anchor, r.billing_period, day));
        disc := subbilling.price_minor(0, cur);
        FOR d IN SELECT sd.*, c.duration FROM subbilling.subscription_discounts sd JOIN subbilling.campaigns c ON c.id = sd.campaign_id
                  WHERE sd.subscription_id = r.subscription_id LOOP
            IF d.duration <> 'once' AND d.starts_on <= ks
               AND (d.periods IS NULL OR subbilling.period_index(r.billing_anchor, r.billing_period, ks)
                                         - subbilling.period_index(r.billing_anchor, r.billing_period, d.starts_on) < d.periods)
               AND (d.percent_off IS NOT NULL OR r.kind = 'base') THEN
                disc := disc + CASE WHEN d.percent_off IS NOT NULL THEN full_ * (d.percent_off / 100) ELSE d.amount_off END;
            END IF;
        END LOOP;
        IF disc > full_ THEN disc := full_; END IF;
        total := total + subbilling.minor_units(subbilling.monthly(full_ - disc, r.billing_period));
    END LOOP;
    RETURN total;
END $$;
SELECT is((SELECT count(*) FROM subbilling_internal.kpi_movements m
            WHERE m.month >= '2023-01-01' AND m.month < date_trunc('month', current_date)
              AND m.end_mrr <> pg_temp.oracle_mrr(m.currency, (m.month + interval '1 month - 1 day')::date)),
          0::bigint, 'end MRR equals the oracle in every month');

-- ------------------------------------------------------------ revenue recognition
-- random issued lines: net -5000.00 .. 5000.00, a period of 1-400 days
-- starting up to 60 days before or 90 days after the issue date, or none
DO $$
DECLARE
    acc     bigint;
    iid     bigint;
    cur     text;
    num     record;
    issue   date;
    lo      date;
    amt     subbilling.price;
BEGIN
    FOR n IN 1 .. 400 LOOP
        cur := CASE WHEN random() < 0.3 THEN 'EUR' ELSE 'SEK' END;
        INSERT INTO subbilling.accounts (external_id, name, country, currency, tax_exempt)
        VALUES ('rr_' || n, 'Recognition ' || n, 'SE', cur, true) RETURNING id INTO acc;
        issue := date '2024-01-01' + pg_temp.rnd(700);
        lo := issue - 60 + pg_temp.rnd(150);
        amt := subbilling.price_minor(pg_temp.rnd(1000000) - 500000, cur);
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
               issue_date = issue, due_date = issue + 30, reference = 'RR' || iid, finalized_at = now()
         WHERE x.account_id = acc AND x.id = iid;
    END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM (SELECT r.line_id, r.net, sum(r.recognised) AS s
                                   FROM subbilling_internal.kpi_recognition_lines r
                                  GROUP BY r.account_id, r.line_id, r.net HAVING sum(r.recognised) <> r.net) x),
          0::bigint, 'every line''s months sum to its net');
SELECT is((SELECT count(*) FROM (SELECT r.*, max(r.month) OVER (PARTITION BY r.account_id, r.line_id) AS last
                                   FROM subbilling_internal.kpi_recognition_lines r) x
            WHERE x.month < x.last AND x.recognised <> round(x.net::numeric * x.days / x.total_days)),
          0::bigint, 'every month but the last is its share of the days, rounded half away from zero');
SELECT is((SELECT count(*) FROM revenue_recognition WHERE opening_deferred + billed - recognised <> closing_deferred),
          0::bigint, 'opening + billed - recognised = closing deferred in every month and currency');
-- closing deferred, from the issued lines themselves: what was billed up to
-- the month less what their schedules recognised up to it
SELECT is((SELECT count(*) FROM revenue_recognition v
            WHERE v.closing_deferred * 100 <>
                  (SELECT coalesce(sum(minor_units(l.net)), 0) FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
                    WHERE i.status IN ('open', 'paid', 'uncollectible') AND i.currency = v.currency
                      AND i.issue_date < (v.month + interval '1 month')::date)
                  - (SELECT coalesce(sum(r.recognised), 0) FROM subbilling_internal.kpi_recognition_lines r
                      WHERE r.currency = v.currency AND r.month <= v.month)),
          0::bigint, 'closing deferred = billed so far - recognised so far');

SELECT * FROM finish();
ROLLBACK;
