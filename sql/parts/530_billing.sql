
-- ============================================================================
-- Billing runs: claim due subscriptions, invoice the due
-- differences of billing_charges() set-based, number the batch under one
-- lock of each series row, announce the invoices.
--
--   run_billing(as_of)                 loops bill_batch in the caller's transaction
--   bill_batch(batch_size, as_of)      claims up to batch_size due subscriptions
--                                      (FOR UPDATE SKIP LOCKED) and bills them;
--                                      on error, one by one, recording failures
--   bill_subscriptions(...)            one set-based statement for claimed rows
-- ============================================================================

-- Bills claimed subscriptions (locked by the caller) as of their
-- account-local dates: one statement computes the charges once, writes the
-- invoices (numbered, with due date and payment reference), their lines,
-- the events invoice.created and invoice.finalized, and each subscription's
-- bookkeeping.  Returns the number of invoices.
CREATE FUNCTION subbilling_internal.bill_subscriptions(account_ids bigint[], subscription_ids bigint[],
                                              as_of_dates date[], as_of timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n       integer;
    notify  boolean := subbilling_internal.notify_enabled();
    booked_acc  bigint[];
    booked_inv  bigint[];
BEGIN
    -- series rows of the issue years (created on first use, outside the lock)
    PERFORM subbilling_internal.series_for(y) FROM (SELECT DISTINCT d FROM unnest(as_of_dates) d) q(y);
    PERFORM subbilling_internal.outbox_reserve();

    WITH ch AS MATERIALIZED (
        SELECT * FROM subbilling_internal.billing_charges(account_ids, subscription_ids, as_of_dates)
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
               sum(c.net) AS net, sum(c.tax) AS tax, count(*) AS nlines,
               array_agg(DISTINCT c.tax_treatment) AS treatments
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
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at,
                tax_notes, buyer_vat_number, seller_currency, exchange_rate, tax_seller_currency)
        SELECT hs.account_id, hs.invoice_id, hs.subscription_id,
               CASE WHEN hs.net + hs.tax < price_minor(0, hs.currency) THEN 'credit_note' ELSE 'invoice' END,
               'open', hs.series_id, num.first + hs.rn - 1,
               subbilling_internal.format_invoice_number(num.prefix, num.digits, num.first + hs.rn - 1), hs.currency,
               hs.net, hs.tax, hs.net + hs.tax, hs.issue_date, hs.issue_date + a.payment_terms_days,
               reference_of(coalesce(cs.reference_kind, 'luhn'), hs.invoice_id), bill_subscriptions.as_of, now(),
               subbilling_internal.tax_notes_for(hs.treatments), a.vat_number, ss.currency, fx.rate,
               CASE WHEN ss.currency IS NOT NULL THEN subbilling_internal.convert_price(hs.tax, coalesce(fx.rate, 1), ss.currency) END
          FROM hs
          JOIN num ON num.id = hs.series_id
          JOIN subbilling.accounts a ON a.id = hs.account_id
          LEFT JOIN subbilling.country_settings cs ON cs.country = a.country
          -- invoices in a foreign currency state their VAT in the seller's at the issue date's rate
          LEFT JOIN subbilling.seller_settings ss ON true
          CROSS JOIN LATERAL (SELECT CASE WHEN ss.currency <> hs.currency
                                          THEN subbilling_internal.exchange_rate_for(hs.currency, hs.issue_date) END AS rate) fx
        RETURNING i.*
    ),
    lines AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax, tax_treatment)
        SELECT c.account_id, hs.invoice_id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax, c.tax_treatment
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
    -- NOTIFY each event's identifiers (outbox_notify, as emit_event does)
    nt AS (
        SELECT count(subbilling_internal.outbox_notify(ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id)) AS n
          FROM ev WHERE notify
    )
    SELECT count(*), array_agg(ins.account_id), array_agg(ins.id) INTO n, booked_acc, booked_inv
      FROM ins WHERE (SELECT nt.n FROM nt) >= 0;
    -- the receivables ledger: book the invoices, apply customer credit, request automatic payments
    IF n > 0 THEN
        PERFORM subbilling_internal.book_invoices(booked_acc, booked_inv);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_subscriptions(bigint[], bigint[], date[], timestamptz) IS 'internal: bill claimed subscriptions as of their account-local dates in one statement; returns the number of invoices';

-- Open billing errors of subscriptions that have now been billed are
-- resolved.  (A cheap test first: there are rarely any open errors.)
CREATE FUNCTION subbilling_internal.resolve_billing_errors(account_ids bigint[], subscription_ids bigint[]) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(account_ids, subscription_ids) AS x(account_id, subscription_id)
         WHERE e.account_id = x.account_id AND e.subscription_id = x.subscription_id
           AND e.resolved_at IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.resolve_billing_errors(bigint[], bigint[]) IS 'internal: mark the open billing errors of subscriptions that were just billed resolved';

-- Claims up to batch_size due subscriptions and bills them; a failure in
-- the set-based pass falls back to one subscription at a time, recording
-- each failure in billing_errors and retrying that subscription the next
-- day (or as soon as it changes).
CREATE FUNCTION subbilling_internal.bill_batch(batch_size integer, as_of timestamptz,
                                      OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    nbo     date[];
    n       integer;
    cursor_ text;
    after_d date := '-infinity';
    after_a bigint := 0;
    after_i bigint := 0;
    st      text;
    msg     text;
    det     text;
    on_citus boolean := subbilling_internal.on_citus();
BEGIN
    IF bill_batch.batch_size IS NULL OR bill_batch.batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of subscriptions'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(bill_batch.batch_size::text, 'NULL'));
    END IF;
    IF bill_batch.as_of IS NULL OR NOT isfinite(bill_batch.as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('as_of', bill_batch.as_of::date);
    invoices := 0;
    errors := 0;
    IF on_citus THEN
        -- Citus: account by account, each on its own shard (sql/parts/985_citus_billing.sql)
        SELECT * INTO invoices, errors, more FROM subbilling_internal.bill_batch_citus(bill_batch.batch_size, bill_batch.as_of);
        RETURN;
    END IF;
    -- In one session, each batch for the same as_of goes on where the last
    -- one ended (keyset on the claim index): the rows already billed keep
    -- index entries under their old dates (until the transaction ends, or
    -- until vacuum), and a scan from the start would pass them again for
    -- every batch.  When the rows after the cursor do not fill a batch, the
    -- batch is filled from the start of the index up to the cursor (rows
    -- that changed meanwhile, or that another session held), and the cursor
    -- moves to the last row claimed.  It is a session setting: a rolled-back
    -- transaction takes its moves back.
    cursor_ := current_setting('subbilling_internal.billing_cursor', true);
    IF split_part(cursor_, '|', 1) = bill_batch.as_of::text THEN
        after_d := split_part(cursor_, '|', 2)::date;
        after_a := split_part(cursor_, '|', 3)::bigint;
        after_i := split_part(cursor_, '|', 4)::bigint;
    END IF;
    -- A full batch that yields neither invoice nor error (subscriptions that
    -- only had their bookkeeping moved on) takes the next one at once, so
    -- that a caller judging progress by invoices + errors never sees a full
    -- batch without progress.
    LOOP
        -- due: next_bill_on on or before the account-local date of as_of
        -- (no zone is more than a day ahead of UTC, which bounds the index scan)
        SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id)
          INTO acc, sid, ad, nbo
          FROM (SELECT s.account_id, s.id, s.next_bill_on,
                       (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                  FROM subbilling.subscriptions s
                  JOIN subbilling.accounts a ON a.id = s.account_id
                 WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                   AND (s.next_bill_on, s.account_id, s.id) > (after_d, after_a, after_i)
                   AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                 ORDER BY s.next_bill_on, s.account_id, s.id
                 LIMIT bill_batch.batch_size
                   FOR UPDATE OF s SKIP LOCKED) c;
        n := coalesce(cardinality(sid), 0);
        IF n < bill_batch.batch_size AND (after_d, after_a, after_i) > ('-infinity'::date, 0::bigint, 0::bigint) THEN
            SELECT acc || coalesce(array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   sid || coalesce(array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   ad || coalesce(array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   nbo || coalesce(array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id), '{}')
              INTO acc, sid, ad, nbo
              FROM (SELECT s.account_id, s.id, s.next_bill_on,
                           (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                      FROM subbilling.subscriptions s
                      JOIN subbilling.accounts a ON a.id = s.account_id
                     WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                       AND (s.next_bill_on, s.account_id, s.id) <= (after_d, after_a, after_i)
                       AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                     ORDER BY s.next_bill_on, s.account_id, s.id
                     LIMIT bill_batch.batch_size - n
                       FOR UPDATE OF s SKIP LOCKED) c;
            n := coalesce(cardinality(sid), 0);
        END IF;
        more := n = bill_batch.batch_size;
        EXIT WHEN n = 0;
        after_d := nbo[n];
        after_a := acc[n];
        after_i := sid[n];
        PERFORM set_config('subbilling_internal.billing_cursor',
                           concat_ws('|', bill_batch.as_of, after_d, after_a, after_i), false);
        BEGIN
            invoices := invoices + subbilling_internal.bill_subscriptions(acc, sid, ad, bill_batch.as_of);
            PERFORM subbilling_internal.resolve_billing_errors(acc, sid);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR k IN 1 .. n LOOP
                BEGIN
                    invoices := invoices + subbilling_internal.bill_subscriptions(ARRAY[acc[k]], ARRAY[sid[k]], ARRAY[ad[k]], bill_batch.as_of);
                    PERFORM subbilling_internal.resolve_billing_errors(ARRAY[acc[k]], ARRAY[sid[k]]);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (acc[k], sid[k], current_run_id(), bill_batch.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = ad[k] + 1
                     WHERE x.account_id = acc[k] AND x.id = sid[k];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
        EXIT WHEN NOT more OR invoices + errors > 0;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_batch(integer, timestamptz) IS 'internal: claim up to batch_size due subscriptions (FOR UPDATE SKIP LOCKED) and bill them as of as_of; failures are recorded in billing_errors and retried the next day; more = a full batch was claimed';

-- run_billing_batch() until done: the worker's batch loop (src/worker.c).
CREATE FUNCTION subbilling.run_billing(as_of timestamptz DEFAULT now())
    RETURNS integer
    AS 'MODULE_PATHNAME', 'subbilling_run_billing'
    LANGUAGE C VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp;
COMMENT ON FUNCTION subbilling.run_billing(timestamptz) IS 'invoice everything due up to as_of (in batches of subbilling.batch_size, in the caller''s transaction); returns the number of invoices; failures of single subscriptions go to billing_errors';
