
-- ============================================================================
-- The billing engine: expected minus invoiced.
--
-- billing_charges() derives, for a set of subscriptions, every charge key
-- (subscription, plan, charge_type, key_start) that they should have had up
-- to a horizon, from the item history, trial, pauses, cancellation,
-- discounts and usage; subtracts what engine lines of non-void invoices
-- already invoiced per key; and says which differences are due.  It is one
-- set-based query: the billing batch, preview_invoice and the tests all use
-- it.  docs/invoicing.md explains every rule with worked examples.
--
-- Amounts: the expected amount of a key is computed once and rounded once:
--     period: sum_i(full_price(quantity_i) * days_i) / days_of_period
-- where full_price is the plan's price for a whole period (price * quantity,
-- the flat price, tiered_price or package_price), days_i are the charged
-- days of segment i (item validity inside the period, from the end of the
-- trial or else the start, minus paused days); price * integer is exact, and
-- the one division rounds half away from zero.  Periods are counted from the
-- billing anchor; an anchor after the paid start gives a prorated stub.
-- ============================================================================

CREATE FUNCTION subbilling_internal.billing_charges(account_ids bigint[], subscription_ids bigint[], as_of_dates date[])
    RETURNS TABLE (account_id bigint, subscription_id bigint, plan_id bigint, charge_type text, key_start date,
                   period daterange, due_date date, pending boolean, emit boolean,
                   expected subbilling.price, invoiced subbilling.price,
                   kind text, description text, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, currency text,
                   tax_treatment text)
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
                   WHERE p.account_id = seg.account_id AND p.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT daterange(u.suspended_from, u.lifted_on) FROM subbilling.subscription_suspensions u
                   WHERE u.account_id = seg.account_id AND u.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT k.held FROM subbilling.delivery_records k
                   WHERE k.account_id = seg.account_id AND k.subscription_id = seg.subscription_id
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
           -- the key's first line: its corrections keep its treatment and rate
           (array_agg(l.tax_treatment ORDER BY l.id))[1] AS orig_treatment,
           (array_agg(l.tax_rate ORDER BY l.id))[1] AS orig_rate,
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
d0 AS (
    SELECT j.account_id, j.subscription_id, j.plan_id, j.charge_type, j.key_start,
           coalesce(j.period, CASE WHEN j.charge_type = 'setup' THEN daterange(j.key_start, j.key_start, '[]')
                                   ELSE period_of(j.anchor, p.billing_period, j.key_start) END) AS period,
           j.expected, j.invoiced, j.due_date, j.first_kind, j.dname, j.dsegs, j.dpaused, j.dunits,
           j.first_qty, j.first_unit, j.zero, j.currency,
           coalesce(j.expected, j.zero) - coalesce(j.invoiced, j.zero) AS diff,
           j.due_date > j.as_of AS pending,
           coalesce(j.orig_treatment, tx.treatment) AS treatment,
           coalesce(j.orig_rate, tx.rate) AS rate,
           p.name AS plan_name
      FROM j
      JOIN subbilling.plans p ON p.id = j.plan_id
      JOIN subbilling.products pr ON pr.id = p.product_id
      -- one primary-key probe per key (LIMIT 1 keeps the planner from looping
      -- over the accounts when its statistics predate a large batch)
      CROSS JOIN LATERAL (SELECT a.country, a.vat_number FROM subbilling.accounts a
                           WHERE a.id = j.account_id LIMIT 1) a
      -- the treatment and rate at the tax point: the start of the period for
      -- what is billed in advance (and setup fees), its last day for what is
      -- billed in arrears; a key already invoiced keeps its first line's
      LEFT JOIN LATERAL (
          SELECT * FROM subbilling_internal.line_tax(j.tax_exempt, a.country, a.vat_number, pr.tax_category, pr.tax_rate,
                                 CASE WHEN j.charge_type = 'usage'
                                           OR (j.charge_type <> 'setup' AND p.billing_timing = 'in_arrears')
                                      THEN coalesce(upper(j.period), j.key_start + 1) - 1
                                      ELSE j.key_start END)
           WHERE j.orig_rate IS NULL) tx ON true
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
       d.diff, d.rate,
       CASE WHEN d.emit THEN price_minor(floor(d.exact)::bigint + CASE WHEN d.rk <= d.extra THEN 1 ELSE 0 END, d.currency)
            ELSE tax(d.diff, d.rate) END,
       d.currency, d.treatment
  FROM dv d
$$;
COMMENT ON FUNCTION subbilling_internal.billing_charges(bigint[], bigint[], date[]) IS 'internal: every charge key of the subscriptions up to their horizon, expected and invoiced, the line that settles the difference and whether it is due as of each account-local date';

-- ---------------------------------------------------------------- preview

CREATE FUNCTION subbilling.preview_invoice(subscription_id bigint, as_of date DEFAULT CURRENT_DATE)
    RETURNS TABLE (kind text, description text, period daterange, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, plan_code text,
                   charge_type text, key_start date)
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = preview_invoice.subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(preview_invoice.subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM subbilling_internal.check_date('as_of', preview_invoice.as_of);
    IF subbilling_internal.on_citus() THEN
        -- Citus: the engine's copy routed to the account's shard (sql/parts/985_citus_billing.sql)
        RETURN QUERY
            SELECT c.kind, c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax,
                   p.code, c.charge_type, c.key_start
              FROM subbilling_internal.billing_charges_citus(ARRAY[s.account_id], ARRAY[s.id], ARRAY[preview_invoice.as_of]) c
              JOIN subbilling.plans p ON p.id = c.plan_id
             WHERE c.emit
             ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, p.code;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT c.kind, c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax,
               p.code, c.charge_type, c.key_start
          FROM subbilling_internal.billing_charges(ARRAY[s.account_id], ARRAY[s.id], ARRAY[preview_invoice.as_of]) c
          JOIN subbilling.plans p ON p.id = c.plan_id
         WHERE c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, p.code;
END
$$;
COMMENT ON FUNCTION subbilling.preview_invoice(bigint, date) IS 'the lines that billing the subscription as of a date would invoice, computed by the billing engine and written nowhere';
