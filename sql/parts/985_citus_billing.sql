
-- ============================================================================
-- Billing on Citus (docs/citus.md): the billing batch bills one account at a
-- time, every statement on that account's rows alone, so that Citus routes
-- it to the one shard that holds the account.  Used by bill_batch only when
-- the citus extension is installed; a single server bills set-based in
-- bill_subscriptions.
--
-- bill_account_citus computes the account's charges with the engine
-- (billing_charges_citus, routed to the account's shard), keeps them in a
-- temporary table of the coordinator's session, and writes the account's
-- subscriptions, invoices, lines and events from there: nothing volatile is
-- evaluated on a shard (ids, clock) and no statement joins two accounts.
-- Invoice numbers come from the batch's block of each series: the caller
-- locks the series counters once per batch, hands in the next number of
-- each, and moves the counters once at the end of the batch (gapless: only
-- invoices written use numbers).
-- ============================================================================

-- Whether this database runs on Citus (the citus extension is installed):
-- decided once per session and kept in a session setting, so the billing
-- batch, the booking, dunning and the line triggers ask a setting, not the
-- catalog, each time (a session that asked before citus was installed keeps
-- its answer: connect again after distribute()).
CREATE FUNCTION subbilling_internal.on_citus() RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    v   text := current_setting('subbilling_internal.on_citus', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        v := EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus')::text;
        PERFORM set_config('subbilling_internal.on_citus', v, false);
    END IF;
    RETURN v::boolean;
END
$$;
COMMENT ON FUNCTION subbilling_internal.on_citus() IS 'internal: true when the citus extension is installed, decided once per session (setting subbilling_internal.on_citus)';
REVOKE ALL ON FUNCTION subbilling_internal.on_citus() FROM PUBLIC;

-- ---------------------------------------------------------------- the engine on Citus

-- billing_charges for the accounts of one shard on Citus: the same query (kept equal to
-- it; test/pgtap/985_citus_billing.sql compares what both bill), in PL/pgSQL (Citus plans
-- a PL/pgSQL function's query with the arguments' values, not an SQL function's), every
-- table also filtered by account_id = ANY (the accounts), so that Citus routes the whole
-- query to the one shard that holds them (the delegated billing passes one shard's
-- accounts, preview_invoice one account; accounts of several shards are refused by Citus),
-- CASE WHEN x = ... for CASE x WHEN, and the tax treatment and rate computed once per
-- distinct inputs rather than once per key.  The single server keeps the SQL function: its one
-- plan without the batch's values is what makes the set-based batch fast there.
CREATE FUNCTION subbilling_internal.billing_charges_citus(account_ids bigint[], subscription_ids bigint[], as_of_dates date[])
    RETURNS TABLE (account_id bigint, subscription_id bigint, plan_id bigint, charge_type text, key_start date,
                   period daterange, due_date date, pending boolean, emit boolean,
                   expected subbilling.price, invoiced subbilling.price,
                   kind text, description text, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, currency text,
                   tax_treatment text)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    -- the accounts: every table is also filtered by them, so that the query is routed to
    -- their shard as a whole
    accts   bigint[] := ARRAY(SELECT DISTINCT a FROM unnest(account_ids) a WHERE a IS NOT NULL ORDER BY 1);
BEGIN
RETURN QUERY
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
                             WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.account_id = ANY (accts)
                               AND p.pricing_model = 'usage'))
           END AS kfloor
      FROM b
      JOIN subbilling.subscriptions s ON s.account_id = b.account_id AND s.id = b.subscription_id AND s.account_id = ANY (accts)
      JOIN subbilling.accounts a ON a.id = s.account_id AND a.id = ANY (accts)
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
       AND i.account_id = ANY (accts)
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
-- period segments (charge type period) with their paused days and the pause boundaries inside;
-- a suspension (payment stop) and a skipped delivery of a plan that bills
-- per delivery hold charges like a pause, and a day held twice counts once
segp AS (
    SELECT seg.*, seg.seg_hi - seg.seg_lo AS days, coalesce(z1.paused, 0) AS paused, z.bound
      FROM seg
      LEFT JOIN LATERAL (
          SELECT range_agg(pz.during) * datemultirange(daterange(seg.seg_lo, seg.seg_hi)) AS held,
                 max(greatest(CASE WHEN lower(pz.during) > seg.seg_lo THEN lower(pz.during) END,
                              CASE WHEN upper(pz.during) < seg.seg_hi THEN upper(pz.during) END)) AS bound
            FROM (SELECT p.during FROM subbilling.subscription_pauses p
                   WHERE p.account_id = seg.account_id AND p.account_id = ANY (accts) AND p.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT daterange(u.suspended_from, u.lifted_on) FROM subbilling.subscription_suspensions u
                   WHERE u.account_id = seg.account_id AND u.account_id = ANY (accts) AND u.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT k.held FROM subbilling.delivery_records k
                   WHERE k.account_id = seg.account_id AND k.account_id = ANY (accts) AND k.subscription_id = seg.subscription_id
                     AND k.held IS NOT NULL) pz
           WHERE pz.during && daterange(seg.seg_lo, seg.seg_hi)) z ON true
      LEFT JOIN LATERAL (
          SELECT sum(upper(h) - lower(h))::integer AS paused FROM unnest(z.held) AS h) z1 ON true
     WHERE seg.model <> 'usage'
),
rec AS MATERIALIZED (
    SELECT g.account_id, g.subscription_id, g.plan_id, 'period'::text AS charge_type, g.ps AS key_start,
           daterange(g.ps, g.pe) AS period,
           CASE WHEN g.timing = 'in_advance' THEN min(g.seg_lo) ELSE least(g.pe, min(g.cancel_at)) END AS due_on,
           CASE WHEN g.timing = 'in_advance'
                THEN greatest(min(g.seg_lo), max(CASE WHEN g.seg_lo > g.ps THEN g.seg_lo END),
                              max(CASE WHEN g.seg_hi < g.pe THEN g.seg_hi END), max(g.bound))
                ELSE least(g.pe, min(g.cancel_at)) END AS corr_due,
           sum(CASE WHEN g.model = 'flat' THEN g.price
                    WHEN g.model = 'per_unit' THEN g.price * g.qty
                    WHEN g.model = 'package' THEN package_price(g.qty, g.package_size, g.price)
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
-- discounts: percent_off of every qualifying period key, amount_off of
-- the base plan's keys, for `periods` periods of the key's plan from
-- starts_on; never more than the key's charge.  The discounts of the
-- batch's subscriptions are looked up through the subscriptions (an index
-- probe each), never by scanning all discounts.
dsc AS MATERIALIZED (
    SELECT d.account_id, d.subscription_id, d.id, d.starts_on, d.periods, d.percent_off, d.amount_off,
           c.name, c.plan_codes
      FROM s
      JOIN subbilling.subscription_discounts d ON d.account_id = s.account_id AND d.subscription_id = s.subscription_id
       AND d.account_id = ANY (accts)
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
           WHERE x.account_id = g.account_id AND x.account_id = ANY (accts) AND x.item_id = g.item_id
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
           -- the key's first line: its corrections keep its treatment and rate
           (array_agg(l.tax_treatment ORDER BY l.id))[1] AS orig_treatment,
           (array_agg(l.tax_rate ORDER BY l.id))[1] AS orig_rate,
           s.anchor, s.as_of, s.zero, s.tax_exempt, s.currency
      FROM s
      JOIN subbilling.invoice_lines l
        ON l.account_id = s.account_id AND l.subscription_id = s.subscription_id AND l.account_id = ANY (accts) AND l.charge_type IS NOT NULL
       AND l.key_start >= s.kfloor
      JOIN subbilling.invoices v ON v.account_id = l.account_id AND v.id = l.invoice_id AND v.account_id = ANY (accts)
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
           e.period, e.expected, v.invoiced, v.orig_treatment, v.orig_rate,
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
-- the keys with what their tax depends on: the tax point is the start of the period for
-- what is billed in advance (and setup fees), its last day for what is billed in arrears
jt AS MATERIALIZED (
    SELECT j.*, p.name AS plan_name, p.billing_period AS bperiod, a.country, a.vat_number,
           pr.tax_category, pr.tax_rate AS product_rate,
           CASE WHEN j.charge_type = 'usage' OR (j.charge_type <> 'setup' AND p.billing_timing = 'in_arrears')
                THEN coalesce(upper(j.period), j.key_start + 1) - 1
                ELSE j.key_start END AS tax_point
      FROM j
      JOIN subbilling.plans p ON p.id = j.plan_id
      JOIN subbilling.products pr ON pr.id = p.product_id
      -- one primary-key probe per key (LIMIT 1 keeps the planner from looping
      -- over the accounts when its statistics predate a large batch)
      CROSS JOIN LATERAL (SELECT a.country, a.vat_number FROM subbilling.accounts a
                           WHERE a.id = j.account_id AND a.id = ANY (accts) LIMIT 1) a
),
-- the treatment and rate once per distinct set of inputs (on Citus each call of line_tax
-- is a few statements that Citus plans, so not once per key); a key already invoiced
-- keeps its first line's
txd AS MATERIALIZED (
    SELECT q.tax_exempt, q.country, q.vat_number, q.tax_category, q.product_rate, q.tax_point, t.treatment, t.rate
      FROM (SELECT DISTINCT jt.tax_exempt, jt.country, jt.vat_number, jt.tax_category, jt.product_rate, jt.tax_point
              FROM jt WHERE jt.orig_rate IS NULL) q
      CROSS JOIN LATERAL subbilling_internal.line_tax(q.tax_exempt, q.country, q.vat_number, q.tax_category,
                                                      q.product_rate, q.tax_point) t
),
d0 AS (
    SELECT j.account_id, j.subscription_id, j.plan_id, j.charge_type, j.key_start,
           coalesce(j.period, CASE WHEN j.charge_type = 'setup' THEN daterange(j.key_start, j.key_start, '[]')
                                   ELSE period_of(j.anchor, j.bperiod, j.key_start) END) AS period,
           j.expected, j.invoiced, j.due_date, j.first_kind, j.dname, j.dsegs, j.dpaused, j.dunits,
           j.first_qty, j.first_unit, j.zero, j.currency,
           coalesce(j.expected, j.zero) - coalesce(j.invoiced, j.zero) AS diff,
           j.due_date > j.as_of AS pending,
           coalesce(j.orig_treatment, tx.treatment) AS treatment,
           coalesce(j.orig_rate, tx.rate) AS rate,
           j.plan_name
      FROM jt j
      LEFT JOIN txd tx
        ON j.orig_rate IS NULL
       AND tx.tax_exempt IS NOT DISTINCT FROM j.tax_exempt AND tx.country IS NOT DISTINCT FROM j.country
       AND tx.vat_number IS NOT DISTINCT FROM j.vat_number AND tx.tax_category IS NOT DISTINCT FROM j.tax_category
       AND tx.product_rate IS NOT DISTINCT FROM j.product_rate AND tx.tax_point IS NOT DISTINCT FROM j.tax_point
),
d AS (
    SELECT d0.*, NOT d0.pending AND d0.diff <> d0.zero AS emit FROM d0
),
-- VAT once per invoice (subscription), treatment and rate on the sum of its
-- lines, allocated back to the lines by largest remainder of their exact
-- VAT (ties to the earlier line): the lines sum exactly to the per-rate VAT
-- and each is within one minor unit of its own exact VAT
dx AS (
    SELECT d.*, CASE WHEN d.emit THEN minor_units(d.diff) * d.rate / 100 END AS exact
      FROM d
),
dv AS (
    SELECT dx.*,
           CASE WHEN dx.emit THEN
               minor_units(tax(sum(dx.diff) OVER w, dx.rate)) - sum(floor(dx.exact)) OVER w END AS extra,
           CASE WHEN dx.emit THEN
               row_number() OVER (PARTITION BY dx.account_id, dx.subscription_id, dx.emit, dx.treatment, dx.rate
                                  ORDER BY dx.exact - floor(dx.exact) DESC, dx.key_start, dx.charge_type = 'discount',
                                           dx.charge_type, minor_units(dx.diff) >= 0, dx.plan_id) END AS rk
      FROM dx
    WINDOW w AS (PARTITION BY dx.account_id, dx.subscription_id, dx.emit, dx.treatment, dx.rate)
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
                CASE WHEN d.charge_type = 'setup' THEN d.dname || ' setup fee'
                ELSE d.dname || ' ' || lower(d.period) || ' – ' || (upper(d.period) - 1)
                     || CASE WHEN d.dsegs IS NOT NULL
                             THEN ', prorated ' || d.dsegs || ' of ' || (upper(d.period) - lower(d.period)) ELSE '' END
                     || CASE WHEN d.dpaused > 0 THEN ', ' || d.dpaused || ' days paused' ELSE '' END
                     || CASE WHEN d.dunits IS NOT NULL THEN ', ' || trim_scale(d.dunits) || ' units' ELSE '' END
                END
            ELSE CASE WHEN d.charge_type = 'discount' THEN 'Discount adjustment'
                      WHEN d.charge_type = 'setup' THEN 'Setup fee adjustment'
                      WHEN d.charge_type = 'usage' THEN 'Usage adjustment'
                                    ELSE CASE WHEN d.diff > d.zero THEN 'Additional charge' ELSE 'Credit' END END
                 || ' for ' || d.plan_name || ' ' || d.key_start
                 || CASE WHEN d.charge_type = 'setup' THEN '' ELSE ' – ' || (upper(d.period) - 1) END
                 || ': ' || coalesce(d.expected, d.zero)::text || ' instead of ' || d.invoiced::text
       END,
       CASE WHEN d.invoiced IS NULL THEN d.first_qty ELSE 1 END,
       CASE WHEN d.invoiced IS NULL THEN d.first_unit ELSE d.diff END,
       d.diff, d.rate,
       CASE WHEN d.emit THEN price_minor(floor(d.exact)::bigint + CASE WHEN d.rk <= d.extra THEN 1 ELSE 0 END, d.currency)
            ELSE tax(d.diff, d.rate) END,
       d.currency, d.treatment
  FROM dv d;
END
$$;
COMMENT ON FUNCTION subbilling_internal.billing_charges_citus(bigint[], bigint[], date[]) IS 'internal (Citus): billing_charges for the subscriptions of the accounts of one shard, every table filtered by the accounts (routed to their shard)';
REVOKE ALL ON FUNCTION subbilling_internal.billing_charges_citus(bigint[], bigint[], date[]) FROM PUBLIC;

-- ---------------------------------------------------------------- delegated billing: ids
-- On Citus the billing of a group of accounts runs on the worker that holds their shard
-- (bill_accounts_citus below).  A worker's copies of the extension's sequences are its own:
-- the ids that must follow the coordinator's order (invoices: their payment reference is
-- made from the id; journal entries; events: events_after hands events out by id below the
-- coordinator's watermark) are drawn on the coordinator, in the batch's transaction, and
-- handed to the worker as pools; the other ids (lines, journal lines, billing errors) come
-- from the column defaults, which distribute() gives a range of their own on each worker.

-- One charge of billing_charges_citus (its result row), kept in an array while an
-- account is billed.
CREATE TYPE subbilling_internal.citus_charge AS (
    account_id bigint, subscription_id bigint, plan_id bigint, charge_type text, key_start date,
    period daterange, due_date date, pending boolean, emit boolean,
    expected subbilling.price, invoiced subbilling.price,
    kind text, description text, quantity numeric, unit_price subbilling.price,
    net subbilling.price, tax_rate numeric, tax subbilling.price, currency text,
    tax_treatment text
);
COMMENT ON TYPE subbilling_internal.citus_charge IS 'internal (Citus): a row of billing_charges_citus, kept in an array while an account is billed';

-- A pool of ids for the setting subbilling_internal.ids_<pool>: '+' then ranges lo-hi,
-- ascending, comma-separated ('+' alone: a pool used up).  The coordinator marks the pools
-- of its last try with '=' instead of '+' (citus_take_id).
CREATE FUNCTION subbilling_internal.citus_id_pool(ids bigint[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT '+' || coalesce(string_agg(r.lo || '-' || r.hi, ',' ORDER BY r.lo), '')
      FROM (SELECT min(v) AS lo, max(v) AS hi
              FROM (SELECT v, v - row_number() OVER (ORDER BY v) AS g FROM unnest(ids) AS v) q
             GROUP BY q.g) r
$$;
COMMENT ON FUNCTION subbilling_internal.citus_id_pool(bigint[]) IS 'internal (Citus): the text form of a pool of ids (ranges) for citus_take_id';
REVOKE ALL ON FUNCTION subbilling_internal.citus_id_pool(bigint[]) FROM PUBLIC;

-- The next id of a pool ('invoices', 'journal_entries', 'events'): from the pool that the
-- coordinator handed to this call when there is one (a pool used up is an error, never a
-- draw from this node's sequence), else nextval of the table's sequence.  The pool is a
-- transaction-local setting: a rolled-back subtransaction gives its ids back.  A pool used
-- up raises SQLSTATE SBID0, which bill_accounts_citus turns into "needs more" (the
-- coordinator bills the account again with larger pools), or, in a pool of the
-- coordinator's last try ('='), internal_error: an error of the account (billing_errors).
CREATE FUNCTION subbilling_internal.citus_take_id(pool text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    name    text := 'subbilling_internal.ids_' || pool;
    p       text := current_setting(name, true);
    k       integer;
    head    text;
    rest    text;
    lo      bigint;
    hi      bigint;
    mark    text;
BEGIN
    IF p IS NULL OR p = '' THEN
        RETURN nextval(format('subbilling.%I', pool || '_id_seq')::regclass);
    END IF;
    mark := left(p, 1);
    p := substr(p, 2);
    IF p = '' THEN
        IF mark = '=' THEN
            RAISE EXCEPTION 'the % ids handed to this billing call are used up', pool
                USING ERRCODE = 'internal_error';
        END IF;
        RAISE EXCEPTION 'the % ids handed to this billing call are used up', pool
            USING ERRCODE = 'SBID0', HINT = 'The coordinator bills the account again with more ids.';
    END IF;
    k := position(',' IN p);
    head := CASE WHEN k = 0 THEN p ELSE left(p, k - 1) END;
    rest := CASE WHEN k = 0 THEN '' ELSE substr(p, k + 1) END;
    lo := split_part(head, '-', 1)::bigint;
    hi := split_part(head, '-', 2)::bigint;
    IF lo < hi THEN
        rest := (lo + 1) || '-' || hi || CASE WHEN rest = '' THEN '' ELSE ',' || rest END;
    END IF;
    PERFORM set_config(name, mark || rest, true);
    RETURN lo;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_take_id(text) IS 'internal (Citus): the next id of a pool handed down by the coordinator (setting subbilling_internal.ids_<pool>), else nextval of subbilling.<pool>_id_seq';
REVOKE ALL ON FUNCTION subbilling_internal.citus_take_id(text) FROM PUBLIC;

-- emit_event for the account-by-account billing.  emit_event itself takes the id from the
-- events pool in a delegated call (and leaves the announcement to the coordinator, which
-- also holds the outbox slot), so that every event written inside the call, on whatever
-- path (a payment stop lifted, a subscription's status, a fee invoice voided), has an id
-- of the coordinator's; this name stays for the Citus booking's callers.
CREATE FUNCTION subbilling_internal.citus_emit_event(account_id bigint, type text, subscription_id bigint,
                                                     payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    RETURN subbilling_internal.emit_event(account_id, type, subscription_id, payload, invoice_id);
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal (Citus): emit_event for the Citus booking (emit_event takes the id from the events pool in a delegated billing call; the coordinator announces those events)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) FROM PUBLIC;

-- The entry of one issued document (invoice or credit note) on Citus, the step that
-- billing's booking and the account-by-account booking (both book_account_citus, through
-- book_issued_citus) share: receivables = total, revenue per account code, VAT per
-- rate, one entry, once, every statement on the account's shard.  The entry's id is
-- taken with citus_take_id: from the coordinator's pool in a delegated billing call,
-- else from the sequence.  Returns true when it wrote the entry, false when there was
-- nothing to book (a zero total), NULL when the document was already booked.
CREATE FUNCTION subbilling_internal.book_invoice_entry_citus(acct bigint, inv subbilling.invoices)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    codes   text[];
    amounts subbilling.price[];
    subs    text[];
    oitems  bigint[];
    l_kind  text[];
    l_plan  bigint[];
    l_rate  numeric[];
    l_treat text[];
    l_net   subbilling.price[];
    l_tax   subbilling.price[];
BEGIN
    -- booked once
    IF EXISTS (SELECT 1 FROM subbilling.journal_entries e
                WHERE e.account_id = acct AND e.invoice_id = inv.id AND e.kind IN ('invoice', 'credit_note')) THEN
        RETURN NULL;
    END IF;
    -- the lines, read on the account's shard
    SELECT array_agg(l.kind), array_agg(l.plan_id), array_agg(l.tax_rate), array_agg(l.tax_treatment),
           array_agg(l.net), array_agg(l.tax)
      INTO l_kind, l_plan, l_rate, l_treat, l_net, l_tax
      FROM subbilling.invoice_lines l WHERE l.account_id = acct AND l.invoice_id = inv.id;
    SELECT array_agg(q.code ORDER BY q.ord, q.code), array_agg(q.amount ORDER BY q.ord, q.code),
           array_agg(q.subledger ORDER BY q.ord, q.code), array_agg(q.invoice_id ORDER BY q.ord, q.code)
      INTO codes, amounts, subs, oitems
      FROM (SELECT ledger_code('receivables', inv.currency) AS code, inv.total AS amount,
                   'receivables'::text AS subledger, inv.id AS invoice_id, 0 AS ord
            UNION ALL
            SELECT k.code, -sum(k.net), NULL, NULL, 1
              FROM (SELECT CASE WHEN NOT g.is_fee AND g.tax_treatment IN ('reverse_charge', 'oss', 'outside_scope')
                                THEN ledger_code('revenue_rate', inv.currency, g.tax_treatment)
                                ELSE subbilling_internal.revenue_code(inv.currency, g.product, g.tax_rate, g.is_fee) END AS code,
                           g.net
                      FROM (SELECT c.kind = 'fee' AS is_fee, c.tax_rate, c.tax_treatment, p.code AS product, sum(c.net) AS net
                              FROM unnest(l_kind, l_plan, l_rate, l_treat, l_net) AS c(kind, plan_id, tax_rate, tax_treatment, net)
                              LEFT JOIN subbilling.plans pl ON pl.id = c.plan_id
                              LEFT JOIN subbilling.products p ON p.id = pl.product_id
                             GROUP BY 1, 2, 3, 4) g) k
             GROUP BY k.code
            UNION ALL
            SELECT k.code, -sum(k.tax), NULL, NULL, 2
              FROM (SELECT ledger_code('vat', inv.currency, CASE WHEN c.tax_treatment = 'oss' THEN 'oss'
                                                                 ELSE subbilling_internal.rate_detail(c.tax_rate) END) AS code,
                           c.tax
                      FROM unnest(l_rate, l_treat, l_tax) AS c(tax_rate, tax_treatment, tax)
                     WHERE minor_units(c.tax) <> 0) k
             GROUP BY k.code) q
     WHERE minor_units(q.amount) <> 0;
    IF coalesce(cardinality(codes), 0) < 2 THEN
        RETURN false;
    END IF;
    PERFORM subbilling_internal.post_entry_citus(acct, subbilling_internal.citus_take_id('journal_entries'),
                inv.kind, inv.issue_date, inv.id, replace(inv.kind, '_', ' ') || ' ' || inv.number,
                codes, amounts, subs, oitems);
    RETURN true;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_invoice_entry_citus(bigint, subbilling.invoices) IS 'internal (Citus): the journal entry of one issued document on the account''s shard (once; the id from the coordinator''s pool in a delegated billing call); true when written, false when nothing to book, NULL when already booked';
REVOKE ALL ON FUNCTION subbilling_internal.book_invoice_entry_citus(bigint, subbilling.invoices) FROM PUBLIC;

-- Step 1 of book_invoices on Citus, for book_account_citus's short way (billing's new
-- invoices alone) and for its first step: the entry of each issued
-- document of the account not yet booked (book_invoice_entry_citus), in id order.  Returns
-- the entries written and the invoices with a zero total among those it booked, which the
-- caller marks paid.
CREATE FUNCTION subbilling_internal.book_issued_citus(acct bigint, invoice_ids bigint[],
                                                      OUT booked integer, OUT zero_total bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    b       boolean;
BEGIN
    booked := 0;
    zero_total := '{}';
    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.status IN ('open', 'paid', 'uncollectible')
                ORDER BY i.id LOOP
        b := subbilling_internal.book_invoice_entry_citus(acct, inv);
        CONTINUE WHEN b IS NULL;
        IF b THEN
            booked := booked + 1;
        END IF;
        IF inv.kind = 'invoice' AND minor_units(inv.total) = 0 THEN
            zero_total := zero_total || inv.id;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_issued_citus(bigint, bigint[]) IS 'internal (Citus): the entries of an account''s issued documents not yet booked (book_invoice_entry_citus), in id order; returns the entries written and the zero-total invoices among them (to be paid by the caller)';
REVOKE ALL ON FUNCTION subbilling_internal.book_issued_citus(bigint, bigint[]) FROM PUBLIC;


CREATE FUNCTION subbilling_internal.bill_account_citus(acct bigint, subscription_ids bigint[], as_of_dates date[],
                                                       as_of timestamptz, series_ids bigint[],
                                                       INOUT next_numbers bigint[],
                                                       charges subbilling_internal.citus_charge[] DEFAULT NULL,
                                                       plain_booking boolean DEFAULT false,
                                                       OUT invoice_ids bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    a       subbilling.accounts;
    ref_kind text;
    s_cur   text;
    stamp   timestamptz := clock_timestamp();
    h       record;
    k       integer;
    num     bigint;
    inv     subbilling.invoices;
    ev      record;
    ch      subbilling_internal.citus_charge[];
BEGIN
    invoice_ids := '{}';
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = acct;
    SELECT cs.reference_kind INTO ref_kind FROM subbilling.country_settings cs WHERE cs.country = a.country;
    SELECT ss.currency INTO s_cur FROM subbilling.seller_settings ss;

    -- the charges kept in a variable, not a temporary table: on a worker this runs inside
    -- the coordinator's transaction, which is prepared (two-phase commit), and PostgreSQL
    -- cannot prepare a transaction that touched a temporary table
    -- (computed for the shard's whole group by bill_accounts_citus and handed in, else here)
    IF charges IS NOT NULL THEN
        ch := charges;
    ELSE
        ch := ARRAY(SELECT ROW(c.*)::subbilling_internal.citus_charge
                      FROM subbilling_internal.billing_charges_citus(array_fill(acct, ARRAY[cardinality(subscription_ids)]),
                                                                     subscription_ids, as_of_dates) c);
    END IF;

    -- each subscription's bookkeeping
    UPDATE subbilling.subscriptions x
       SET next_bill_on = st.next_on,
           bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
           billed_as_of = greatest(st.as_of, x.billed_as_of),
           billed_at = stamp
      FROM (SELECT b.subscription_id, b.as_of,
                   (SELECT min(c.due_date) FROM unnest(ch) c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS next_on,
                   (SELECT min(c.key_start) FROM unnest(ch) c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS from_d
              FROM unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of)) st
     WHERE x.account_id = acct AND x.id = st.subscription_id;

    -- one invoice per subscription with lines due, in subscription order
    FOR h IN
        SELECT c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, array_agg(DISTINCT c.tax_treatment) AS treatments
          FROM unnest(ch) c
          JOIN unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of) ON b.subscription_id = c.subscription_id
         WHERE c.emit
         GROUP BY c.subscription_id, b.as_of
         ORDER BY c.subscription_id
    LOOP
        SELECT sr.id, sr.prefix, sr.digits, sr.code INTO ev
          FROM subbilling.invoice_series sr WHERE sr.code = to_char(h.issue_date, 'FMYYYY');
        k := array_position(series_ids, ev.id);
        IF k IS NULL THEN
            RAISE EXCEPTION 'invoice series % is not held by this billing batch', ev.code
                USING ERRCODE = 'internal_error';
        END IF;
        num := next_numbers[k];
        next_numbers[k] := num + 1;
        inv.id := subbilling_internal.citus_take_id('invoices');
        inv.seller_currency := s_cur;
        -- every value computed here, on the coordinator: the INSERT carries constants only
        inv.exchange_rate := CASE WHEN s_cur <> h.currency THEN subbilling_internal.exchange_rate_for(h.currency, h.issue_date) END;
        inv.kind := CASE WHEN h.net + h.tax < price_minor(0, h.currency) THEN 'credit_note' ELSE 'invoice' END;
        inv.number := subbilling_internal.format_invoice_number(ev.prefix, ev.digits, num);
        inv.reference := reference_of(coalesce(ref_kind, 'luhn'), inv.id);
        inv.tax_notes := subbilling_internal.tax_notes_for(h.treatments);
        inv.total := h.net + h.tax;
        inv.due_date := h.issue_date + a.payment_terms_days;
        inv.tax_seller_currency := CASE WHEN s_cur IS NOT NULL
                                        THEN subbilling_internal.convert_price(h.tax, coalesce(inv.exchange_rate, 1), s_cur) END;
        inv.finalized_at := now();
        INSERT INTO subbilling.invoices AS i
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency,
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at,
                tax_notes, buyer_vat_number, seller_currency, exchange_rate, tax_seller_currency)
        VALUES (acct, inv.id, h.subscription_id, inv.kind, 'open', ev.id, num, inv.number, h.currency,
                h.net, h.tax, inv.total, h.issue_date, inv.due_date, inv.reference, bill_account_citus.as_of,
                inv.finalized_at, inv.tax_notes, a.vat_number, s_cur, inv.exchange_rate, inv.tax_seller_currency)
        RETURNING i.* INTO inv;
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax, tax_treatment)
        SELECT acct, inv.id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax, c.tax_treatment
          FROM unnest(ch) c
         WHERE c.subscription_id = h.subscription_id AND c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, c.plan_id;
        PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.created', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'as_of', inv.as_of), inv.id);
        PERFORM subbilling_internal.citus_emit_event(acct, 'invoice.finalized', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind, 'status', inv.status,
                                       'number', inv.number, 'series', ev.code,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'total_minor', minor_units(inv.total),
                                       'issue_date', inv.issue_date, 'due_date', inv.due_date,
                                       'reference', inv.reference), inv.id);
        invoice_ids := invoice_ids || inv.id;
    END LOOP;
    IF cardinality(invoice_ids) > 0 THEN
        -- the one booking path on Citus (book_account_citus): the new invoices alone (its
        -- short way), or with customer credit applied and payment requests made for an
        -- automatic method.  plain_booking: the caller found for the whole group that the
        -- account has neither customer credit nor an automatic payment method, so that only
        -- a credit note among the new invoices needs book_account_citus's tests.
        PERFORM subbilling_internal.book_account_citus(acct, invoice_ids, plain_booking);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) IS 'internal (Citus): bill claimed subscriptions of one account as of their account-local dates, one account''s rows per statement, with the charges handed in (else computed), booked by book_account_citus (plain_booking: no credit or automatic payment method, so its short way unless a credit note); numbers from the batch''s blocks (next_numbers moved on); returns the invoice ids';
REVOKE ALL ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[], subbilling_internal.citus_charge[], boolean) FROM PUBLIC;

-- The billing of a group of accounts that live in one shard, run on the worker that holds
-- the shard (bill_batch_citus calls it in a query routed to that shard; distribute()
-- registers it for delegation by account, colocated with accounts): each account's due
-- subscriptions are claimed by (account_id, id) with SKIP LOCKED, skipping the ones held
-- elsewhere or billed meanwhile, and billed in a subtransaction of their own, falling back
-- to one subscription at a time (billing_errors), as on a single server.  Every statement
-- works on the group's shard alone and runs there locally.  Invoice numbers continue the
-- batch's blocks (next_numbers); invoice, journal-entry and event ids come from the pools
-- the coordinator drew.  Returns invoices, errors, subscriptions claimed, then the next
-- number of each series, then, when a pool ran out for some accounts (their work rolled
-- back), the number of their open invoices and the subscriptions to bill again with more.
-- Its statements (and those of the functions it calls) are planned for each execution
-- (plan_cache_mode): Citus 13.2 keeps one more local plan in a cached generic plan of a
-- statement on a distributed table at every execution on the shard's node (citusdata/citus
-- pull request 8824), so that a worker's session that billed 100,000 accounts grew past
-- 11 GB and was killed; planned each time, its memory stays flat, and it bills faster.
CREATE FUNCTION subbilling_internal.bill_accounts_citus(acct bigint, account_ids bigint[], subscription_ids bigint[],
                                                        as_of_dates date[], as_of timestamptz, run_id bigint,
                                                        series_ids bigint[], next_numbers bigint[],
                                                        invoice_pool text, entry_pool text, event_pool text)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    nxt     bigint[] := next_numbers;
    nxt_try bigint[];
    got     bigint[];
    accs    bigint[] := ARRAY(SELECT DISTINCT x FROM unnest(account_ids) x ORDER BY x);
    c_acc   bigint[];
    c_sid   bigint[];
    c_ad    date[];
    all_ch  subbilling_internal.citus_charge[];
    a_ch    subbilling_internal.citus_charge[];
    a_sid   bigint[];
    a_ad    date[];
    ok_sid  bigint[] := '{}';
    full_accs bigint[];
    k       bigint;
    invoices integer := 0;
    errors  integer := 0;
    claimed integer := 0;
    st      text;
    msg     text;
    det     text;
    again   bigint[] := '{}';     -- subscriptions to bill again with more ids
    need    bigint := 0;          -- their accounts' open invoices
BEGIN
    PERFORM set_config('subbilling_internal.ids_invoices', invoice_pool, true),
            set_config('subbilling_internal.ids_journal_entries', entry_pool, true),
            set_config('subbilling_internal.ids_events', event_pool, true);
    -- claim the group's due subscriptions of the batch, in one statement on the shard
    SELECT array_agg(x.account_id ORDER BY x.account_id, x.id), array_agg(x.id ORDER BY x.account_id, x.id)
      INTO c_acc, c_sid
      FROM (SELECT x.account_id, x.id FROM subbilling.subscriptions x
             WHERE x.account_id = ANY (accs) AND x.id = ANY (subscription_ids)
               AND x.next_bill_on <= (bill_accounts_citus.as_of AT TIME ZONE 'UTC')::date + 1
               FOR UPDATE SKIP LOCKED) x;
    IF c_sid IS NULL THEN
        RETURN ARRAY[0, 0, 0]::bigint[] || nxt;
    END IF;
    c_ad := ARRAY(SELECT b.ad FROM unnest(c_acc, c_sid) WITH ORDINALITY AS c(acc, sid, o)
                    JOIN unnest(account_ids, subscription_ids, as_of_dates) AS b(acc, sid, ad)
                      ON b.acc = c.acc AND b.sid = c.sid
                   ORDER BY c.o);
    claimed := cardinality(c_sid);
    -- the accounts whose booking has more to do than the new invoices (customer credit, an
    -- automatic payment method), found for the whole group in one statement on the shard
    full_accs := ARRAY(SELECT pm.account_id FROM subbilling.payment_methods pm
                        WHERE pm.account_id = ANY (accs) AND pm.is_default AND pm.active AND pm.automatic)
                 || ARRAY(SELECT l.account_id FROM subbilling.journal_lines l
                           WHERE l.account_id = ANY (accs) AND l.subledger = 'customer_credit'
                           GROUP BY l.account_id
                          HAVING minor_units(-sum(l.amount)) > 0);
    -- the engine once for the whole group (one query on the shard); if it fails, each
    -- account computes its own below, so that the failing one is found and recorded
    BEGIN
        all_ch := ARRAY(SELECT ROW(c.*)::subbilling_internal.citus_charge
                          FROM subbilling_internal.billing_charges_citus(c_acc, c_sid, c_ad) c
                         ORDER BY c.account_id);
    EXCEPTION WHEN OTHERS THEN
        all_ch := NULL;
    END;
    FOR k IN SELECT DISTINCT x FROM unnest(c_acc) x ORDER BY x LOOP
        a_sid := ARRAY(SELECT u.sid FROM unnest(c_acc, c_sid) AS u(acc, sid) WHERE u.acc = k ORDER BY u.sid);
        a_ad := ARRAY(SELECT u.ad FROM unnest(c_acc, c_sid, c_ad) AS u(acc, sid, ad) WHERE u.acc = k ORDER BY u.sid);
        a_ch := CASE WHEN all_ch IS NOT NULL THEN ARRAY(SELECT c FROM unnest(all_ch) c WHERE c.account_id = k) END;
        BEGIN
            SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
              FROM subbilling_internal.bill_account_citus(k, a_sid, a_ad, bill_accounts_citus.as_of, series_ids, nxt, a_ch,
                                                          NOT (k = ANY (full_accs))) r;
            nxt := nxt_try;
            invoices := invoices + cardinality(got);
            ok_sid := ok_sid || a_sid;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            IF st = 'SBID0' THEN
                -- the ids ran out (customer credit settling many open invoices, each an entry
                -- and events): the account is billed again by the coordinator, with pools
                -- sized by its open invoices (its work here rolled back, ids given back)
                again := again || a_sid;
                need := need + (SELECT count(*) FROM subbilling.invoices i
                                 WHERE i.account_id = k AND i.status IN ('open', 'uncollectible'));
                CONTINUE;
            END IF;
            -- one subscription at a time, each in its own subtransaction
            FOR j IN 1 .. cardinality(a_sid) LOOP
                BEGIN
                    SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
                      FROM subbilling_internal.bill_account_citus(k, ARRAY[a_sid[j]], ARRAY[a_ad[j]], bill_accounts_citus.as_of,
                                                                  series_ids, nxt) r;
                    nxt := nxt_try;
                    invoices := invoices + cardinality(got);
                    ok_sid := ok_sid || a_sid[j];
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    IF st = 'SBID0' THEN
                        -- this and the account's remaining subscriptions billed again, as above
                        again := again || a_sid[j:];
                        need := need + (SELECT count(*) FROM subbilling.invoices i
                                         WHERE i.account_id = k AND i.status IN ('open', 'uncollectible'));
                        EXIT;
                    END IF;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (k, a_sid[j], bill_accounts_citus.run_id, bill_accounts_citus.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = a_ad[j] + 1
                     WHERE x.account_id = k AND x.id = a_sid[j];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
    END LOOP;
    -- the billed subscriptions' earlier errors resolved, in one statement on the shard
    IF cardinality(ok_sid) > 0 THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
         WHERE e.account_id = ANY (accs) AND e.subscription_id = ANY (ok_sid) AND e.resolved_at IS NULL;
    END IF;
    PERFORM set_config('subbilling_internal.ids_invoices', '', true),
            set_config('subbilling_internal.ids_journal_entries', '', true),
            set_config('subbilling_internal.ids_events', '', true);
    -- the subscriptions billed again are claimed again by the coordinator's next call
    RETURN ARRAY[invoices, errors, claimed - cardinality(again)]::bigint[] || nxt
           || CASE WHEN cardinality(again) > 0 THEN need || again ELSE '{}'::bigint[] END;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) IS 'internal (Citus): bill the claimed due subscriptions of a group of accounts of one shard, on the shard''s worker (delegated by account): claim by (account_id, id) with SKIP LOCKED, a subtransaction per account; ids from the coordinator''s pools; returns invoices, errors, claimed, next numbers, then (when a pool ran out) the accounts'' open invoices and the subscriptions to bill again';
REVOKE ALL ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) FROM PUBLIC;

-- The billing batch on Citus: the due subscriptions are read without locks (Citus locks
-- rows only by their account) and grouped by the shard of their account; each group is
-- billed by one call of bill_accounts_citus, routed to the worker that holds the shard
-- (a query on the group's first account), so that a batch costs one round trip per shard
-- rather than some fifteen per account.  Before a group the coordinator holds the outbox
-- slot and draws the group's invoice, journal-entry and event ids (one invoice, two entries
-- and five events per subscription, and a few more per group: the booking may apply
-- customer credit and request a payment; unused ids are left unused), and after it
-- announces the group's events (subbilling.notify).  The counters of the batch's series
-- are locked once, each group continues their blocks, and they are moved once, at the end:
-- the numbers stay gapless and follow the order of the groups.  Without the citus
-- extension (test/pgtap/985_citus_billing.sql) all accounts are one group.
CREATE FUNCTION subbilling_internal.bill_batch_citus(batch_size integer, as_of timestamptz,
                                                     OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    shard   bigint[];
    ser     bigint[];
    nxt     bigint[];
    first_  bigint[];
    res     bigint[];
    grp     record;
    ev      record;
    n       integer;
    ids_i   bigint[];
    ids_j   bigint[];
    ids_e   bigint[];
    c_acc   bigint[];
    c_sid   bigint[];
    c_ad    date[];
    try     integer;
    extra   bigint;
    need    bigint;
    nser    integer;
    mark    text;
    claimed integer := 0;
    run     bigint := current_run_id();
    notify  boolean := subbilling_internal.notify_enabled();
BEGIN
    invoices := 0;
    errors := 0;
    -- one connection per node: the batch writes reference tables (invoice series and
    -- counters, the outbox slot) besides the groups' shards
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id)
      INTO acc, sid, ad
      FROM (SELECT s.account_id, s.id, s.next_bill_on,
                   (bill_batch_citus.as_of AT TIME ZONE a.time_zone)::date AS local_date
              FROM subbilling.subscriptions s
              JOIN subbilling.accounts a ON a.id = s.account_id
             WHERE s.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE 'UTC')::date + 1
               AND s.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE a.time_zone)::date
             ORDER BY s.next_bill_on, s.account_id, s.id
             LIMIT bill_batch_citus.batch_size) c;
    more := coalesce(cardinality(sid), 0) = bill_batch_citus.batch_size;
    IF sid IS NULL THEN
        RETURN;
    END IF;
    -- the series of the issue dates, created if missing, their counters locked for the batch
    PERFORM subbilling_internal.series_for(y) FROM (SELECT DISTINCT d FROM unnest(ad) d) q(y);
    SELECT array_agg(c.series_id ORDER BY c.series_id), array_agg(c.next_number ORDER BY c.series_id)
      INTO ser, nxt
      FROM (SELECT ct.series_id, ct.next_number
              FROM subbilling.invoice_counters ct
             WHERE ct.series_id IN (SELECT sr.id FROM subbilling.invoice_series sr
                                     WHERE sr.code IN (SELECT DISTINCT to_char(d, 'FMYYYY') FROM unnest(ad) d))
               FOR UPDATE) c;
    first_ := nxt;
    -- the shard of each account (one group for all without the citus extension)
    IF EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus') THEN
        EXECUTE $q$SELECT array_agg(pg_catalog.get_shard_id_for_distribution_column('subbilling.accounts', u.a) ORDER BY u.o)
                     FROM unnest($1) WITH ORDINALITY AS u(a, o)$q$ INTO shard USING acc;
    ELSE
        shard := array_fill(0::bigint, ARRAY[cardinality(acc)]);
    END IF;
    -- the outbox slot, held before the event ids are drawn (events_after's watermark)
    PERFORM subbilling_internal.outbox_reserve();
    FOR grp IN
        SELECT min(u.acc) AS first_acc, array_agg(u.acc ORDER BY u.acc, u.sid) AS accs,
               array_agg(u.sid ORDER BY u.acc, u.sid) AS sids, array_agg(u.ad ORDER BY u.acc, u.sid) AS ads
          FROM unnest(shard, acc, sid, ad) AS u(shard, acc, sid, ad)
         GROUP BY u.shard
         ORDER BY min(u.acc)
    LOOP
        c_acc := grp.accs;
        c_sid := grp.sids;
        c_ad := grp.ads;
        try := 1;
        LOOP
            n := cardinality(c_sid);
            -- the pools: one invoice, two entries and five events per subscription and four
            -- entries and eight events more per call; when the call said its accounts need
            -- more (customer credit settling many open invoices), their subscriptions are billed
            -- again with four entries and eight events more per open invoice, doubled on the
            -- third and last try (whose pools, marked '=', make running out an account's error)
            extra := CASE WHEN try = 1 THEN 0 ELSE greatest(need, n) * (1 << (try - 2)) END;
            mark := CASE WHEN try >= 3 THEN '=' ELSE '+' END;
            ids_i := ARRAY(SELECT nextval('subbilling.invoices_id_seq'::regclass) FROM generate_series(1, n));
            ids_j := ARRAY(SELECT nextval('subbilling.journal_entries_id_seq'::regclass) FROM generate_series(1, 2 * n + 4 + 4 * extra));
            ids_e := ARRAY(SELECT nextval('subbilling.events_id_seq'::regclass) FROM generate_series(1, 5 * n + 8 + 8 * extra));
            -- routed to the worker that holds the group's shard, and run there
            SELECT subbilling_internal.bill_accounts_citus(a.id, c_acc, c_sid, c_ad, bill_batch_citus.as_of, run,
                                                           ser, nxt, mark || substr(subbilling_internal.citus_id_pool(ids_i), 2),
                                                           mark || substr(subbilling_internal.citus_id_pool(ids_j), 2),
                                                           mark || substr(subbilling_internal.citus_id_pool(ids_e), 2))
              INTO res
              FROM subbilling.accounts a
             WHERE a.id = c_acc[1];
            EXIT WHEN res IS NULL;
            invoices := invoices + res[1];
            errors := errors + res[2];
            claimed := claimed + res[3];
            nser := coalesce(cardinality(ser), 0);
            nxt := res[4:3 + nser];
            IF notify AND res[1] > 0 THEN
                FOR ev IN SELECT e.id, e.type, e.account_id, e.subscription_id, e.invoice_id
                            FROM subbilling.events e
                           WHERE e.account_id = ANY (c_acc) AND e.id = ANY (ids_e)
                           ORDER BY e.id LOOP
                    PERFORM subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id);
                END LOOP;
            END IF;
            EXIT WHEN cardinality(res) <= 3 + nser;
            -- the subscriptions to bill again, with pools sized by their accounts' open invoices
            need := res[4 + nser];
            SELECT array_agg(u.acc ORDER BY u.acc, u.sid), array_agg(u.sid ORDER BY u.acc, u.sid),
                   array_agg(u.ad ORDER BY u.acc, u.sid)
              INTO c_acc, c_sid, c_ad
              FROM unnest(c_acc, c_sid, c_ad) AS u(acc, sid, ad)
             WHERE u.sid = ANY (res[5 + nser:]);
            EXIT WHEN c_sid IS NULL;
            try := try + 1;
        END LOOP;
    END LOOP;
    -- a full batch that claimed nothing (all held elsewhere) ends the run
    more := more AND claimed > 0;
    -- the counters moved once, by what the batch numbered
    UPDATE subbilling.invoice_counters ct SET next_number = u.nxt
      FROM unnest(ser, nxt, first_) AS u(series_id, nxt, first_)
     WHERE ct.series_id = u.series_id AND u.nxt <> u.first_;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) IS 'internal (Citus): bill_batch by shard: the due accounts grouped by shard, each group billed by one call of bill_accounts_citus on its worker (claims by (account_id, id) with SKIP LOCKED, a subtransaction per account), ids drawn on the coordinator, numbers from one block per series, counters moved once';
REVOKE ALL ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) FROM PUBLIC;
