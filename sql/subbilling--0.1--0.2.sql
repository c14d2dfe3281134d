-- subbilling 0.1 -> 0.2 (ALTER EXTENSION subbilling UPDATE TO '0.2')
--
-- Billing speed (issue 4).  What changes:
--   * the gapless counter of each invoice series moves from invoice_series.next_number to
--     its own table invoice_counters (the series row, which every invoice references, is no
--     longer updated by numbering); the counters keep their values;
--   * the balance check of journal entries runs once per statement, set-based, instead of
--     once per line at commit (an entry is written whole, in one statement);
--   * billing_charges looks discounts up through the batch's subscriptions; the invoice
--     totals check looks invoices up by key; book_invoices sums lines per plan and VAT rate
--     first; bill_subscriptions and take_invoice_number number through invoice_counters.
-- The C library of 0.2 serves both versions' SQL (no C function changed its signature).
\echo Use "ALTER EXTENSION subbilling UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------- numbering
CREATE TABLE subbilling.invoice_counters (
    series_id   bigint PRIMARY KEY REFERENCES subbilling.invoice_series (id),
    next_number bigint NOT NULL DEFAULT 1
                CONSTRAINT invoice_counters_next_number_positive CHECK (next_number > 0)
);
COMMENT ON TABLE subbilling.invoice_counters IS 'the gapless counter of each invoice series: next_number is the number the next invoice of the series gets; moved only by numbering, under its row lock';
INSERT INTO subbilling.invoice_counters (series_id, next_number)
SELECT s.id, s.next_number FROM subbilling.invoice_series s;
ALTER TABLE subbilling.invoice_series DROP COLUMN next_number;
COMMENT ON TABLE subbilling.invoice_series IS 'invoice number series: invoices and credit notes issued in a calendar year are numbered in series code YYYY (created on first use: prefix ''YYYY-'', 6 digits); the counter is in invoice_counters';

-- Every series gets its counter when it is created.
CREATE FUNCTION subbilling.invoice_series_counter() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO subbilling.invoice_counters (series_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_series_counter() IS 'trigger: a new invoice series gets its counter row (next_number 1)';
CREATE TRIGGER invoice_series_counter
    AFTER INSERT ON subbilling.invoice_series
    FOR EACH ROW EXECUTE FUNCTION subbilling.invoice_series_counter();

CREATE OR REPLACE FUNCTION subbilling.bill_subscriptions(account_ids bigint[], subscription_ids bigint[],
                                              as_of_dates date[], as_of timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n       integer;
    notify  boolean := notify_enabled();
    booked_acc  bigint[];
    booked_inv  bigint[];
BEGIN
    -- series rows of the issue years (created on first use, outside the lock)
    PERFORM series_for(y) FROM (SELECT DISTINCT d FROM unnest(as_of_dates) d) q(y);
    PERFORM outbox_reserve();

    WITH ch AS MATERIALIZED (
        SELECT * FROM billing_charges(account_ids, subscription_ids, as_of_dates)
    ),
    b AS (
        SELECT x.account_id, x.subscription_id, x.as_of
          FROM unnest(account_ids, subscription_ids, as_of_dates) AS x(account_id, subscription_id, as_of)
    ),
    st AS (
        SELECT b.account_id, b.subscription_id, b.as_of,
               min(c.due_date) FILTER (WHERE c.pending) AS next_on,
               min(c.key_start) FILTER (WHERE c.pending) AS from_d
          FROM b LEFT JOIN ch c ON c.account_id = b.account_id AND c.subscription_id = b.subscription_id
         GROUP BY b.account_id, b.subscription_id, b.as_of
    ),
    upd AS (
        UPDATE subbilling.subscriptions x
           SET next_bill_on = st.next_on,
               bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
               billed_as_of = greatest(st.as_of, x.billed_as_of),
               billed_at = clock_timestamp()
          FROM st
         WHERE x.account_id = st.account_id AND x.id = st.subscription_id
        RETURNING x.id
    ),
    heads AS (
        SELECT c.account_id, c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, count(*) AS nlines
          FROM ch c JOIN b ON b.account_id = c.account_id AND b.subscription_id = c.subscription_id
         WHERE c.emit
         GROUP BY c.account_id, c.subscription_id, b.as_of
    ),
    hs AS (
        SELECT h.*, sr.id AS series_id,
               row_number() OVER (PARTITION BY sr.id ORDER BY h.account_id, h.subscription_id) AS rn,
               nextval('subbilling.invoices_id_seq'::regclass) AS invoice_id
          FROM heads h
          JOIN subbilling.invoice_series sr ON sr.code = to_char(h.issue_date, 'FMYYYY')
    ),
    cnt AS (
        SELECT hs.series_id, count(*) AS n FROM hs GROUP BY hs.series_id
    ),
    -- the gapless counters: one row lock per series for the whole batch
    num AS (
        UPDATE subbilling.invoice_counters ct
           SET next_number = ct.next_number + cnt.n
          FROM cnt
          JOIN subbilling.invoice_series sr ON sr.id = cnt.series_id
         WHERE ct.series_id = cnt.series_id
        RETURNING sr.id, sr.code, ct.next_number - cnt.n AS first, sr.prefix, sr.digits
    ),
    ins AS (
        INSERT INTO subbilling.invoices AS i
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency,
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at)
        SELECT hs.account_id, hs.invoice_id, hs.subscription_id,
               CASE WHEN hs.net + hs.tax < price_minor(0, hs.currency) THEN 'credit_note' ELSE 'invoice' END,
               'open', hs.series_id, num.first + hs.rn - 1,
               format_invoice_number(num.prefix, num.digits, num.first + hs.rn - 1), hs.currency,
               hs.net, hs.tax, hs.net + hs.tax, hs.issue_date, hs.issue_date + a.payment_terms_days,
               reference_of(coalesce(cs.reference_kind, 'luhn'), hs.invoice_id), bill_subscriptions.as_of, now()
          FROM hs
          JOIN num ON num.id = hs.series_id
          JOIN subbilling.accounts a ON a.id = hs.account_id
          LEFT JOIN subbilling.country_settings cs ON cs.country = a.country
        RETURNING i.*
    ),
    lines AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax)
        SELECT c.account_id, hs.invoice_id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax
          FROM ch c
          JOIN hs ON hs.account_id = c.account_id AND hs.subscription_id = c.subscription_id
         WHERE c.emit
         ORDER BY c.account_id, c.subscription_id, c.key_start, c.charge_type = 'discount', c.charge_type,
                  minor_units(c.net) >= 0, c.plan_id
        RETURNING 1
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT i.account_id, t.type, i.subscription_id, i.id,
               CASE t.type
               WHEN 'invoice.created' THEN
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'as_of', i.as_of)
               ELSE
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status,
                                      'number', i.number, 'series', num.code,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'total_minor', minor_units(i.total),
                                      'issue_date', i.issue_date, 'due_date', i.due_date,
                                      'reference', i.reference)
               END
          FROM ins i
          JOIN num ON num.id = i.series_id
          CROSS JOIN (VALUES (1, 'invoice.created'), (2, 'invoice.finalized')) AS t(ord, type)
         ORDER BY i.account_id, i.id, t.ord
        RETURNING e.*
    ),
    -- NOTIFY each event as emit_event does (these payloads are far below
    -- emit_event's 7000-byte truncation limit)
    nt AS (
        SELECT count(pg_notify('subbilling',
                   (jsonb_build_object('id', ev.id, 'type', ev.type, 'account_id', ev.account_id,
                                       'subscription_id', ev.subscription_id, 'invoice_id', ev.invoice_id,
                                       'created_at', ev.created_at, 'payload', ev.payload))::text)) AS n
          FROM ev WHERE notify
    )
    SELECT count(*), array_agg(ins.account_id), array_agg(ins.id) INTO n, booked_acc, booked_inv
      FROM ins WHERE (SELECT nt.n FROM nt) >= 0;
    -- the receivables ledger: book the invoices, apply customer credit, request automatic payments
    IF n > 0 THEN
        PERFORM book_invoices(booked_acc, booked_inv);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.bill_subscriptions(bigint[], bigint[], date[], timestamptz) IS 'internal: bill claimed subscriptions as of their account-local dates in one statement; returns the number of invoices';

CREATE OR REPLACE FUNCTION subbilling.take_invoice_number(issue_date date,
                                               OUT series_id bigint, OUT number_seq bigint, OUT number text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    sid bigint := series_for(issue_date);
BEGIN
    UPDATE subbilling.invoice_counters ct SET next_number = ct.next_number + 1
      FROM subbilling.invoice_series sr
     WHERE ct.series_id = sid AND sr.id = sid
    RETURNING sr.id, ct.next_number - 1, format_invoice_number(sr.prefix, sr.digits, ct.next_number - 1)
      INTO series_id, number_seq, number;
END
$$;
COMMENT ON FUNCTION subbilling.take_invoice_number(date) IS 'internal: the next number of the issue date''s series, under the series row lock (held until commit)';

GRANT SELECT ON subbilling.invoice_counters TO subbilling_operator;
REVOKE ALL ON FUNCTION subbilling.invoice_series_counter() FROM PUBLIC;

-- ---------------------------------------------------------------- engine and checks
CREATE OR REPLACE FUNCTION subbilling.billing_charges(account_ids bigint[], subscription_ids bigint[], as_of_dates date[])
    RETURNS TABLE (account_id bigint, subscription_id bigint, plan_id bigint, charge_type text, key_start date,
                   period daterange, due_date date, pending boolean, emit boolean,
                   expected subbilling.price, invoiced subbilling.price,
                   kind text, description text, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, currency text)
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
WITH b AS (
    SELECT x.account_id, x.subscription_id, x.as_of
      FROM unnest(account_ids, subscription_ids, as_of_dates) AS x(account_id, subscription_id, as_of)
),
s AS MATERIALIZED (
    SELECT s.account_id, s.id AS subscription_id, s.currency, s.billing_anchor AS anchor,
           coalesce(s.trial_end, s.start_date) AS paid_from,
           s.cancel_at, s.credit_unused, b.as_of, s.bill_from AS from_d,
           greatest(b.as_of, s.billed_as_of) AS horizon, a.tax_exempt,
           price_minor(0, s.currency) AS zero,
           -- the lowest key floor (usage plans look one period back)
           CASE WHEN s.bill_from IS NULL THEN '-infinity'::date
                ELSE least(s.bill_from,
                           (SELECT min(period_start(s.billing_anchor, p.billing_period,
                                                    period_index(s.billing_anchor, p.billing_period, s.bill_from) - 1))
                              FROM subbilling.subscription_items i
                              JOIN subbilling.plans p ON p.id = i.plan_id
                             WHERE i.account_id = s.account_id AND i.subscription_id = s.id
                               AND p.pricing_model = 'usage'))
           END AS kfloor
      FROM b
      JOIN subbilling.subscriptions s ON s.account_id = b.account_id AND s.id = b.subscription_id
      JOIN subbilling.accounts a ON a.id = s.account_id
),
-- items with their plan; v_hi is where charging ends: a cancellation
-- without credit_unused keeps the period holding it charged in full
it AS MATERIALIZED (
    SELECT s.account_id, s.subscription_id, s.anchor, s.as_of, s.from_d, s.horizon, s.cancel_at, s.zero,
           s.tax_exempt, s.currency, i.id AS item_id, i.kind AS item_kind, i.quantity AS qty,
           greatest(lower(i.validity), s.paid_from) AS lo,
           CASE WHEN NOT s.credit_unused AND p.billing_timing = 'in_advance' AND p.pricing_model <> 'usage'
                     AND upper(i.validity) = s.cancel_at
                THEN greatest(upper(period_of(s.anchor, p.billing_period, s.cancel_at - 1)), s.cancel_at)
                ELSE upper(i.validity) END AS v_hi,
           p.id AS plan_id, p.code AS plan_code, p.name AS plan_name, p.billing_period AS bp,
           p.pricing_model AS model, p.price, p.tiers, p.package_size, p.billing_timing AS timing,
           p.setup_fee, p.included_units,
           CASE WHEN s.from_d IS NULL THEN NULL
                WHEN p.pricing_model = 'usage'
                THEN period_start(s.anchor, p.billing_period, period_index(s.anchor, p.billing_period, s.from_d) - 1)
                ELSE s.from_d END AS kfrom
      FROM s
      JOIN subbilling.subscription_items i
        ON i.account_id = s.account_id AND i.subscription_id = s.subscription_id AND i.voided_at IS NULL
      JOIN subbilling.plans p ON p.id = i.plan_id
),
-- the periods of each item from its key floor up to one period past the horizon
seg AS MATERIALIZED (
    SELECT it.*, per.ps, per.pe,
           greatest(it.lo, per.ps) AS seg_lo, least(it.v_hi, per.pe) AS seg_hi
      FROM it
      CROSS JOIN LATERAL (
          SELECT period_index(it.anchor, it.bp, greatest(it.lo, it.kfrom)) AS i0) f
      CROSS JOIN LATERAL generate_series(
          f.i0,
          least(period_index(it.anchor, it.bp, it.v_hi - 1),
                greatest(f.i0, period_index(it.anchor, it.bp, it.horizon) + 1))) AS k(idx)
      CROSS JOIN LATERAL (
          SELECT period_start(it.anchor, it.bp, k.idx) AS ps, period_start(it.anchor, it.bp, k.idx + 1) AS pe) per
     WHERE (it.v_hi IS NULL OR it.v_hi > it.lo)
       AND per.ps >= coalesce(it.kfrom, '-infinity'::date)
       AND least(it.v_hi, per.pe) > greatest(it.lo, per.ps)
),
-- recurring segments with their paused days and the pause boundaries inside
segp AS (
    SELECT seg.*, seg.seg_hi - seg.seg_lo AS days, coalesce(z.paused, 0) AS paused, z.bound
      FROM seg
      LEFT JOIN LATERAL (
          SELECT sum(least(seg.seg_hi, coalesce(upper(pz.during), seg.seg_hi))
                     - greatest(seg.seg_lo, lower(pz.during)))::integer AS paused,
                 max(greatest(CASE WHEN lower(pz.during) > seg.seg_lo THEN lower(pz.during) END,
                              CASE WHEN upper(pz.during) < seg.seg_hi THEN upper(pz.during) END)) AS bound
            FROM subbilling.subscription_pauses pz
           WHERE pz.account_id = seg.account_id AND pz.subscription_id = seg.subscription_id
             AND pz.during && daterange(seg.seg_lo, seg.seg_hi)) z ON true
     WHERE seg.model <> 'usage'
),
rec AS MATERIALIZED (
    SELECT g.account_id, g.subscription_id, g.plan_id, 'recurring'::text AS charge_type, g.ps AS key_start,
           daterange(g.ps, g.pe) AS period,
           CASE WHEN g.timing = 'in_advance' THEN min(g.seg_lo) ELSE least(g.pe, min(g.cancel_at)) END AS due_on,
           CASE WHEN g.timing = 'in_advance'
                THEN greatest(min(g.seg_lo), max(CASE WHEN g.seg_lo > g.ps THEN g.seg_lo END),
                              max(CASE WHEN g.seg_hi < g.pe THEN g.seg_hi END), max(g.bound))
                ELSE least(g.pe, min(g.cancel_at)) END AS corr_due,
           sum(CASE g.model
                   WHEN 'flat' THEN g.price
                   WHEN 'per_unit' THEN g.price * g.qty
                   WHEN 'package' THEN package_price(g.qty, g.package_size, g.price)
                   ELSE tiered_price(g.qty, g.tiers, g.model) END
               * (g.days - g.paused)) / (g.pe - g.ps) AS expected,
           count(*) = 1 AND min(g.seg_lo) = g.ps AND max(g.seg_hi) = g.pe AS whole,
           sum(g.paused) AS paused, max(g.qty) AS qty,
           -- the charged quantity-days of a partial period, for its description
           string_agg(CASE WHEN g.model = 'flat' THEN '' ELSE g.qty || ' × ' END || (g.days - g.paused) || ' d', ' + '
                      ORDER BY g.seg_lo) FILTER (WHERE g.seg_lo > g.ps OR g.seg_hi < g.pe) AS segs,
           g.item_kind, g.model, g.price, g.plan_name, g.plan_code, g.anchor, g.bp,
           g.as_of, g.zero, g.tax_exempt, g.currency
      FROM segp g
     GROUP BY g.account_id, g.subscription_id, g.plan_id, g.ps, g.pe, g.timing, g.item_kind, g.model,
              g.price, g.plan_name, g.plan_code, g.anchor, g.bp, g.as_of, g.zero, g.tax_exempt, g.currency
),
-- discounts: percent_off of every qualifying recurring key, amount_off of
-- the base plan's keys, for `periods` periods of the key's plan from
-- starts_on; never more than the key's charge.  The discounts of the
-- batch's subscriptions are looked up through the subscriptions (an index
-- probe each), never by scanning all discounts.
dsc AS MATERIALIZED (
    SELECT d.account_id, d.subscription_id, d.id, d.starts_on, d.periods, d.percent_off, d.amount_off,
           c.name, c.plan_codes
      FROM s
      JOIN subbilling.subscription_discounts d ON d.account_id = s.account_id AND d.subscription_id = s.subscription_id
      JOIN subbilling.campaigns c ON c.id = d.campaign_id
),
disc AS (
    SELECT r.account_id, r.subscription_id, r.plan_id, 'discount'::text AS charge_type, r.key_start, r.period,
           r.due_on, r.corr_due,
           -least(r.expected,
                  sum(CASE WHEN d.percent_off IS NOT NULL THEN r.expected * (d.percent_off / 100)
                           ELSE d.amount_off END)) AS expected,
           string_agg(d.name || CASE WHEN d.percent_off IS NOT NULL THEN ' (' || trim_scale(d.percent_off) || ' % off)'
                                     ELSE ' (' || d.amount_off::text || ' off)' END, ', ' ORDER BY d.id) AS what,
           r.plan_name, r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
      FROM rec r
      JOIN dsc d ON d.account_id = r.account_id AND d.subscription_id = r.subscription_id
     WHERE d.starts_on <= r.key_start
       AND (d.periods IS NULL
            OR period_index(r.anchor, r.bp, r.key_start) - period_index(r.anchor, r.bp, d.starts_on) < d.periods)
       AND (d.plan_codes IS NULL OR r.plan_code = ANY (d.plan_codes))
       AND (d.percent_off IS NOT NULL OR r.item_kind = 'base')
     GROUP BY r.account_id, r.subscription_id, r.plan_id, r.key_start, r.period, r.due_on, r.corr_due,
              r.expected, r.plan_name, r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
),
-- usage in arrears: sum per plan and period, less the included units
usg AS (
    SELECT g.account_id, g.subscription_id, g.plan_id, 'usage'::text AS charge_type, g.ps AS key_start,
           daterange(g.ps, g.pe) AS period, least(g.pe, min(g.cancel_at)) AS due_on,
           greatest(coalesce(sum(u.total), 0) - g.included_units, 0) AS billable,
           g.price, g.tiers, g.plan_name, g.anchor, g.as_of, g.zero, g.tax_exempt, g.currency
      FROM seg g
      LEFT JOIN LATERAL (
          SELECT sum(x.quantity) AS total FROM subbilling.usage x
           WHERE x.account_id = g.account_id AND x.item_id = g.item_id
             AND x.usage_date >= g.seg_lo AND x.usage_date < g.seg_hi) u ON true
     WHERE g.model = 'usage'
     GROUP BY g.account_id, g.subscription_id, g.plan_id, g.ps, g.pe, g.included_units, g.price, g.tiers, g.plan_name,
              g.anchor, g.as_of, g.zero, g.tax_exempt, g.currency
),
-- setup fees: once per subscription and plan, on the first day charged
stp AS (
    SELECT it.account_id, it.subscription_id, it.plan_id, 'setup'::text AS charge_type, min(it.lo) AS key_start,
           it.setup_fee, it.plan_name, it.from_d, it.anchor, it.as_of, it.zero, it.tax_exempt, it.currency
      FROM it
     WHERE it.setup_fee IS NOT NULL AND (it.v_hi IS NULL OR it.v_hi > it.lo)
     GROUP BY it.account_id, it.subscription_id, it.plan_id, it.setup_fee, it.plan_name, it.from_d,
              it.anchor, it.as_of, it.zero, it.tax_exempt, it.currency
    HAVING min(it.lo) >= coalesce(it.from_d, '-infinity'::date)
),
ex AS (
    SELECT r.account_id, r.subscription_id, r.plan_id, r.charge_type, r.key_start, r.period, r.due_on, r.corr_due,
           r.expected,
           CASE WHEN NOT r.whole THEN 'proration' WHEN r.item_kind = 'addon' THEN 'addon' ELSE 'recurring' END AS first_kind,
           r.plan_name AS dname, CASE WHEN NOT r.whole THEN r.segs END AS dsegs,
           r.paused AS dpaused, NULL::numeric AS dunits,
           CASE WHEN r.model = 'flat' THEN 1 ELSE r.qty END AS first_qty,
           CASE WHEN r.whole AND r.paused = 0 AND r.model IN ('flat', 'per_unit') THEN r.price END AS first_unit,
           r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
      FROM rec r
    UNION ALL
    SELECT d.account_id, d.subscription_id, d.plan_id, d.charge_type, d.key_start, d.period, d.due_on, d.corr_due,
           d.expected, 'discount', d.what || ': ' || d.plan_name, NULL, 0, NULL,
           1, d.expected, d.anchor, d.as_of, d.zero, d.tax_exempt, d.currency
      FROM disc d
    UNION ALL
    SELECT u.account_id, u.subscription_id, u.plan_id, u.charge_type, u.key_start, u.period, u.due_on, u.due_on,
           CASE WHEN u.tiers IS NOT NULL THEN tiered_price(u.billable, u.tiers, 'graduated')
                ELSE u.price * u.billable END,
           'usage', u.plan_name, NULL, 0, u.billable,
           u.billable, CASE WHEN u.tiers IS NULL THEN u.price END, u.anchor, u.as_of, u.zero, u.tax_exempt, u.currency
      FROM usg u
    UNION ALL
    SELECT t.account_id, t.subscription_id, t.plan_id, t.charge_type, t.key_start,
           daterange(t.key_start, t.key_start, '[]'), t.key_start, t.key_start,
           t.setup_fee, 'setup', t.plan_name, NULL, 0, NULL, 1, t.setup_fee,
           t.anchor, t.as_of, t.zero, t.tax_exempt, t.currency
      FROM stp t
),
-- what engine lines of non-void invoices already invoiced, per key
inv AS (
    SELECT l.account_id, l.subscription_id, l.plan_id, l.charge_type, l.key_start, sum(l.net) AS invoiced,
           s.anchor, s.as_of, s.zero, s.tax_exempt, s.currency
      FROM s
      JOIN subbilling.invoice_lines l
        ON l.account_id = s.account_id AND l.subscription_id = s.subscription_id AND l.charge_type IS NOT NULL
       AND l.key_start >= s.kfloor
      JOIN subbilling.invoices v ON v.account_id = l.account_id AND v.id = l.invoice_id
      JOIN subbilling.plans p ON p.id = l.plan_id
     WHERE v.status <> 'void'
       AND l.key_start >= CASE WHEN s.from_d IS NULL THEN '-infinity'::date
                               WHEN l.charge_type = 'usage'
                               THEN period_start(s.anchor, p.billing_period, period_index(s.anchor, p.billing_period, s.from_d) - 1)
                               ELSE s.from_d END
     GROUP BY l.account_id, l.subscription_id, l.plan_id, l.charge_type, l.key_start,
              s.anchor, s.as_of, s.zero, s.tax_exempt, s.currency
),
j AS (
    SELECT coalesce(e.account_id, v.account_id) AS account_id,
           coalesce(e.subscription_id, v.subscription_id) AS subscription_id,
           coalesce(e.plan_id, v.plan_id) AS plan_id,
           coalesce(e.charge_type, v.charge_type) AS charge_type,
           coalesce(e.key_start, v.key_start) AS key_start,
           e.period, e.expected, v.invoiced,
           CASE WHEN v.invoiced IS NULL THEN e.due_on ELSE coalesce(e.corr_due, v.key_start) END AS due_date,
           e.first_kind, e.dname, e.dsegs, e.dpaused, e.dunits, e.first_qty, e.first_unit,
           coalesce(e.anchor, v.anchor) AS anchor, coalesce(e.as_of, v.as_of) AS as_of,
           coalesce(e.zero, v.zero) AS zero, coalesce(e.tax_exempt, v.tax_exempt) AS tax_exempt,
           coalesce(e.currency, v.currency) AS currency
      FROM ex e
      FULL JOIN inv v
        ON v.account_id = e.account_id AND v.subscription_id = e.subscription_id AND v.plan_id = e.plan_id
       AND v.charge_type = e.charge_type AND v.key_start = e.key_start
),
d0 AS (
    SELECT j.account_id, j.subscription_id, j.plan_id, j.charge_type, j.key_start,
           coalesce(j.period, CASE WHEN j.charge_type = 'setup' THEN daterange(j.key_start, j.key_start, '[]')
                                   ELSE period_of(j.anchor, p.billing_period, j.key_start) END) AS period,
           j.expected, j.invoiced, j.due_date, j.first_kind, j.dname, j.dsegs, j.dpaused, j.dunits,
           j.first_qty, j.first_unit, j.zero, j.currency,
           coalesce(j.expected, j.zero) - coalesce(j.invoiced, j.zero) AS diff,
           j.due_date > j.as_of AS pending,
           CASE WHEN j.tax_exempt THEN 0 ELSE pr.tax_rate END AS rate,
           p.name AS plan_name
      FROM j
      JOIN subbilling.plans p ON p.id = j.plan_id
      JOIN subbilling.products pr ON pr.id = p.product_id
),
d AS (
    SELECT d0.*, NOT d0.pending AND d0.diff <> d0.zero AS emit FROM d0
)
SELECT d.account_id, d.subscription_id, d.plan_id, d.charge_type, d.key_start, d.period,
       d.due_date, d.pending, d.emit,
       coalesce(d.expected, d.zero), d.invoiced,
       CASE WHEN d.invoiced IS NULL THEN d.first_kind
            WHEN d.charge_type = 'discount' THEN 'discount'
            WHEN d.diff > d.zero THEN 'proration'
            ELSE 'credit' END,
       -- descriptions only for the lines that are made
       CASE WHEN NOT d.emit THEN NULL
            WHEN d.invoiced IS NULL THEN
                CASE d.charge_type
                WHEN 'setup' THEN d.dname || ' setup fee'
                ELSE d.dname || ' ' || lower(d.period) || ' – ' || (upper(d.period) - 1)
                     || CASE WHEN d.dsegs IS NOT NULL
                             THEN ', prorated ' || d.dsegs || ' of ' || (upper(d.period) - lower(d.period)) ELSE '' END
                     || CASE WHEN d.dpaused > 0 THEN ', ' || d.dpaused || ' days paused' ELSE '' END
                     || CASE WHEN d.dunits IS NOT NULL THEN ', ' || trim_scale(d.dunits) || ' units' ELSE '' END
                END
            ELSE CASE d.charge_type WHEN 'discount' THEN 'Discount adjustment'
                                    WHEN 'setup' THEN 'Setup fee adjustment'
                                    WHEN 'usage' THEN 'Usage adjustment'
                                    ELSE CASE WHEN d.diff > d.zero THEN 'Additional charge' ELSE 'Credit' END END
                 || ' for ' || d.plan_name || ' ' || d.key_start
                 || CASE WHEN d.charge_type = 'setup' THEN '' ELSE ' – ' || (upper(d.period) - 1) END
                 || ': ' || coalesce(d.expected, d.zero)::text || ' instead of ' || d.invoiced::text
       END,
       CASE WHEN d.invoiced IS NULL THEN d.first_qty ELSE 1 END,
       CASE WHEN d.invoiced IS NULL THEN d.first_unit ELSE d.diff END,
       d.diff, d.rate, tax(d.diff, d.rate), d.currency
  FROM d
$$;
COMMENT ON FUNCTION subbilling.billing_charges(bigint[], bigint[], date[]) IS 'internal: every charge key of the subscriptions up to their horizon, expected and invoiced, the line that settles the difference and whether it is due as of each account-local date';

CREATE OR REPLACE FUNCTION subbilling.invoice_lines_check_totals() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT i.id, i.number, i.net, i.tax, t.net AS lines_net, t.tax AS lines_tax INTO bad
      FROM (SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n) k
      -- one primary-key lookup per invoice (LIMIT 1 keeps the planner from
      -- hashing the whole table when its statistics predate a large run)
      CROSS JOIN LATERAL (SELECT i.* FROM subbilling.invoices i
                           WHERE i.account_id = k.account_id AND i.id = k.invoice_id LIMIT 1) i
      CROSS JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.tax) AS tax
                            FROM subbilling.invoice_lines l
                           WHERE l.account_id = i.account_id AND l.invoice_id = i.id) t
     WHERE i.status <> 'draft' AND (t.net <> i.net OR t.tax <> i.tax)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the totals of invoice % are not the sum of its lines', coalesce(bad.number, bad.id::text)
            USING ERRCODE = 'integrity_constraint_violation',
                  DETAIL = format('Invoice net %s, VAT %s; lines net %s, VAT %s.', bad.net, bad.tax, bad.lines_net, bad.lines_tax),
                  HINT = 'Issued invoices get no new lines; a credit note corrects them.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_lines_check_totals() IS 'trigger: after each insert of lines, every issued invoice that got lines has net and VAT equal to the sums of its lines';

-- ---------------------------------------------------------------- ledger
DROP TRIGGER journal_lines_balanced ON subbilling.journal_lines;
-- At the end of every statement that writes journal lines, each entry that
-- got lines sums to zero in each currency: an entry is written whole, in
-- one statement (book_entry and the booking functions always do).  One
-- set-based query per statement over the statement's new lines, not one
-- query per line: a billing batch books thousands of lines at once.
CREATE OR REPLACE FUNCTION subbilling.journal_lines_balanced() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT k.account_id, k.entry_id, b.currency, b.diff INTO bad
      FROM (SELECT DISTINCT n.account_id, n.entry_id FROM new_lines n) k
      CROSS JOIN LATERAL (SELECT currency(l.amount) AS currency, sum(l.amount) AS diff
                            FROM subbilling.journal_lines l
                           WHERE l.account_id = k.account_id AND l.entry_id = k.entry_id
                           GROUP BY currency(l.amount)
                          HAVING minor_units(sum(l.amount)) <> 0
                           LIMIT 1) b
     ORDER BY k.account_id, k.entry_id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance', bad.entry_id
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Its %s lines of account %s sum to %s, not zero.', bad.currency, bad.account_id, bad.diff),
                  HINT = 'Debits (positive amounts) must equal credits (negative amounts) in every currency; write an entry''s lines in one statement.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.journal_lines_balanced() IS 'trigger (after each statement inserting journal lines): every entry that got lines sums to zero per currency';

CREATE TRIGGER journal_lines_balanced
    AFTER INSERT ON subbilling.journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling.journal_lines_balanced();

CREATE OR REPLACE FUNCTION subbilling.book_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    notify  boolean := notify_enabled();
    booked  integer := 0;
    n       integer;
    t_acc   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    t_inv   bigint[] := '{}';
    c_acc   bigint[];               -- accounts whose credit is applied
    l_acc   bigint[];               -- open invoices locked for credit application
    l_inv   bigint[];
    a_acc   bigint[];
    a_inv   bigint[];
    p_acc   bigint[];
    p_inv   bigint[];
    bad     text;
    has_void boolean;
    has_cn  boolean;
BEGIN
    IF coalesce(cardinality(account_ids), 0) <> coalesce(cardinality(invoice_ids), 0) THEN
        RAISE EXCEPTION 'book_invoices needs one account id per invoice id'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s account ids and %s invoice ids.',
                                  coalesce(cardinality(account_ids), 0), coalesce(cardinality(invoice_ids), 0));
    END IF;
    IF coalesce(cardinality(invoice_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM outbox_reserve();
    SELECT coalesce(bool_or(i.status = 'void'), false), coalesce(bool_or(i.kind = 'credit_note'), false)
      INTO has_void, has_cn
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id;

    -- 1. issued documents not yet booked
    WITH d AS MATERIALIZED (
        SELECT i.account_id, i.id, i.kind, i.currency, i.total, i.issue_date, i.number,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.status IN ('open', 'paid', 'uncollectible')
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries e
                            WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                              AND e.kind IN ('invoice', 'credit_note'))
    ),
    cur AS MATERIALIZED (
        SELECT c.currency, ledger_code('receivables', c.currency) AS rc
          FROM (SELECT DISTINCT d.currency FROM d) c
    ),
    -- the lines summed per plan, fee or not, and VAT rate first (an invoice
    -- bills several periods of the same plan): every later step, the plan
    -- and product lookups and the joins to the account codes, works on
    -- these few sums instead of every line
    dp AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
               l.kind = 'fee' AS is_fee, l.tax_rate, sum(l.net) AS net, sum(l.tax) AS tax
          FROM d
          JOIN subbilling.invoice_lines l ON l.account_id = d.account_id AND l.invoice_id = d.id
         GROUP BY d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
                  l.kind = 'fee', l.tax_rate
    ),
    dl AS MATERIALIZED (
        SELECT dp.account_id, dp.eid, dp.kind, dp.issue_date, dp.id, dp.number, dp.currency, dp.is_fee,
               p.code AS product, dp.tax_rate, dp.net, dp.tax
          FROM dp
          LEFT JOIN subbilling.plans pl ON pl.id = dp.plan_id
          LEFT JOIN subbilling.products p ON p.id = pl.product_id
    ),
    rev AS MATERIALIZED (
        SELECT k.currency, k.is_fee, k.product, k.tax_rate,
               revenue_code(k.currency, k.product, k.tax_rate, k.is_fee) AS code
          FROM (SELECT DISTINCT dl.currency, dl.is_fee, dl.product, dl.tax_rate FROM dl) k
    ),
    vat AS MATERIALIZED (
        SELECT k.currency, k.tax_rate, ledger_code('vat', k.currency, rate_detail(k.tax_rate)) AS code
          FROM (SELECT DISTINCT dl.currency, dl.tax_rate FROM dl WHERE minor_units(dl.tax) <> 0) k
    ),
    -- every line carries its document, and entries and lines come from the
    -- lines alone: no join between the batch-sized intermediate results,
    -- whose row estimates are poor while a batch is being written
    ln AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, cur.rc AS code, d.total AS amount,
               'receivables'::text AS subledger, d.id AS invoice_id, 0 AS ord
          FROM d JOIN cur ON cur.currency = d.currency
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code, -sum(dl.net), NULL, NULL, 1
          FROM dl JOIN rev ON rev.currency = dl.currency AND rev.is_fee = dl.is_fee
                          AND rev.product IS NOT DISTINCT FROM dl.product AND rev.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code, -sum(dl.tax), NULL, NULL, 2
          FROM dl JOIN vat ON vat.currency = dl.currency AND vat.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code
    ),
    nz AS MATERIALIZED (
        SELECT q.* FROM (SELECT ln.*, count(*) OVER (PARTITION BY ln.account_id, ln.eid) AS n
                           FROM ln WHERE minor_units(ln.amount) <> 0) q
         WHERE q.n >= 2
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT DISTINCT ON (nz.account_id, nz.eid) nz.account_id, nz.eid, nz.kind, nz.issue_date, nz.id,
               replace(nz.kind, '_', ' ') || ' ' || nz.number
          FROM nz
         ORDER BY nz.account_id, nz.eid
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT nz.account_id, nz.eid, nz.code, nz.amount, nz.subledger, nz.invoice_id
          FROM nz
         ORDER BY nz.account_id, nz.eid, nz.ord, nz.code
    )
    SELECT (SELECT count(*) FROM ent),
           coalesce(array_agg(d.account_id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}'),
           coalesce(array_agg(d.id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}')
      INTO booked, t_acc, t_inv
      FROM d;

    -- 2. void invoices: reverse their booking once; what was paid on them
    --    becomes customer credit.  A booked credit note is final.
    IF has_void THEN
    SELECT c.number INTO bad
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
     WHERE c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = c.account_id AND e.invoice_id = c.id AND e.kind = 'credit_note')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;
    WITH v AS MATERIALIZED (
        SELECT i.account_id, i.id, i.currency, i.total, i.number, e.id AS booking,
               invoice_open_amount(i.account_id, i.id) AS open_amount,
               coalesce((i.voided_at AT TIME ZONE a.time_zone)::date, i.issue_date) AS booked_on,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
          JOIN subbilling.accounts a ON a.id = i.account_id
          JOIN subbilling.journal_entries e ON e.account_id = i.account_id AND e.invoice_id = i.id AND e.kind = 'invoice'
         WHERE i.status = 'void'
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries r
                            WHERE r.account_id = i.account_id AND r.invoice_id = i.id AND r.kind = 'void')
    ),
    ln AS MATERIALIZED (
        SELECT v.account_id, v.eid, l.ledger_code AS code, -l.amount AS amount, l.subledger, NULL::bigint AS invoice_id,
               1 AS ord, l.id AS lid
          FROM v JOIN subbilling.journal_lines l ON l.account_id = v.account_id AND l.entry_id = v.booking
         WHERE l.subledger IS DISTINCT FROM 'receivables'
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('receivables', v.currency), -v.open_amount, 'receivables', v.id, 0, 0
          FROM v WHERE minor_units(v.open_amount) <> 0
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('customer_credit', v.currency), v.open_amount - v.total,
               'customer_credit', NULL, 2, 0
          FROM v WHERE v.open_amount <> v.total
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT v.account_id, v.eid, 'void', v.booked_on, v.id, 'void invoice ' || v.number FROM v
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord, ln.lid
    ),
    rq AS (
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
          FROM v
         WHERE r.account_id = v.account_id AND r.invoice_id = v.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
        RETURNING r.id
    )
    SELECT booked + count(*) INTO booked FROM v;
    END IF;

    -- 3. credit notes: onto the invoice they credit, the rest to customer credit
    IF has_cn THEN
    PERFORM 1
       FROM subbilling.invoices o
      WHERE (o.account_id, o.id) IN (SELECT c.account_id, c.credits_invoice_id
                                       FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                                       JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
                                      WHERE c.kind = 'credit_note' AND c.credits_invoice_id IS NOT NULL)
      ORDER BY o.account_id, o.id
        FOR UPDATE OF o;
    WITH c AS MATERIALIZED (
        SELECT c.account_id, c.id, c.number, c.currency, c.credits_invoice_id AS original, c.issue_date,
               -invoice_open_amount(c.account_id, c.id) AS amount
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
         WHERE c.kind = 'credit_note' AND c.status <> 'void'
    ),
    c2 AS MATERIALIZED (
        SELECT c.*, o.number AS original_number,
               CASE WHEN o.kind = 'invoice' AND o.status IN ('open', 'uncollectible')
                    THEN greatest(invoice_open_amount(o.account_id, o.id), price_minor(0, c.currency))
                    ELSE price_minor(0, c.currency) END AS original_open,
               sum(c.amount) OVER (PARTITION BY c.account_id, c.original ORDER BY c.id) AS cum,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM c
          LEFT JOIN subbilling.invoices o ON o.account_id = c.account_id AND o.id = c.original
         WHERE minor_units(c.amount) > 0
    ),
    c3 AS MATERIALIZED (
        SELECT c2.*,
               least(c2.amount, greatest(c2.original_open - (c2.cum - c2.amount), price_minor(0, c2.currency))) AS onto
          FROM c2
    ),
    ln AS MATERIALIZED (
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency) AS code, c3.amount,
               'receivables'::text AS subledger, c3.id AS invoice_id, 0 AS ord
          FROM c3
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency), -c3.onto, 'receivables', c3.original, 1
          FROM c3 WHERE minor_units(c3.onto) <> 0
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('customer_credit', c3.currency), c3.onto - c3.amount,
               'customer_credit', NULL, 2
          FROM c3 WHERE c3.onto <> c3.amount
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT c3.account_id, c3.eid, 'allocation', c3.issue_date, c3.id,
               'credit note ' || c3.number || coalesce(' on invoice ' || c3.original_number, '')
          FROM c3
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord
    )
    SELECT t_acc || coalesce(array_agg(c3.account_id) FILTER (WHERE minor_units(c3.onto) > 0), '{}'),
           t_inv || coalesce(array_agg(c3.original) FILTER (WHERE minor_units(c3.onto) > 0), '{}')
      INTO t_acc, t_inv
      FROM c3
     WHERE (SELECT count(*) FROM ent) >= 0;
    END IF;

    -- 4. customer credit onto open invoices, oldest due first; an account
    --    whose credit another transaction is using is left for next time
    SELECT array_agg(q.account_id) INTO c_acc
      FROM (SELECT l.account_id FROM subbilling.journal_lines l
             WHERE l.subledger = 'customer_credit'
               AND l.account_id IN (SELECT DISTINCT k FROM unnest(account_ids) k)
             GROUP BY l.account_id
            HAVING minor_units(sum(l.amount)) < 0
             ORDER BY l.account_id) q
     WHERE lock_account_credit(q.account_id, false);
    IF c_acc IS NOT NULL THEN
        -- lock the open invoices that the credit reaches (oldest due first);
        -- their open amounts are read again under the lock below
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.due_date, s.open_amount
              FROM subbilling.invoices i
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id IS NOT NULL
                     GROUP BY l.account_id, l.invoice_id
                    HAVING minor_units(sum(l.amount)) > 0) s ON s.account_id = i.account_id AND s.invoice_id = i.id
             WHERE i.account_id = ANY (c_acc) AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.account_id, o.id, cr.credit,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) - o.open_amount AS before
              FROM o JOIN cr ON cr.account_id = o.account_id
        )
        SELECT array_agg(q.account_id), array_agg(q.id) INTO l_acc, l_inv
          FROM (SELECT i.account_id, i.id FROM subbilling.invoices i
                 WHERE (i.account_id, i.id) IN (SELECT w.account_id, w.id FROM w WHERE w.before < w.credit)
                 ORDER BY i.account_id, i.id
                   FOR UPDATE SKIP LOCKED) q;
    END IF;
    IF l_inv IS NOT NULL THEN
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.number, i.subscription_id, i.currency, i.due_date, s.open_amount
              FROM unnest(l_acc, l_inv) AS k(account_id, invoice_id)
              JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id = ANY (l_inv)
                     GROUP BY l.account_id, l.invoice_id) s ON s.account_id = i.account_id AND s.invoice_id = i.id
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit,
                   coalesce((SELECT max(i.issue_date)
                               FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                               JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
                              WHERE k.account_id = x.account_id), account_today(x.account_id)) AS booked_on
              FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.*, cr.credit, cr.booked_on,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) AS cum
              FROM o JOIN cr ON cr.account_id = o.account_id
             WHERE minor_units(o.open_amount) > 0
        ),
        al AS MATERIALIZED (
            SELECT q.*, nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
              FROM (SELECT w.*, least(w.open_amount, w.credit - (w.cum - w.open_amount)) AS amount
                      FROM w
                     WHERE w.credit > w.cum - w.open_amount
                     ORDER BY w.account_id, w.due_date, w.id) q
        ),
        ent AS (
            INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
            SELECT al.account_id, al.eid, 'credit_applied', al.booked_on, al.id, 'customer credit on invoice ' || al.number
              FROM al
            RETURNING e.id
        ),
        lin AS (
            INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
            SELECT al.account_id, al.eid, x.code, x.amount, x.subledger, x.invoice_id
              FROM al
             CROSS JOIN LATERAL (VALUES (0, ledger_code('customer_credit', al.currency), al.amount, 'customer_credit', NULL::bigint),
                                        (1, ledger_code('receivables', al.currency), -al.amount, 'receivables', al.id))
                   AS x(ord, code, amount, subledger, invoice_id)
             ORDER BY al.account_id, al.eid, x.ord
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT al.account_id, 'credit.applied', al.subscription_id, al.id,
                   jsonb_build_object('invoice_id', al.id, 'number', al.number, 'currency', al.currency,
                                      'amount', al.amount::text, 'open_amount', (al.open_amount - al.amount)::text,
                                      'credit_left', (al.credit - al.cum + al.open_amount - al.amount)::text)
              FROM al
             ORDER BY al.account_id, al.eid
            RETURNING e.*
        ),
        nt AS (
            SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) AS n FROM ev WHERE notify
        )
        SELECT coalesce(array_agg(al.account_id), '{}'), coalesce(array_agg(al.id), '{}') INTO a_acc, a_inv
          FROM al
         WHERE (SELECT count(*) FROM ent) + (SELECT nt.n FROM nt) >= 0 AND al.amount = al.open_amount;
        t_acc := t_acc || a_acc;
        t_inv := t_inv || a_inv;
    END IF;

    -- 5. invoices whose open amount reached zero are paid
    IF cardinality(t_inv) > 0 THEN
        WITH k AS MATERIALIZED (
            SELECT q.account_id, q.invoice_id
              FROM (SELECT DISTINCT t.account_id, t.invoice_id FROM unnest(t_acc, t_inv) AS t(account_id, invoice_id)) q
             WHERE minor_units(invoice_open_amount(q.account_id, q.invoice_id)) = 0
        ),
        p AS (
            UPDATE subbilling.invoices x
               SET status = 'paid', paid_at = now()
              FROM k
             WHERE x.account_id = k.account_id AND x.id = k.invoice_id
               AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
            RETURNING x.*
        ),
        rq AS (
            UPDATE subbilling.payment_requests r
               SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
              FROM p
             WHERE r.account_id = p.account_id AND r.invoice_id = p.id
               AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
            RETURNING r.id
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT p.account_id, 'invoice.paid', p.subscription_id, p.id,
                   jsonb_build_object('invoice_id', p.id, 'number', p.number, 'currency', p.currency,
                                      'total', p.total::text, 'paid_at', p.paid_at,
                                      'via', CASE WHEN minor_units(p.total) = 0 THEN 'zero total' ELSE 'credit' END,
                                      'payment_id', NULL)
              FROM p
             ORDER BY p.account_id, p.id
            RETURNING e.*
        ),
        nt AS (
            SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) AS n FROM ev WHERE notify
        )
        SELECT array_agg(p.account_id ORDER BY p.account_id, p.id), array_agg(p.id ORDER BY p.account_id, p.id)
          INTO p_acc, p_inv
          FROM p
         WHERE (SELECT count(*) FROM rq) + (SELECT nt.n FROM nt) >= 0;
        IF p_inv IS NOT NULL THEN
            PERFORM after_invoice_paid(k.account_id, k.invoice_id)
               FROM unnest(p_acc, p_inv) WITH ORDINALITY AS k(account_id, invoice_id, ord)
              ORDER BY k.ord;
        END IF;
    END IF;

    -- 6. payment requests for new open invoices of accounts that pay automatically
    WITH c AS MATERIALIZED (
        SELECT i.account_id, i.id, pm.id AS pm_id, i.issue_date
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.payment_methods pm ON pm.account_id = k.account_id AND pm.is_default
                                            AND pm.active AND pm.automatic
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.kind = 'invoice' AND i.status = 'open'
           AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                            WHERE x.account_id = i.account_id AND x.invoice_id = i.id)
    ),
    q AS MATERIALIZED (
        SELECT c.*, invoice_open_amount(c.account_id, c.id) AS open_amount FROM c
    ),
    r AS (
        INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
        SELECT q.account_id, q.id, q.pm_id, q.open_amount, q.issue_date
          FROM q
         WHERE minor_units(q.open_amount) > 0
         ORDER BY q.account_id, q.id
        RETURNING r.*
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT r.account_id, 'payment.requested', i.subscription_id, r.invoice_id,
               jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                                  'reference', i.reference, 'due_date', i.due_date, 'currency', i.currency,
                                  'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                                  'payment_method_id', r.payment_method_id, 'method', pm.kind,
                                  'attempt', r.attempt, 'requested_on', r.requested_on)
          FROM r
          JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
         ORDER BY r.account_id, r.id
        RETURNING e.*
    )
    SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) INTO n FROM ev WHERE notify;

    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling.book_invoices(bigint[], bigint[]) IS 'book issued invoices and credit notes (receivables, revenue per account, VAT per rate) and reverse void ones, once each; apply credit notes and customer credit to open invoices (paid when covered); create payment requests for accounts paying automatically; set-based; returns the number of entries booked or reversed';
