-- Citus: booking of credit notes, void invoices, customer credit and automatic payment
-- methods account by account (book_account_citus), the KPI rows kept by triggers on one
-- account's shard, the delivery schedule's Citus body, fee invoices of a dunning batch
-- numbered from one block, and distribute()'s commands to the workers raising on a refusal
-- (docs/citus.md); new in 0.3.

CREATE FUNCTION subbilling_internal.run_on_workers(command text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    failed  text;
BEGIN
    EXECUTE $q$SELECT string_agg(w.nodename || ':' || w.nodeport || ': ' || w.result, '; ' ORDER BY w.nodename, w.nodeport)
                 FROM pg_catalog.run_command_on_workers($1) w WHERE NOT w.success$q$
       INTO failed USING 'SET citus.enable_ddl_propagation = off; ' || command;
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'a worker node refused a command of distribute()'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Command: %s; refused by %s', command, failed);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.run_on_workers(text) IS 'internal (Citus): run a command on every worker node with DDL propagation off; raises 55000 if any worker refuses it';
REVOKE ALL ON FUNCTION subbilling_internal.run_on_workers(text) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.citus_delivery_schedule(from_date date, to_date date, only_subscription bigint)
    RETURNS TABLE (account_id bigint, subscription_id bigint, delivery_date date, plan_code text,
                   items jsonb, quantity bigint, address jsonb, status text, delivery_id bigint,
                   bills_per_delivery boolean, period daterange)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acc     bigint;
BEGIN
    IF only_subscription IS NOT NULL THEN
        -- the subscription's account: a read of every shard, over one connection per node (so
        -- that the reference tables may still be written in the transaction)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    FOR acc IN
        SELECT DISTINCT s.account_id
          FROM subbilling.subscriptions s
          JOIN subbilling.subscription_items i
            ON i.account_id = s.account_id AND i.subscription_id = s.id AND i.kind = 'base' AND i.voided_at IS NULL
          JOIN subbilling.plans p ON p.id = i.plan_id
         WHERE (only_subscription IS NULL OR s.id = only_subscription) AND p.delivery_period IS NOT NULL
         ORDER BY 1
    LOOP
        RETURN QUERY
        WITH bi AS (
            SELECT s.account_id, s.id AS subscription_id, s.billing_anchor AS anchor, p.code AS plan_code,
                   p.delivery_period AS dp,
                   p.delivery_period = p.billing_period AND p.pricing_model <> 'usage' AS per_delivery,
                   greatest(lower(i.validity), s.start_date, from_date) AS lo,
                   least(upper(i.validity), s.cancel_at, to_date + 1) AS hi
              FROM subbilling.subscriptions s
              JOIN subbilling.subscription_items i
                ON i.account_id = s.account_id AND i.subscription_id = s.id AND i.kind = 'base' AND i.voided_at IS NULL
              JOIN subbilling.plans p ON p.id = i.plan_id
             WHERE s.account_id = acc AND i.account_id = acc AND p.delivery_period IS NOT NULL
               AND (only_subscription IS NULL OR s.id = only_subscription)
               AND i.validity && daterange(from_date, to_date, '[]')
               AND (s.cancel_at IS NULL OR s.cancel_at > from_date)
        ),
        dd AS (
            SELECT bi.account_id, bi.subscription_id, bi.plan_code, bi.per_delivery, per.d, per.d_next
              FROM bi
              CROSS JOIN LATERAL generate_series(period_index(bi.anchor, bi.dp, bi.lo),
                                                 period_index(bi.anchor, bi.dp, bi.hi - 1)) AS k(n)
              CROSS JOIN LATERAL (SELECT period_start(bi.anchor, bi.dp, k.n) AS d,
                                         period_start(bi.anchor, bi.dp, k.n + 1) AS d_next) per
             WHERE bi.hi > bi.lo AND per.d >= bi.lo AND per.d < bi.hi
               AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_pauses z
                                WHERE z.account_id = acc AND z.subscription_id = bi.subscription_id
                                  AND z.during @> per.d)
               AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_suspensions u
                                WHERE u.account_id = acc AND u.subscription_id = bi.subscription_id
                                  AND u.suspended_from <= per.d AND (u.lifted_on IS NULL OR u.lifted_on > per.d))
        )
        SELECT dd.account_id, dd.subscription_id, dd.d, dd.plan_code,
               coalesce(r.items, li.items),
               (SELECT sum((e.value ->> 'quantity')::bigint)::bigint
                  FROM jsonb_array_elements(coalesce(r.items, li.items)) AS e),
               CASE WHEN r.fixed_at IS NOT NULL THEN r.address ELSE la.address END,
               coalesce(r.status, 'planned'),
               r.id,
               dd.per_delivery,
               daterange(dd.d, dd.d_next)
          FROM dd
          LEFT JOIN subbilling.delivery_records r
            ON r.account_id = acc AND r.subscription_id = dd.subscription_id AND r.delivery_date = dd.d
          LEFT JOIN LATERAL (
              SELECT jsonb_agg(jsonb_build_object('sku', x.sku, 'description', x.description, 'quantity', x.quantity)
                               ORDER BY x.sku) AS items
                FROM (SELECT di.sku, max(di.description) AS description, sum(di.quantity::bigint * i.quantity)::bigint AS quantity
                        FROM subbilling.subscription_items i
                        JOIN subbilling.plan_delivery_items di ON di.plan_id = i.plan_id
                       WHERE i.account_id = acc AND i.subscription_id = dd.subscription_id
                         AND i.voided_at IS NULL AND i.validity @> dd.d
                       GROUP BY di.sku) x) li ON r.fixed_at IS NULL
          LEFT JOIN LATERAL (
              SELECT jsonb_build_object('name', a.name, 'line1', a.line1, 'line2', a.line2, 'postal_code', a.postal_code,
                                        'city', a.city, 'country', a.country) AS address
                FROM subbilling.shipping_addresses a
               WHERE a.account_id = acc AND a.valid_from <= dd.d
               ORDER BY a.valid_from DESC
               LIMIT 1) la ON r.fixed_at IS NULL
         WHERE coalesce(r.items, li.items) IS NOT NULL;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_delivery_schedule(date, date, bigint) IS
    'internal: on Citus, distribute() makes this the body of delivery_schedule (plpgsql, account by account, one shard per query)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_delivery_schedule(date, date, bigint) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.number_block_flush() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    sid     bigint;
BEGIN
    FOR sid IN SELECT x::bigint FROM unnest(string_to_array(nullif(current_setting('subbilling_internal.number_block_series', true), ''), ',')) x
                ORDER BY 1 LOOP
        UPDATE subbilling.invoice_counters ct
           SET next_number = current_setting('subbilling_internal.number_next_' || sid)::bigint
         WHERE ct.series_id = sid;
        PERFORM set_config('subbilling_internal.number_next_' || sid, '', true);
    END LOOP;
    PERFORM set_config('subbilling_internal.number_block_series', '', true);
    PERFORM set_config('subbilling_internal.number_block', 'off', true);
END
$$;
COMMENT ON FUNCTION subbilling_internal.number_block_flush() IS 'internal (Citus): close a block of invoice numbers (subbilling_internal.number_block): each series'' counter moved once to after the last number taken';
REVOKE ALL ON FUNCTION subbilling_internal.number_block_flush() FROM PUBLIC;


-- ============================================================================
-- Booking on Citus: what book_invoices does on one server, for one account,
-- every statement on that account's rows (its shard).  docs/citus.md
--
-- On one server book_invoices runs its six steps set-based over a batch of
-- accounts (sql/parts/610_book_invoices.sql).  On Citus a statement that
-- joins the batch's arrays with the customer tables has no account to route
-- by, so book_invoices books account by account there: the issued invoices of
-- an account with nothing more to do go to book_new_invoices_citus (billing's
-- fast path, sql/parts/985_citus_billing.sql); an account with a void invoice
-- or a credit note among them, customer credit or an automatic payment
-- method goes through book_account_citus, the six steps one document at a
-- time.  Nothing here runs on a single server.
-- ============================================================================

-- One journal entry with its lines, on the account's shard: the lines in one
-- statement (the balance is checked per statement), as a multi-row VALUES,
-- which Citus routes to the account's shard.
CREATE FUNCTION subbilling_internal.post_entry_citus(acct bigint, eid bigint, kind text, booked_on date,
                                                     invoice_id bigint, memo text, codes text[],
                                                     amounts subbilling.price[], subledgers text[], line_invoices bigint[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, memo)
    VALUES (acct, eid, post_entry_citus.kind, post_entry_citus.booked_on, post_entry_citus.invoice_id, post_entry_citus.memo);
    EXECUTE 'INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id) VALUES '
            || (SELECT string_agg(format('(%s, %s, %L, %L::subbilling.price, %L, %s)', acct, eid, u.code, u.amount,
                                         u.subledger, coalesce(u.invoice_id::text, 'NULL')), ', ' ORDER BY u.ord)
                  FROM unnest(codes, amounts, subledgers, line_invoices) WITH ORDINALITY AS u(code, amount, subledger, invoice_id, ord));
END
$$;
COMMENT ON FUNCTION subbilling_internal.post_entry_citus(bigint, bigint, text, date, bigint, text, text[], subbilling.price[], text[], bigint[]) IS 'internal (Citus): write one journal entry and its lines (in order, one statement) on the account''s shard';
REVOKE ALL ON FUNCTION subbilling_internal.post_entry_citus(bigint, bigint, text, date, bigint, text, text[], subbilling.price[], text[], bigint[]) FROM PUBLIC;

-- book_invoices for one account's documents on Citus: the six steps of
-- sql/parts/610_book_invoices.sql with the same entries, events and results,
-- one document per statement.  Returns the entries booked and reversed.
CREATE FUNCTION subbilling_internal.book_account_citus(acct bigint, invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    o       subbilling.invoices;
    pm      subbilling.payment_methods;
    rq      subbilling.payment_requests;
    a_tz    text;
    booked  integer := 0;
    eid     bigint;
    bk      bigint;
    zero    subbilling.price;
    open_   subbilling.price;
    amt     subbilling.price;
    onto    subbilling.price;
    credit  subbilling.price;
    on_day  date;
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
    t_inv   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    paid    bigint[] := '{}';
    k       bigint;
BEGIN
    -- nothing but issued invoices to book: billing's own booking
    IF NOT EXISTS (SELECT FROM subbilling.invoices i
                    WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND (i.status = 'void' OR i.kind = 'credit_note'))
       AND NOT EXISTS (SELECT FROM subbilling.payment_methods x
                        WHERE x.account_id = acct AND x.is_default AND x.active AND x.automatic)
       AND coalesce(minor_units(customer_credit(acct)), 0) <= 0 THEN
        RETURN subbilling_internal.book_new_invoices_citus(acct, invoice_ids);
    END IF;
    PERFORM subbilling_internal.outbox_reserve();
    SELECT a.time_zone INTO a_tz FROM subbilling.accounts a WHERE a.id = acct;

    -- a booked credit note is final (as book_void_invoices)
    SELECT * INTO inv FROM subbilling.invoices c
     WHERE c.account_id = acct AND c.id = ANY (invoice_ids) AND c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = acct AND e.invoice_id = c.id AND e.kind = 'credit_note')
     ORDER BY c.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', inv.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;

    -- 1. issued documents not yet booked: one entry each
    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.status IN ('open', 'paid', 'uncollectible')
                ORDER BY i.id LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM subbilling.journal_entries e
                               WHERE e.account_id = acct AND e.invoice_id = inv.id AND e.kind IN ('invoice', 'credit_note'));
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
                SELECT r.code, -sum(r.net), NULL, NULL, 1
                  FROM (SELECT CASE WHEN NOT g.is_fee AND g.tax_treatment IN ('reverse_charge', 'oss', 'outside_scope')
                                    THEN ledger_code('revenue_rate', inv.currency, g.tax_treatment)
                                    ELSE subbilling_internal.revenue_code(inv.currency, g.product, g.tax_rate, g.is_fee) END AS code,
                               g.net
                          FROM (SELECT c.kind = 'fee' AS is_fee, c.tax_rate, c.tax_treatment, p.code AS product, sum(c.net) AS net
                                  FROM unnest(l_kind, l_plan, l_rate, l_treat, l_net) AS c(kind, plan_id, tax_rate, tax_treatment, net)
                                  LEFT JOIN subbilling.plans pl ON pl.id = c.plan_id
                                  LEFT JOIN subbilling.products p ON p.id = pl.product_id
                                 GROUP BY 1, 2, 3, 4) g) r
                 GROUP BY r.code
                UNION ALL
                SELECT v.code, -sum(v.tax), NULL, NULL, 2
                  FROM (SELECT ledger_code('vat', inv.currency, CASE WHEN c.tax_treatment = 'oss' THEN 'oss'
                                                                     ELSE subbilling_internal.rate_detail(c.tax_rate) END) AS code,
                               c.tax
                          FROM unnest(l_rate, l_treat, l_tax) AS c(tax_rate, tax_treatment, tax)
                         WHERE minor_units(c.tax) <> 0) v
                 GROUP BY v.code) q
         WHERE minor_units(q.amount) <> 0;
        IF cardinality(codes) >= 2 THEN
            booked := booked + 1;
            PERFORM subbilling_internal.post_entry_citus(acct, nextval('subbilling.journal_entries_id_seq'::regclass),
                        inv.kind, inv.issue_date, inv.id, replace(inv.kind, '_', ' ') || ' ' || inv.number,
                        codes, amounts, subs, oitems);
        END IF;
        IF inv.kind = 'invoice' AND minor_units(inv.total) = 0 THEN
            t_inv := t_inv || inv.id;
        END IF;
    END LOOP;

    -- 2. void invoices: their booking reversed once; what was paid on them becomes customer credit
    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.status = 'void'
                ORDER BY i.id LOOP
        SELECT e.id INTO bk FROM subbilling.journal_entries e
         WHERE e.account_id = acct AND e.invoice_id = inv.id AND e.kind = 'invoice' ORDER BY e.id LIMIT 1;
        CONTINUE WHEN bk IS NULL OR EXISTS (SELECT 1 FROM subbilling.journal_entries r
                                             WHERE r.account_id = acct AND r.invoice_id = inv.id AND r.kind = 'void');
        open_ := invoice_open_amount(acct, inv.id);
        SELECT array_agg(q.code ORDER BY q.ord, q.lid), array_agg(q.amount ORDER BY q.ord, q.lid),
               array_agg(q.subledger ORDER BY q.ord, q.lid), array_agg(q.invoice_id ORDER BY q.ord, q.lid)
          INTO codes, amounts, subs, oitems
          FROM (SELECT ledger_code('receivables', inv.currency) AS code, -open_ AS amount, 'receivables'::text AS subledger,
                       inv.id AS invoice_id, 0 AS ord, 0::bigint AS lid
                 WHERE minor_units(open_) <> 0
                UNION ALL
                SELECT x.code, x.amount, x.subledger, NULL, 1, x.lid
                  FROM unnest(ARRAY(SELECT l.ledger_code FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id),
                              ARRAY(SELECT -l.amount FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id),
                              ARRAY(SELECT l.subledger FROM subbilling.journal_lines l
                                     WHERE l.account_id = acct AND l.entry_id = bk AND l.subledger IS DISTINCT FROM 'receivables' ORDER BY l.id))
                       WITH ORDINALITY AS x(code, amount, subledger, lid)
                UNION ALL
                SELECT ledger_code('customer_credit', inv.currency), open_ - inv.total, 'customer_credit', NULL, 2, 0
                 WHERE open_ <> inv.total) q;
        booked := booked + 1;
        PERFORM subbilling_internal.post_entry_citus(acct, nextval('subbilling.journal_entries_id_seq'::regclass),
                    'void', coalesce((inv.voided_at AT TIME ZONE a_tz)::date, inv.issue_date), inv.id,
                    'void invoice ' || inv.number, codes, amounts, subs, oitems);
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
         WHERE r.account_id = acct AND r.invoice_id = inv.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
    END LOOP;

    -- 3. credit notes: onto the invoice they credit (up to its open amount), the rest to customer credit
    FOR inv IN SELECT * FROM subbilling.invoices c
                WHERE c.account_id = acct AND c.id = ANY (invoice_ids) AND c.kind = 'credit_note' AND c.status <> 'void'
                ORDER BY c.id LOOP
        o := NULL;
        IF inv.credits_invoice_id IS NOT NULL THEN
            SELECT * INTO o FROM subbilling.invoices x
             WHERE x.account_id = acct AND x.id = inv.credits_invoice_id FOR UPDATE;
        END IF;
        amt := -invoice_open_amount(acct, inv.id);
        CONTINUE WHEN minor_units(amt) <= 0;
        zero := price_minor(0, inv.currency);
        IF o.kind = 'invoice' AND o.status IN ('open', 'uncollectible') THEN
            onto := least(amt, greatest(invoice_open_amount(acct, o.id), zero));
        ELSE
            onto := zero;
        END IF;
        codes := ARRAY[ledger_code('receivables', inv.currency)];
        amounts := ARRAY[amt];
        subs := ARRAY['receivables'];
        oitems := ARRAY[inv.id];
        IF minor_units(onto) <> 0 THEN
            codes := codes || ledger_code('receivables', inv.currency);
            amounts := amounts || -onto;
            subs := subs || 'receivables'::text;
            oitems := oitems || o.id;
            t_inv := t_inv || o.id;
        END IF;
        IF onto <> amt THEN
            codes := codes || ledger_code('customer_credit', inv.currency);
            amounts := amounts || (onto - amt);
            subs := subs || 'customer_credit'::text;
            oitems := oitems || NULL::bigint;
        END IF;
        PERFORM subbilling_internal.post_entry_citus(acct, nextval('subbilling.journal_entries_id_seq'::regclass),
                    'allocation', inv.issue_date, inv.id,
                    'credit note ' || inv.number || coalesce(' on invoice ' || o.number, ''), codes, amounts, subs, oitems);
    END LOOP;

    -- 4. customer credit onto open invoices, oldest due first (left for next time when
    --    another transaction is using the account's credit)
    credit := customer_credit(acct);
    IF coalesce(minor_units(credit), 0) > 0 AND subbilling_internal.lock_account_credit(acct, false) THEN
        credit := customer_credit(acct);
        SELECT max(i.issue_date) INTO on_day FROM subbilling.invoices i WHERE i.account_id = acct AND i.id = ANY (invoice_ids);
        on_day := coalesce(on_day, subbilling_internal.account_today(acct));
        FOR o IN SELECT * FROM subbilling.invoices i
                  WHERE i.account_id = acct AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
                  ORDER BY i.due_date, i.id LOOP
            EXIT WHEN minor_units(credit) <= 0;
            open_ := invoice_open_amount(acct, o.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            PERFORM FROM subbilling.invoices x WHERE x.account_id = acct AND x.id = o.id FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            open_ := invoice_open_amount(acct, o.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            amt := least(open_, credit);
            PERFORM subbilling_internal.post_entry_citus(acct, nextval('subbilling.journal_entries_id_seq'::regclass),
                        'credit_applied', on_day, o.id, 'customer credit on invoice ' || o.number,
                        ARRAY[ledger_code('customer_credit', o.currency), ledger_code('receivables', o.currency)],
                        ARRAY[amt, -amt], ARRAY['customer_credit', 'receivables'], ARRAY[NULL, o.id]::bigint[]);
            PERFORM subbilling_internal.emit_event(acct, 'credit.applied', o.subscription_id,
                jsonb_build_object('invoice_id', o.id, 'number', o.number, 'currency', o.currency,
                                   'amount', amt::text, 'open_amount', (open_ - amt)::text,
                                   'credit_left', (credit - amt)::text), o.id);
            credit := credit - amt;
            IF amt = open_ THEN
                t_inv := t_inv || o.id;
            END IF;
        END LOOP;
    END IF;

    -- 5. invoices whose open amount reached zero are paid
    FOREACH k IN ARRAY ARRAY(SELECT DISTINCT u FROM unnest(t_inv) u ORDER BY 1) LOOP
        CONTINUE WHEN minor_units(invoice_open_amount(acct, k)) <> 0;
        UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
         WHERE x.account_id = acct AND x.id = k AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
        RETURNING x.* INTO o;
        CONTINUE WHEN NOT FOUND;
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
         WHERE r.account_id = acct AND r.invoice_id = k
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
        PERFORM subbilling_internal.emit_event(acct, 'invoice.paid', o.subscription_id,
            jsonb_build_object('invoice_id', o.id, 'number', o.number, 'currency', o.currency,
                               'total', o.total::text, 'paid_at', o.paid_at,
                               'via', CASE WHEN minor_units(o.total) = 0 THEN 'zero total' ELSE 'credit' END,
                               'payment_id', NULL), o.id);
        paid := paid || k;
    END LOOP;
    FOREACH k IN ARRAY paid LOOP
        PERFORM subbilling_internal.after_invoice_paid(acct, k);
    END LOOP;

    -- 6. payment requests for the new open invoices when the account pays automatically
    SELECT * INTO pm FROM subbilling.payment_methods x
     WHERE x.account_id = acct AND x.is_default AND x.active AND x.automatic ORDER BY x.id LIMIT 1;
    IF FOUND THEN
        FOR inv IN SELECT * FROM subbilling.invoices i
                    WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND i.kind = 'invoice' AND i.status = 'open'
                      AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                                       WHERE x.account_id = acct AND x.invoice_id = i.id)
                    ORDER BY i.id LOOP
            open_ := invoice_open_amount(acct, inv.id);
            CONTINUE WHEN minor_units(open_) <= 0;
            INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
            VALUES (acct, inv.id, pm.id, open_, inv.issue_date)
            RETURNING r.* INTO rq;
            PERFORM subbilling_internal.emit_event(acct, 'payment.requested', inv.subscription_id,
                jsonb_build_object('payment_request_id', rq.id, 'invoice_id', rq.invoice_id, 'number', inv.number,
                                   'reference', inv.reference, 'due_date', inv.due_date, 'currency', inv.currency,
                                   'amount', rq.amount::text, 'amount_minor', minor_units(rq.amount),
                                   'payment_method_id', rq.payment_method_id, 'method', pm.kind,
                                   'attempt', rq.attempt, 'requested_on', rq.requested_on), inv.id);
        END LOOP;
    END IF;
    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_account_citus(bigint, bigint[]) IS 'internal (Citus): book_invoices for one account''s documents, one document per statement on the account''s shard: issued documents, void invoices (reversed, payment requests canceled), credit notes (applied, the rest customer credit), customer credit onto open invoices, settled invoices paid, payment requests for automatic payment methods; returns the entries booked or reversed';
REVOKE ALL ON FUNCTION subbilling_internal.book_account_citus(bigint, bigint[]) FROM PUBLIC;


-- ============================================================================
-- KPIs kept by triggers, on Citus: the aging rows.  docs/citus.md
--
-- These triggers run on a shard, on a worker.  A query there that Citus does
-- not prune to the account's shard (a join through a view filtered with
-- = ANY, a join with the changed rows' arrays) runs on every shard from the
-- worker: a connection from the worker to the other worker inside the
-- coordinator's transaction, which we saw crash a worker at commit.  The
-- Citus branches of the triggers call these instead: every statement on one
-- account's rows, so on the worker's own shard alone.
--
-- The aging rows: kpi_aging_refresh for one account, its open items read
-- with account_id = the account (the view kpi_aging_source, written out).
--
-- (The usage triggers on Citus: kpi_usage_periods_enter in
-- sql/parts/900_kpis.sql enters a first-used subscription one at a time;
-- the queue rows go to the usage's own shard.)
-- ============================================================================

CREATE FUNCTION subbilling_internal.kpi_aging_refresh_citus(acct bigint) RETURNS void
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO subbilling_internal.kpi_aging (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT DISTINCT o.account_id, o.currency, ''::text, '{}'::date[], '{0}'::bigint[], 0::bigint
      FROM subbilling_internal.kpi_open_items o
     WHERE o.account_id = acct
    ON CONFLICT DO NOTHING;
    PERFORM FROM subbilling_internal.kpi_aging g WHERE g.account_id = acct ORDER BY g.currency FOR UPDATE;
    WITH s AS (
        SELECT d.account_id, d.currency, a.time_zone,
               coalesce(array_agg(d.due_date ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS due_dates,
               '{0}'::bigint[] || coalesce(array_agg(d.cum::bigint ORDER BY d.due_date) FILTER (WHERE d.due_date IS NOT NULL), '{}') AS cum_minor,
               coalesce(sum(d.open_minor) FILTER (WHERE d.due_date IS NULL), 0)::bigint AS undated_minor
          FROM (SELECT o.account_id, o.currency, o.due_date, sum(o.open_minor) AS open_minor,
                       sum(sum(o.open_minor)) OVER (PARTITION BY o.account_id, o.currency ORDER BY o.due_date) AS cum
                  FROM subbilling_internal.kpi_open_items o
                 WHERE o.account_id = acct
                 GROUP BY o.account_id, o.currency, o.due_date) d
          JOIN subbilling.accounts a ON a.id = d.account_id
         WHERE a.id = acct
         GROUP BY d.account_id, d.currency, a.time_zone
    ),
    gone AS (DELETE FROM subbilling_internal.kpi_aging g
              WHERE g.account_id = acct
                AND NOT EXISTS (SELECT FROM s WHERE s.currency = g.currency))
    INSERT INTO subbilling_internal.kpi_aging AS g (account_id, currency, time_zone, due_dates, cum_minor, undated_minor)
    SELECT s.account_id, s.currency, s.time_zone, s.due_dates, s.cum_minor, s.undated_minor FROM s
    ON CONFLICT (account_id, currency) DO UPDATE
       SET time_zone = excluded.time_zone, due_dates = excluded.due_dates, cum_minor = excluded.cum_minor,
           undated_minor = excluded.undated_minor;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_aging_refresh_citus(bigint) IS 'internal (Citus): kpi_aging_refresh of one account, every statement on its shard';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_aging_refresh_citus(bigint) FROM PUBLIC;

