
-- ---------------------------------------------------------------------------
-- Dunning that never stalls: interest up to the last day with a known
-- reference rate; the Swedish rate of 2026H1; set_reference_rate; worker_status
-- warns when a country's rates end within 30 days.
-- ---------------------------------------------------------------------------
INSERT INTO subbilling.reference_rates (country, valid, rate, source, origin)
SELECT 'SE', '[2026-01-01,2026-07-01)', 2.00,
       'Riksbanken referensränta 2026H1 (policy rate 1.75 at 2025-12-31, rounded up to a half point)', 'shipped'
 WHERE NOT EXISTS (SELECT FROM subbilling.reference_rates r WHERE r.country = 'SE' AND r.valid && '[2026-01-01,2026-07-01)');

CREATE OR REPLACE FUNCTION subbilling.dunning_take_step(i subbilling.invoices, st subbilling.dunning_steps,
                                             open_amount subbilling.price, as_of date)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    a           subbilling.accounts;
    pol         subbilling.dunning_policies;
    zero        subbilling.price := price_minor(0, i.currency);
    fee_amt     subbilling.price;
    fee_note    text;
    fees_before integer;
    int_amt     subbilling.price;
    int_days    integer;
    int_rd      numeric;
    int_from    date;
    int_to      date;
    int_note    text;
    int_period  daterange;
    int_text    text;
    fid         bigint;
    fnum        text;
    fdue        date;
    label       text;
    sid         bigint;
    sst         text;
    stop_note   text;
    wo          subbilling.price;
    wo_ids      bigint[] := '{}';
    wo_fee      record;
    fo          subbilling.price;
    ev          bigint;
    payload     jsonb;
    aid         bigint;
BEGIN
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    SELECT * INTO pol FROM subbilling.dunning_policies x WHERE x.id = st.policy_id;
    label := coalesce(st.description, initcap(replace(st.action, '_', ' ')) || ' ' || st.step_no);

    -- fee and late-payment interest, on one fee invoice
    IF st.action <> 'write_off' THEN
        SELECT count(*) INTO fees_before FROM subbilling.dunning_actions x
         WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.fee IS NOT NULL;
        SELECT r.fee, r.note INTO fee_amt, fee_note
          FROM dunning_fee(st.fee_kind, st.fees, a.country, i.currency, as_of - i.due_date, fees_before) r;
        IF st.charge_interest
           AND (SELECT c.late_interest_margin FROM subbilling.country_settings c WHERE c.country = a.country) IS NOT NULL THEN
            SELECT coalesce(max(upper(x.interest_period)) - 1, i.due_date) INTO int_from
              FROM subbilling.dunning_actions x
             WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.interest_period IS NOT NULL;
            -- interest up to the last day with a known reference rate: a missing rate
            -- never holds the step back; the days after it are charged by a later step
            SELECT coalesce(min(g.d)::date - 1, as_of) INTO int_to
              FROM generate_series(int_from + 1, as_of, interval '1 day') AS g(d)
             WHERE as_of > int_from
               AND NOT EXISTS (SELECT FROM subbilling.reference_rates r
                                WHERE r.country = a.country AND r.valid @> g.d::date);
            IF int_to < as_of THEN
                int_note := format('no reference rate for %s from %s: interest from then on is charged by a later step',
                                   a.country, int_to + 1);
            END IF;
            IF int_to > int_from THEN
                SELECT r.interest, r.days, r.rate_days INTO int_amt, int_days, int_rd
                  FROM late_payment_interest(a.country, open_amount, int_from, int_to) r;
                IF int_amt > zero THEN
                    int_period := daterange(int_from + 1, int_to + 1);
                    int_text := format('Late-payment interest on %s, invoice %s, %s – %s (%s days at %s%% a year)',
                                       open_amount, i.number, int_from + 1, int_to, int_days,
                                       trim_scale(round(int_rd / int_days, 4)));
                ELSE
                    int_amt := NULL;
                    int_rd := NULL;
                END IF;
            END IF;
        END IF;
        IF fee_amt IS NOT NULL OR int_amt IS NOT NULL THEN
            fid := dunning_fee_invoice(i, st.step_no, label, as_of, pol.fee_terms_days,
                                       fee_amt, int_amt, int_period, int_text);
            SELECT x.number, x.due_date INTO fnum, fdue FROM subbilling.invoices x
             WHERE x.account_id = i.account_id AND x.id = fid;
        END IF;
    END IF;

    payload := jsonb_build_object(
        'invoice_id', i.id, 'number', i.number, 'reference', i.reference, 'due_date', i.due_date,
        'days_overdue', as_of - i.due_date, 'policy', pol.code, 'step_no', st.step_no, 'action', st.action,
        'description', st.description, 'currency', i.currency, 'open_amount', open_amount::text,
        'fee', fee_amt::text, 'fee_note', fee_note, 'interest', int_amt::text,
        'interest_from', lower(int_period), 'interest_to', upper(int_period) - 1, 'interest_note', int_note,
        'fee_invoice_id', fid, 'fee_invoice_number', fnum, 'fee_invoice_due_date', fdue);

    CASE st.action
    WHEN 'reminder' THEN
        ev := emit_event(i.account_id, 'dunning.reminder', i.subscription_id, payload, i.id);

    WHEN 'payment_stop' THEN
        IF i.subscription_id IS NULL THEN
            stop_note := 'the invoice has no subscription';
        ELSE
            SELECT x.status INTO sst FROM subbilling.subscriptions x
             WHERE x.account_id = i.account_id AND x.id = i.subscription_id FOR UPDATE;
            IF sst IN ('active', 'past_due') THEN
                PERFORM set_subscription_status(i.subscription_id, 'suspended',
                                                format('payment stop: invoice %s is overdue', i.number));
                sid := i.subscription_id;
            ELSIF sst = 'suspended' AND EXISTS (
                    SELECT 1 FROM subbilling.dunning_actions x
                     WHERE x.account_id = i.account_id AND x.subscription_id = i.subscription_id
                       AND x.action = 'payment_stop' AND x.lifted_at IS NULL) THEN
                sid := i.subscription_id;       -- held by another invoice's stop already: this one joins it
                stop_note := 'the subscription was already suspended by a payment stop';
            ELSIF sst = 'suspended' THEN
                stop_note := 'the subscription is already suspended, not by dunning: it is not lifted by dunning either';
            ELSE
                stop_note := format('the subscription is %s: nothing to suspend', sst);
            END IF;
        END IF;
        payload := payload || jsonb_build_object('subscription_id', i.subscription_id,
                                                 'suspended', sid IS NOT NULL, 'note', stop_note);
        ev := emit_event(i.account_id, 'dunning.payment_stop', i.subscription_id, payload, i.id);

    WHEN 'collection' THEN
        payload := payload || jsonb_build_object(
            'customer', jsonb_build_object('account_id', a.id, 'external_id', a.external_id, 'name', a.name,
                                           'email', a.email, 'country', a.country),
            'invoice_total', i.total::text, 'issue_date', i.issue_date,
            'open_fee_invoices', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                         'invoice_id', x.id, 'number', x.number, 'total', x.total::text)
                                         ORDER BY x.id), '[]')
                                    FROM subbilling.dunning_actions d
                                    JOIN subbilling.invoices x ON x.account_id = d.account_id AND x.id = d.fee_invoice_id
                                   WHERE d.account_id = i.account_id AND d.invoice_id = i.id AND x.status = 'open'));
        ev := emit_event(i.account_id, 'dunning.collection', i.subscription_id, payload, i.id);

    WHEN 'write_off' THEN
        -- the invoice, then its open fee invoices (one being paid at this
        -- very moment, row locked, is left to that payment)
        wo := open_amount;
        PERFORM book_entry(i.account_id, 'write_off', as_of,
                           ARRAY[ledger_code('write_off', i.currency), ledger_code('receivables', i.currency)],
                           ARRAY[open_amount, -open_amount], i.id, NULL,
                           format('write-off of invoice %s', i.number));
        UPDATE subbilling.invoices x SET status = 'uncollectible'
         WHERE x.account_id = i.account_id AND x.id = i.id;
        FOR wo_fee IN
            SELECT x.id, x.number FROM subbilling.invoices x
             WHERE x.account_id = i.account_id AND x.status = 'open'
               AND x.id IN (SELECT d.fee_invoice_id FROM subbilling.dunning_actions d
                             WHERE d.account_id = i.account_id AND d.invoice_id = i.id AND d.fee_invoice_id IS NOT NULL)
             ORDER BY x.id
               FOR UPDATE SKIP LOCKED
        LOOP
            fo := invoice_open_amount(i.account_id, wo_fee.id);
            CONTINUE WHEN fo IS NULL OR fo <= zero;
            PERFORM book_entry(i.account_id, 'write_off', as_of,
                               ARRAY[ledger_code('write_off', i.currency), ledger_code('receivables', i.currency)],
                               ARRAY[fo, -fo], wo_fee.id, NULL,
                               format('write-off of fee invoice %s (invoice %s)', wo_fee.number, i.number));
            UPDATE subbilling.invoices x SET status = 'uncollectible'
             WHERE x.account_id = i.account_id AND x.id = wo_fee.id;
            wo := wo + fo;
            wo_ids := wo_ids || wo_fee.id;
        END LOOP;
        payload := payload || jsonb_build_object('written_off', wo::text, 'fee_invoices_written_off', to_jsonb(wo_ids));
        ev := emit_event(i.account_id, 'dunning.write_off', i.subscription_id, payload, i.id);
    END CASE;

    INSERT INTO subbilling.dunning_actions AS d
           (account_id, invoice_id, step_no, policy_id, action, days_after_due, executed_on, open_amount,
            fee, fee_note, interest, interest_period, interest_rate_days, fee_invoice_id, subscription_id,
            written_off, event_id)
    VALUES (i.account_id, i.id, st.step_no, st.policy_id, st.action, st.days_after_due, as_of, open_amount,
            fee_amt, fee_note, int_amt, int_period, int_rd, fid, sid, wo, ev)
    RETURNING d.id INTO aid;
    RETURN aid;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_take_step(subbilling.invoices, subbilling.dunning_steps, subbilling.price, date) IS 'internal: take one dunning step on a locked open invoice: fee invoice (fee, interest), then reminder / payment stop / collection / write-off, the action row and its event; returns the action id';


-- ============================================================================
-- Reference rates of late-payment interest: set_reference_rate, and a warning
-- in worker_status when a country's rates end within 30 days.  A missing rate
-- never holds dunning back (dunning_take_step charges interest up to the last
-- day with a known rate; the rest with a later step).  docs/operations.md
-- ============================================================================

-- The rate of a country from valid_from: until the next rate already set,
-- at most to the end of valid_from's calendar half-year (both shipped
-- countries fix their rate per half-year).  A rate already set that covers
-- valid_from ends the day before.  Returns the validity set.
CREATE FUNCTION subbilling.set_reference_rate(country text, valid_from date, rate numeric)
    RETURNS daterange
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    half_end    date;
    next_from   date;
    v           daterange;
BEGIN
    IF country IS NULL OR valid_from IS NULL OR rate IS NULL THEN
        RAISE EXCEPTION 'set_reference_rate needs a country, a date and a rate'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT is_country_code(country) THEN
        RAISE EXCEPTION 'invalid country code "%"', country
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use an ISO 3166-1 alpha-2 code such as SE or NO.';
    END IF;
    IF NOT isfinite(valid_from) OR valid_from < '2000-01-01' OR valid_from > CURRENT_DATE + 366 THEN
        RAISE EXCEPTION 'a reference rate is valid from a date between 2000-01-01 and a year from today'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', valid_from);
    END IF;
    IF rate <= -100 OR rate >= 100 OR rate <> round(rate, 4) THEN
        RAISE EXCEPTION 'a reference rate is a percentage above -100 and below 100 with at most 4 decimals'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', rate);
    END IF;
    half_end := (date_trunc('year', valid_from) + CASE WHEN extract(month FROM valid_from) <= 6
                                                       THEN interval '6 months' ELSE interval '12 months' END)::date;
    SELECT min(lower(r.valid)) INTO next_from FROM subbilling.reference_rates r
     WHERE r.country = country AND lower(r.valid) > valid_from;
    v := daterange(valid_from, least(half_end, coalesce(next_from, half_end)));
    -- a rate set from the same day is replaced; one that covers the day ends before it
    DELETE FROM subbilling.reference_rates r WHERE r.country = country AND lower(r.valid) = valid_from;
    UPDATE subbilling.reference_rates r SET valid = daterange(lower(r.valid), valid_from)
     WHERE r.country = country AND r.valid @> valid_from;
    INSERT INTO subbilling.reference_rates (country, valid, rate, source)
    VALUES (country, v, rate, format('set_reference_rate by %s on %s', session_user, CURRENT_DATE));
    RETURN v;
END
$$;
COMMENT ON FUNCTION subbilling.set_reference_rate(text, date, numeric) IS
    'set the reference rate of late-payment interest of a country from a date: until the next rate set, at most to the end of that half-year; a covering rate ends the day before; returns the validity';
REVOKE ALL ON FUNCTION subbilling.set_reference_rate(text, date, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.set_reference_rate(text, date, numeric) TO subbilling_operator;

-- worker_status with the rate warnings (its last column)
CREATE OR REPLACE VIEW subbilling.worker_status AS
SELECT w.pid                  AS worker_pid,
       w.datname::text        AS worker_database,
       c.preloaded,
       c.enabled,
       c.naptime,
       c.batch_size,
       c.database,
       r.id                   AS last_run_id,
       r.origin               AS last_run_origin,
       r.started_at           AS last_run_started_at,
       r.finished_at          AS last_run_finished_at,
       r.status               AS last_run_status,
       r.batches              AS last_run_batches,
       r.invoices             AS last_run_invoices,
       r.errors               AS last_run_errors,
       r.dunning_steps        AS last_run_dunning_steps,
       r.transitions          AS last_run_transitions,
       r.sqlstate             AS last_run_sqlstate,
       r.message              AS last_run_message,
       (SELECT ok.finished_at FROM subbilling.worker_runs AS ok
         WHERE ok.status = 'ok' ORDER BY ok.id DESC LIMIT 1) AS last_ok_finished_at,
       (SELECT pg_catalog.count(*) FROM subbilling.billing_errors AS e
         WHERE e.resolved_at IS NULL) AS open_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'account_id', e.account_id, 'id', e.id, 'subscription_id', e.subscription_id,
                   'run_id', e.run_id, 'sqlstate', e.sqlstate, 'message', e.message,
                   'created_at', e.created_at)
                   ORDER BY e.created_at DESC, e.account_id, e.id), '[]'::jsonb)
          FROM (SELECT * FROM subbilling.billing_errors AS be
                 WHERE be.resolved_at IS NULL
                 ORDER BY be.created_at DESC, be.account_id, be.id LIMIT 5) AS e) AS recent_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'country', k.country, 'rates_end', k.rates_end,
                   'message', pg_catalog.format('the reference rates of %s end %s: add the next with set_reference_rate()',
                                                k.country, coalesce(k.rates_end::text, '(none)')))
                   ORDER BY k.country), '[]'::jsonb)
          FROM (SELECT cs.country, (SELECT pg_catalog.max(upper(rr.valid)) - 1 FROM subbilling.reference_rates AS rr
                                      WHERE rr.country = cs.country) AS rates_end
                  FROM subbilling.country_settings AS cs
                 WHERE cs.late_interest_margin IS NOT NULL) AS k
         WHERE k.rates_end IS NULL OR k.rates_end < CURRENT_DATE + 30) AS rate_warnings
  FROM subbilling.worker_config() AS c
  LEFT JOIN LATERAL (SELECT a.pid, a.datname FROM pg_catalog.pg_stat_activity AS a
                      WHERE a.backend_type = 'subbilling worker' LIMIT 1) AS w ON true
  LEFT JOIN LATERAL (SELECT * FROM subbilling.worker_runs AS lr ORDER BY lr.id DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW subbilling.worker_status IS
    'one row: the running worker, its settings, the last run with its counts, open billing errors (the latest five as jsonb), and rate_warnings: the countries charging late-payment interest whose reference rates end within 30 days';
