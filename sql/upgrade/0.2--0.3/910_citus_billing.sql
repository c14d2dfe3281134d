-- Billing, payments and dunning on Citus (docs/citus.md); new in 0.3.
-- The billing batch bills account by account on Citus (sql/parts/985_citus_billing.sql),
-- and the functions below changed so that Citus can run them by account: the engine
-- filters every table by account, SQL functions that Citus plans became PL/pgSQL, the
-- triggers on lines check one account at a time on a shard, and no CASE x WHEN.
-- (999_refresh re-creates them as sql/parts defines them.)

CREATE OR REPLACE FUNCTION subbilling.preview_invoice(subscription_id bigint, as_of date DEFAULT CURRENT_DATE)
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

CREATE OR REPLACE FUNCTION subbilling_internal.bill_batch(batch_size integer, as_of timestamptz,
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

CREATE OR REPLACE FUNCTION subbilling_internal.invoice_lines_check_totals() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
    one record;
    hit boolean := false;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one invoice at a time, each query on one account's rows
        FOR one IN SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n LOOP
            SELECT i.id, i.number, i.net, i.tax, t.net AS lines_net, t.tax AS lines_tax INTO bad
              FROM subbilling.invoices i,
                   (SELECT sum(l.net) AS net, sum(l.tax) AS tax FROM subbilling.invoice_lines l
                     WHERE l.account_id = one.account_id AND l.invoice_id = one.invoice_id) t
             WHERE i.account_id = one.account_id AND i.id = one.invoice_id
               AND i.status <> 'draft' AND (t.net <> i.net OR t.tax <> i.tax);
            hit := FOUND;
            EXIT WHEN hit;
        END LOOP;
    ELSE
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
        hit := FOUND;
    END IF;
    IF hit THEN
        RAISE EXCEPTION 'the totals of invoice % are not the sum of its lines', coalesce(bad.number, bad.id::text)
            USING ERRCODE = 'integrity_constraint_violation',
                  DETAIL = format('Invoice net %s, VAT %s; lines net %s, VAT %s.', bad.net, bad.tax, bad.lines_net, bad.lines_tax),
                  HINT = 'Issued invoices get no new lines; a credit note corrects them.';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION subbilling.reference_of(kind text, invoice_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
       WHEN kind = 'ocr' THEN subbilling.ocr_reference(invoice_id::text, true)
       WHEN kind = 'kid' THEN subbilling.kid_reference(invoice_id::text, 'mod10')
       WHEN kind = 'fik' THEN subbilling.fik_reference(invoice_id::text)
       WHEN kind = 'fi'  THEN subbilling.fi_reference((invoice_id + 100)::text)
       ELSE subbilling.luhn_reference(invoice_id::text)
       END;

CREATE OR REPLACE FUNCTION subbilling_internal.journal_lines_balanced() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
    one record;
    hit boolean := false;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one entry at a time, each query on one account's rows
        FOR one IN SELECT DISTINCT n.account_id, n.entry_id FROM new_lines n ORDER BY 1, 2 LOOP
            SELECT one.account_id, one.entry_id, currency(l.amount) AS currency, sum(l.amount) AS diff INTO bad
              FROM subbilling.journal_lines l
             WHERE l.account_id = one.account_id AND l.entry_id = one.entry_id
             GROUP BY currency(l.amount)
            HAVING minor_units(sum(l.amount)) <> 0
             LIMIT 1;
            hit := FOUND;
            EXIT WHEN hit;
        END LOOP;
    ELSE
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
        hit := FOUND;
    END IF;
    IF hit THEN
        RAISE EXCEPTION 'journal entry % does not balance', bad.entry_id
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Its %s lines of account %s sum to %s, not zero.', bad.currency, bad.account_id, bad.diff),
                  HINT = 'Debits (positive amounts) must equal credits (negative amounts) in every currency; write an entry''s lines in one statement.';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.kpi_open_items_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    one record;
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- on Citus this runs on a shard: one open item at a time, each on one account's rows
        FOR one IN SELECT n.account_id, n.invoice_id, sum(subbilling.minor_units(n.amount))::bigint AS m
                   FROM new_lines n WHERE n.invoice_id IS NOT NULL GROUP BY 1, 2 LOOP
            INSERT INTO subbilling_internal.kpi_open_items AS o (account_id, invoice_id, currency, due_date, open_minor)
            SELECT i.account_id, i.id, i.currency, i.due_date, one.m
              FROM subbilling.invoices i WHERE i.account_id = one.account_id AND i.id = one.invoice_id
            ON CONFLICT (account_id, invoice_id) DO UPDATE SET open_minor = o.open_minor + excluded.open_minor;
            DELETE FROM subbilling_internal.kpi_open_items o
             WHERE o.account_id = one.account_id AND o.invoice_id = one.invoice_id AND o.open_minor = 0;
        END LOOP;
        RETURN NULL;
    END IF;
    INSERT INTO subbilling_internal.kpi_open_items AS o (account_id, invoice_id, currency, due_date, open_minor)
    SELECT n.account_id, n.invoice_id, i.currency, i.due_date, sum(subbilling.minor_units(n.amount))::bigint
      FROM new_lines n
      JOIN subbilling.invoices i ON i.account_id = n.account_id AND i.id = n.invoice_id
     WHERE n.invoice_id IS NOT NULL
     GROUP BY n.account_id, n.invoice_id, i.currency, i.due_date
    ON CONFLICT (account_id, invoice_id) DO UPDATE SET open_minor = o.open_minor + excluded.open_minor;
    DELETE FROM subbilling_internal.kpi_open_items o
     USING (SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n WHERE n.invoice_id IS NOT NULL) n
     WHERE o.account_id = n.account_id AND o.invoice_id = n.invoice_id AND o.open_minor = 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION subbilling.dunning_due(as_of date)
    RETURNS TABLE (account_id bigint, invoice_id bigint, due_date date, policy_id bigint,
                   last_step_no integer, next_step_no integer, next_action text, next_on date)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- PL/pgSQL: Citus plans its query with the parameter's value (not an SQL function's)
BEGIN
    RETURN QUERY
    SELECT i.account_id, i.id, i.due_date, pol.id, l.step_no,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN 0 ELSE s.step_no END,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN 'overdue' ELSE s.action END,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN i.due_date + 1
                ELSE greatest(i.due_date + s.days_after_due,
                                         l.executed_on + greatest(s.days_after_due - l.days_after_due, 0)) END
      FROM subbilling.invoices i
      JOIN subbilling.accounts a ON a.id = i.account_id
      LEFT JOIN subbilling.dunning_policies pol
        ON pol.id = coalesce(a.dunning_policy_id, (SELECT d.id FROM subbilling.dunning_policies d WHERE d.is_default))
      LEFT JOIN LATERAL (
          SELECT x.step_no FROM subbilling.dunning_actions x
           WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no = 0) o ON true
      LEFT JOIN LATERAL (
          SELECT x.step_no, x.executed_on, x.days_after_due FROM subbilling.dunning_actions x
           WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no > 0
           ORDER BY x.step_no DESC LIMIT 1) l ON true
      LEFT JOIN LATERAL (
          SELECT x.step_no, x.action, x.days_after_due FROM subbilling.dunning_steps x
           WHERE x.policy_id = pol.id AND x.step_no > coalesce(l.step_no, 0)
           ORDER BY x.step_no LIMIT 1) s ON true
     WHERE i.status = 'open' AND i.kind = 'invoice' AND i.due_date <= dunning_due.as_of
       AND NOT EXISTS (SELECT 1 FROM subbilling.dunning_actions f
                        WHERE f.account_id = i.account_id AND f.fee_invoice_id = i.id)
       AND ((i.due_date < dunning_due.as_of AND o.step_no IS NULL)
            OR greatest(i.due_date + s.days_after_due,
                                   l.executed_on + greatest(s.days_after_due - l.days_after_due, 0))
               <= dunning_due.as_of);
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.dunning_batch(batch_size integer, as_of date,
                                         OUT steps integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz;
    cand    record;
    acc     bigint;
    ids     bigint[];
    a_inv   bigint[];
    on_citus boolean := false;
    open_amt subbilling.price;
    c_acc   bigint[] := '{}';
    c_inv   bigint[] := '{}';
    ok_acc  bigint[] := '{}';
    ok_inv  bigint[] := '{}';
    n       integer;
    k       integer;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of invoices'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(batch_size::text, 'NULL'));
    END IF;
    -- a finite date from 2000-01-01 to 10 years ahead (22023), like billing
    PERFORM subbilling_internal.check_date('as_of', as_of);
    -- fees, interest and write-offs are computed from open amounts read under
    -- the invoice's row lock: only right when each statement sees what
    -- payments committed meanwhile
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dunning needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = format('The transaction runs at %s; a payment committed after its snapshot would be missed and written off or charged interest.',
                                  upper(current_setting('transaction_isolation'))),
                  HINT = 'Run dunning in a transaction at the default isolation level.';
    END IF;
    steps := 0;
    errors := 0;
    err_at := as_of::timestamp AT TIME ZONE 'UTC';

    -- due invoices that still owe something and did not fail on this date
    IF subbilling_internal.on_citus() THEN
        -- Citus: the due invoices read across the shards, then each checked on its own
        -- account's rows (a query joining them to the open amounts spans the shards)
        on_citus := true;
        -- one connection per node: fee invoices write reference tables (invoice series)
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
        n := 0;
        FOR cand IN SELECT d.account_id, d.invoice_id FROM dunning_due(as_of) d
                     ORDER BY d.next_on, d.account_id, d.invoice_id LOOP
            CONTINUE WHEN EXISTS (SELECT 1 FROM subbilling.billing_errors e
                                   WHERE e.account_id = cand.account_id AND e.invoice_id = cand.invoice_id
                                     AND e.resolved_at IS NULL AND e.as_of >= err_at);
            open_amt := invoice_open_amount(cand.account_id, cand.invoice_id);
            CONTINUE WHEN open_amt IS NULL OR NOT open_amt > price_minor(0, currency(open_amt));
            c_acc := c_acc || cand.account_id;
            c_inv := c_inv || cand.invoice_id;
            n := n + 1;
            EXIT WHEN n = batch_size;
        END LOOP;
        -- claimed account by account below, in account order
        SELECT coalesce(array_agg(u.a ORDER BY u.a, u.i), '{}'), coalesce(array_agg(u.i ORDER BY u.a, u.i), '{}')
          INTO c_acc, c_inv FROM unnest(c_acc, c_inv) AS u(a, i);
    ELSE
    SELECT array_agg(q.account_id ORDER BY q.account_id, q.invoice_id), array_agg(q.invoice_id ORDER BY q.account_id, q.invoice_id),
           count(*)
      INTO c_acc, c_inv, n
      FROM (SELECT d.account_id, d.invoice_id
              FROM dunning_due(as_of) d
             WHERE NOT EXISTS (SELECT 1 FROM subbilling.billing_errors e
                                WHERE e.account_id = d.account_id AND e.invoice_id = d.invoice_id
                                  AND e.resolved_at IS NULL AND e.as_of >= err_at)
               AND invoice_open_amount(d.account_id, d.invoice_id) > price_minor(0, (SELECT x.currency FROM subbilling.invoices x
                                                                                    WHERE x.account_id = d.account_id AND x.id = d.invoice_id))
             ORDER BY d.next_on, d.account_id, d.invoice_id
             LIMIT batch_size) q;
    END IF;
    more := n = batch_size;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- claim per account; a row locked by a payment or another batch is skipped
    ids := '{}';
    FOR acc IN SELECT DISTINCT u FROM unnest(c_acc) u ORDER BY u LOOP
        -- (the account's invoices first, then one query on the account's rows)
        a_inv := ARRAY(SELECT c_inv[j] FROM generate_subscripts(c_acc, 1) j WHERE c_acc[j] = acc);
        ids := ids || ARRAY(SELECT x.id FROM subbilling.invoices x
                             WHERE x.account_id = acc
                               AND x.id = ANY (a_inv)
                               AND x.status = 'open'
                             ORDER BY x.id
                               FOR UPDATE SKIP LOCKED);
    END LOOP;
    -- keep the claimed pairs in order
    SELECT coalesce(array_agg(c_acc[j] ORDER BY j), '{}'), coalesce(array_agg(c_inv[j] ORDER BY j), '{}')
      INTO c_acc, c_inv
      FROM generate_subscripts(c_inv, 1) j WHERE c_inv[j] = ANY (ids);
    n := cardinality(c_inv);

    BEGIN
        FOR k IN 1 .. n LOOP
            steps := steps + subbilling_internal.dunning_invoice(c_acc[k], c_inv[k], as_of);
        END LOOP;
        ok_acc := c_acc;
        ok_inv := c_inv;
    EXCEPTION WHEN OTHERS THEN
        steps := 0;
        FOR k IN 1 .. n LOOP
            BEGIN
                steps := steps + subbilling_internal.dunning_invoice(c_acc[k], c_inv[k], as_of);
                ok_acc := ok_acc || c_acc[k];
                ok_inv := ok_inv || c_inv[k];
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                INSERT INTO subbilling.billing_errors (account_id, invoice_id, run_id, as_of, sqlstate, message, detail)
                VALUES (c_acc[k], c_inv[k], current_run_id(), err_at, st, msg, nullif(det, ''));
                errors := errors + 1;
            END;
        END LOOP;
    END;
    -- open dunning errors of invoices dunned successfully now are resolved
    -- (a cheap test first: there are rarely any open errors)
    IF on_citus THEN
        FOR acc IN SELECT DISTINCT u FROM unnest(ok_acc) u ORDER BY u LOOP
            UPDATE subbilling.billing_errors e SET resolved_at = now()
             WHERE e.account_id = acc AND e.resolved_at IS NULL
               AND e.invoice_id = ANY (ARRAY(SELECT ok_inv[j] FROM generate_subscripts(ok_acc, 1) j WHERE ok_acc[j] = acc));
        END LOOP;
    ELSIF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL AND e.invoice_id IS NOT NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(ok_acc, ok_inv) AS x(account_id, invoice_id)
         WHERE e.account_id = x.account_id AND e.invoice_id = x.invoice_id AND e.resolved_at IS NULL;
    END IF;
    -- a full batch of which nothing could be done (all claimed elsewhere) is not progress
    more := more AND steps + errors > 0;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.dunning_policy_of(account_id bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
-- PL/pgSQL: Citus plans its query with the parameter's value (not an SQL function's)
BEGIN
    RETURN (SELECT coalesce(a.dunning_policy_id, (SELECT p.id FROM subbilling.dunning_policies p WHERE p.is_default))
              FROM subbilling.accounts a WHERE a.id = dunning_policy_of.account_id);
END
$$;

CREATE OR REPLACE FUNCTION subbilling.finalize_invoice(invoice_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i       subbilling.invoices;
    a       subbilling.accounts;
    today   date;
    t       record;
    num     record;
    ref     text;
BEGIN
    i := subbilling_internal.invoice_for_update(finalize_invoice.invoice_id);
    IF i.status <> 'draft' THEN
        RAISE EXCEPTION 'invoice % is %, not a draft', coalesce(i.number, i.id::text), i.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT sum(l.net) AS net, sum(l.tax) AS tax, count(*) AS n INTO t
      FROM subbilling.invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id;
    IF t.n = 0 THEN
        RAISE EXCEPTION 'draft invoice % has no lines', i.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF currency(t.net) <> i.currency THEN
        RAISE EXCEPTION 'the lines of draft invoice % are not in its currency %', i.id, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := coalesce(i.issue_date, (now() AT TIME ZONE a.time_zone)::date);
    num := subbilling_internal.take_invoice_number(today);
    -- computed here: Citus refuses a STABLE function of the row's columns in an UPDATE
    ref := payment_reference(a.country, i.id);
    UPDATE subbilling.invoices x
       SET status = 'open', series_id = num.series_id, number_seq = num.number_seq, number = num.number,
           net = t.net, tax = t.tax, total = t.net + t.tax,
           kind = CASE WHEN x.credits_invoice_id IS NULL AND t.net + t.tax < price_minor(0, x.currency)
                       THEN 'credit_note' ELSE x.kind END,
           issue_date = today, due_date = coalesce(x.due_date, today + a.payment_terms_days),
           reference = ref, finalized_at = now()
     WHERE x.account_id = i.account_id AND x.id = i.id
    RETURNING x.* INTO i;
    PERFORM subbilling_internal.emit_event(i.account_id, 'invoice.finalized', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status, 'number', i.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = i.series_id),
                           'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text, 'total', i.total::text,
                           'total_minor', minor_units(i.total), 'issue_date', i.issue_date,
                           'due_date', i.due_date, 'reference', i.reference), i.id);
    PERFORM subbilling_internal.book_invoices(ARRAY[i.account_id], ARRAY[i.id]);   -- the receivables ledger
    RETURN i.id;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.book_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    notify  boolean := subbilling_internal.notify_enabled();
    booked  integer := 0;
    t_acc   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    t_inv   bigint[] := '{}';
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
    IF subbilling_internal.on_citus() THEN
        -- Citus: account by account, each on the account's shard (sql/parts/985_citus_billing.sql)
        SELECT coalesce(sum(subbilling_internal.book_new_invoices_citus(
                   k.account_id, ARRAY(SELECT invoice_ids[j] FROM generate_subscripts(account_ids, 1) j
                                        WHERE account_ids[j] = k.account_id))), 0)
          INTO booked
          FROM (SELECT DISTINCT u AS account_id FROM unnest(account_ids) u ORDER BY 1) k;
        RETURN booked;
    END IF;
    PERFORM subbilling_internal.outbox_reserve();
    SELECT coalesce(bool_or(i.status = 'void'), false), coalesce(bool_or(i.kind = 'credit_note'), false)
      INTO has_void, has_cn
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id;

    -- 1. issued documents not yet booked
    SELECT b.booked, b.zero_acc, b.zero_inv INTO booked, t_acc, t_inv
      FROM subbilling_internal.book_issued_documents(account_ids, invoice_ids) b;
    -- 2. void invoices: reverse their booking once
    IF has_void THEN
        booked := booked + subbilling_internal.book_void_invoices(account_ids, invoice_ids);
    END IF;
    -- 3. credit notes: onto the invoice they credit, the rest to customer credit
    IF has_cn THEN
        SELECT t_acc || c.covered_acc, t_inv || c.covered_inv INTO t_acc, t_inv
          FROM subbilling_internal.apply_credit_notes(account_ids, invoice_ids) c;
    END IF;
    -- 4. customer credit onto open invoices, oldest due first
    SELECT t_acc || coalesce(c.covered_acc, '{}'), t_inv || coalesce(c.covered_inv, '{}') INTO t_acc, t_inv
      FROM subbilling_internal.apply_customer_credit(account_ids, invoice_ids, notify) c;
    -- 5. invoices whose open amount reached zero are paid
    IF cardinality(t_inv) > 0 THEN
        PERFORM subbilling_internal.settle_paid_invoices(t_acc, t_inv, notify);
    END IF;
    -- 6. payment requests for new open invoices of accounts that pay automatically
    PERFORM subbilling_internal.request_automatic_payments(account_ids, invoice_ids, notify);

    RETURN booked;
END
$$;

CREATE OR REPLACE FUNCTION subbilling.distribute(shard_count integer DEFAULT 32)
    RETURNS TABLE (table_name regclass, placement text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $fn$
DECLARE
    r           record;
    fk          record;
    n           bigint;
    citus       boolean;
    done        boolean := false;
    fks         text[] := '{}';
    kept_local  regclass[];
    distributed regclass[];
    referenced  regclass[];
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser can distribute subbilling'
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'Call distribute() as the owner of the extension (a superuser) on the coordinator.';
    END IF;
    IF shard_count IS NULL OR shard_count NOT BETWEEN 1 AND 64000 THEN
        RAISE EXCEPTION 'shard_count must be between 1 and 64000, not %', coalesce(shard_count::text, 'null')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;

    citus := EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus');
    IF citus THEN
        EXECUTE $q$SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                   WHERE logicalrelid = 'subbilling.accounts'::regclass)$q$ INTO done;
    END IF;

    -- The tables and what becomes of them: distributed (accounts and the tables of one
    -- account), local (on the coordinator: keyed by something other than the account, or
    -- referring to such a table), reference (the rest: catalog, settings, global queues).
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.subbilling_distribute_plan (rel regclass PRIMARY KEY, how text NOT NULL,
                                                                    converted boolean NOT NULL DEFAULT false)
        ON COMMIT DROP;
    TRUNCATE pg_temp.subbilling_distribute_plan;
    INSERT INTO pg_temp.subbilling_distribute_plan (rel, how)
    SELECT c.oid::regclass,
           CASE WHEN c.oid = 'subbilling.accounts'::regclass THEN 'distributed'
                WHEN a.attnum IS NULL THEN 'reference'
                WHEN a.attnotnull AND (pk.conkey IS NULL OR a.attnum = ANY (pk.conkey)) THEN 'distributed'
                WHEN a.attnotnull THEN 'local'
                ELSE 'reference' END
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                                 AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
      JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'subbilling'
      LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'account_id' AND NOT a.attisdropped
      LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p'
     WHERE c.relkind = 'r';
    -- a table that refers to a local table stays local too
    LOOP
        UPDATE pg_temp.subbilling_distribute_plan p SET how = 'local'
         WHERE p.how <> 'local'
           AND EXISTS (SELECT FROM pg_catalog.pg_constraint k
                         JOIN pg_temp.subbilling_distribute_plan t ON t.rel = k.confrelid AND t.how = 'local'
                        WHERE k.conrelid = p.rel AND k.contype = 'f');
        EXIT WHEN NOT FOUND;
    END LOOP;

    IF NOT done THEN
        -- customer data: distribute an empty installation, then load it
        FOR r IN SELECT p.rel FROM pg_temp.subbilling_distribute_plan p WHERE p.how <> 'reference' ORDER BY p.rel::text LOOP
            EXECUTE format('SELECT count(*) FROM (SELECT FROM %s LIMIT 1) s', r.rel) INTO n;
            IF n > 0 THEN
                RAISE EXCEPTION 'subbilling cannot be distributed: table % already holds customer rows', r.rel
                      USING ERRCODE = 'object_not_in_prerequisite_state',
                            DETAIL = 'distribute() converts an installation that holds no customer data yet.',
                            HINT = 'Dump the data (pg_dump --data-only), distribute a fresh installation, then restore the data into it through the coordinator.';
            END IF;
        END LOOP;
    END IF;

    IF NOT citus THEN
        RAISE EXCEPTION 'subbilling cannot be distributed: the citus extension is not installed in this database'
              USING ERRCODE = 'feature_not_supported',
                    HINT = 'Put citus first in shared_preload_libraries, run CREATE EXTENSION citus and add the worker nodes (citus_add_node) on the coordinator, then call distribute() there.';
    END IF;

    -- Trigger conditions compare the extension's types (IS DISTINCT FROM), which Citus
    -- writes unqualified into the shards' DDL: the workers must find the operators on the
    -- database's search_path, set (and so passed on to the workers) in an earlier transaction.
    IF NOT done AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_db_role_setting s, pg_catalog.pg_database d
             WHERE d.datname = current_database() AND s.setdatabase = d.oid AND s.setrole = 0
               AND EXISTS (SELECT FROM unnest(s.setconfig) c WHERE c ~ '^search_path=.*\msubbilling\M')) THEN
        RAISE EXCEPTION 'subbilling cannot be distributed: the database''s search_path does not include subbilling'
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    DETAIL = 'Citus creates the shards'' triggers with conditions that use subbilling''s operators unqualified.',
                    HINT = format('Run ALTER DATABASE %I SET search_path = "$user", public, subbilling on the coordinator, then call distribute() again.', current_database());
    END IF;

    IF NOT done THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
        -- Citus converts a table with foreign keys only once the tables on both sides are
        -- converted: every foreign key between the extension's tables is dropped (here and
        -- on the workers' copies) and put back after the conversion.  A table keyed by
        -- something other than the account becomes a reference table and loses its foreign
        -- keys into the distributed tables.  Only the foreign keys of the distributed tables are
        -- put back (limit: the reference tables' ones are not, docs/citus.md).
        FOR fk IN
            SELECT k.conrelid::regclass AS rel, k.conname, pg_catalog.pg_get_constraintdef(k.oid) AS def,
                   src.how AS src_how, dst.how AS dst_how
              FROM pg_catalog.pg_constraint k
              JOIN pg_temp.subbilling_distribute_plan src ON src.rel = k.conrelid
              JOIN pg_temp.subbilling_distribute_plan dst ON dst.rel = k.confrelid
             WHERE k.contype = 'f'
             ORDER BY 1, 2
        LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
            EXECUTE format('SELECT run_command_on_workers(%L)',
                           format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname));
            IF fk.src_how <> 'distributed' THEN
                -- a reference table's rows were copied in this transaction: its shards have
                -- pending trigger events, and no foreign key can be added to them now
                RAISE NOTICE 'foreign key % of % is not kept on Citus', fk.conname, fk.rel;
            ELSE
                fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.conname, fk.def);
            END IF;
        END LOOP;
        UPDATE pg_temp.subbilling_distribute_plan p SET how = 'reference' WHERE p.how = 'local';

        -- a UNIQUE without the distribution column cannot be kept: external ids become
        -- indexed, their uniqueness the caller's (docs/citus.md)
        ALTER TABLE subbilling.accounts DROP CONSTRAINT IF EXISTS accounts_external_id_key;
        CREATE INDEX IF NOT EXISTS accounts_external_id_idx ON subbilling.accounts (external_id);

        -- convert a table once the tables it refers to are converted; in a cycle (payments
        -- and payment requests) one table's foreign keys into the cycle are dropped here and
        -- on the workers' copies, and put back after
        LOOP
            SELECT p.rel, p.how INTO r
              FROM pg_temp.subbilling_distribute_plan p
             WHERE p.how <> 'local' AND NOT p.converted
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k
                                 JOIN pg_temp.subbilling_distribute_plan t ON t.rel = k.confrelid
                                WHERE k.conrelid = p.rel AND k.contype = 'f' AND k.confrelid <> p.rel
                                  AND NOT t.converted)
             ORDER BY p.how = 'distributed', p.rel <> 'subbilling.accounts'::regclass, p.rel::text
             LIMIT 1;
            IF NOT FOUND THEN
                SELECT p.rel INTO r FROM pg_temp.subbilling_distribute_plan p
                 WHERE p.how <> 'local' AND NOT p.converted ORDER BY p.rel::text LIMIT 1;
                EXIT WHEN NOT FOUND;
                FOR fk IN
                    SELECT k.conname, pg_catalog.pg_get_constraintdef(k.oid) AS def
                      FROM pg_catalog.pg_constraint k
                      JOIN pg_temp.subbilling_distribute_plan t ON t.rel = k.confrelid
                     WHERE k.conrelid = r.rel AND k.contype = 'f' AND k.confrelid <> r.rel AND NOT t.converted
                LOOP
                    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.rel, fk.conname);
                    EXECUTE format('SELECT run_command_on_workers(%L)',
                                   format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.rel, fk.conname));
                    fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.rel, fk.conname, fk.def);
                END LOOP;
                CONTINUE;
            END IF;
            IF r.how = 'reference' THEN
                EXECUTE format('SELECT create_reference_table(%L)', r.rel);
            ELSIF r.rel = 'subbilling.accounts'::regclass THEN
                EXECUTE format('SELECT create_distributed_table(%L, %L, shard_count => %s)',
                               'subbilling.accounts', 'id', shard_count);
            ELSE
                EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                               r.rel, 'account_id', 'subbilling.accounts');
            END IF;
            UPDATE pg_temp.subbilling_distribute_plan p SET converted = true WHERE p.rel = r.rel;
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
            EXECUTE fks[i];
        END LOOP;
        -- triggers run on the shards (they touch their own table's rows of one account)
        EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
        -- billing, payments, dunning: the billing engine runs on the account's shard, and
        -- the functions it calls there read reference tables (tax rules, exchange rates)
        EXECUTE format('ALTER DATABASE %I SET citus.allow_nested_distributed_execution = on', current_database());
    END IF;

    RETURN QUERY SELECT p.rel, p.how FROM pg_temp.subbilling_distribute_plan p ORDER BY p.how, p.rel::text;
END
$fn$;


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

-- billing_charges for one account on Citus: the same query (kept equal to it;
-- test/pgtap/985_citus_billing.sql compares what both bill), in PL/pgSQL (Citus
-- plans a PL/pgSQL function's query with the arguments' values, not an SQL
-- function's), every table also filtered by the account (Citus routes the
-- whole query to the account's shard), CASE WHEN x = ... for CASE x WHEN.  The
-- single server keeps the SQL function: its one plan without the batch's
-- values is what makes the set-based batch fast there.
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
    -- the account: every table is also filtered by it, so that the query is routed to
    -- the account's shard as a whole
    one_account bigint := account_ids[1];
BEGIN
IF EXISTS (SELECT FROM unnest(account_ids) a WHERE a IS DISTINCT FROM one_account) THEN
    RAISE EXCEPTION 'on Citus, the billing engine computes the charges of one account at a time'
        USING ERRCODE = 'feature_not_supported';
END IF;
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
                             WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.account_id = one_account
                               AND p.pricing_model = 'usage'))
           END AS kfloor
      FROM b
      JOIN subbilling.subscriptions s ON s.account_id = b.account_id AND s.id = b.subscription_id AND s.account_id = one_account
      JOIN subbilling.accounts a ON a.id = s.account_id AND a.id = one_account
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
       AND i.account_id = one_account
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
                   WHERE p.account_id = seg.account_id AND p.account_id = one_account AND p.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT daterange(u.suspended_from, u.lifted_on) FROM subbilling.subscription_suspensions u
                   WHERE u.account_id = seg.account_id AND u.account_id = one_account AND u.subscription_id = seg.subscription_id
                  UNION ALL
                  SELECT k.held FROM subbilling.delivery_records k
                   WHERE k.account_id = seg.account_id AND k.account_id = one_account AND k.subscription_id = seg.subscription_id
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
       AND d.account_id = one_account
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
           WHERE x.account_id = g.account_id AND x.account_id = one_account AND x.item_id = g.item_id
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
        ON l.account_id = s.account_id AND l.subscription_id = s.subscription_id AND l.account_id = one_account AND l.charge_type IS NOT NULL
       AND l.key_start >= s.kfloor
      JOIN subbilling.invoices v ON v.account_id = l.account_id AND v.id = l.invoice_id AND v.account_id = one_account
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
                           WHERE a.id = j.account_id AND a.id = one_account LIMIT 1) a
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
COMMENT ON FUNCTION subbilling_internal.billing_charges_citus(bigint[], bigint[], date[]) IS 'internal (Citus): billing_charges for the subscriptions of one account, every table filtered by the account (routed to its shard)';
REVOKE ALL ON FUNCTION subbilling_internal.billing_charges_citus(bigint[], bigint[], date[]) FROM PUBLIC;

-- book_invoices on Citus, for one account: books issued invoices as
-- book_invoices does (one entry each, receivables = total, revenue per
-- account code, VAT per rate, once; a zero total is paid at once), every
-- statement on the account's rows.  What it does not do yet on Citus (void
-- invoices, credit notes, customer credit, automatic payments) is refused
-- with 0A000: the caller records it (billing_errors) instead of booking
-- half of it.
CREATE FUNCTION subbilling_internal.book_new_invoices_citus(acct bigint, invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    inv     subbilling.invoices;
    eid     bigint;
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
    booked  integer := 0;
    unsupported boolean;
BEGIN
    -- what this does not do on Citus yet: refused, so that the caller records it
    -- (each test its own statement: one query per shard, the credit summed on the coordinator)
    IF EXISTS (SELECT FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids) AND (i.status = 'void' OR i.kind = 'credit_note')) THEN
        unsupported := true;
    ELSIF EXISTS (SELECT FROM subbilling.payment_methods pm
                   WHERE pm.account_id = acct AND pm.is_default AND pm.active AND pm.automatic) THEN
        unsupported := true;
    ELSE
        unsupported := coalesce(minor_units(customer_credit(acct)), 0) > 0;
    END IF;
    IF unsupported THEN
        RAISE EXCEPTION 'on Citus, booking does not yet handle void invoices, credit notes, customer credit or automatic payments'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Account %s has one of them.', acct);
    END IF;

    FOR inv IN SELECT * FROM subbilling.invoices i
                WHERE i.account_id = acct AND i.id = ANY (invoice_ids)
                  AND i.status IN ('open', 'paid', 'uncollectible')
                ORDER BY i.id LOOP
        -- booked once
        CONTINUE WHEN EXISTS (SELECT 1 FROM subbilling.journal_entries e
                               WHERE e.account_id = acct AND e.invoice_id = inv.id
                                 AND e.kind IN ('invoice', 'credit_note'));
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
        IF cardinality(codes) >= 2 THEN
            booked := booked + 1;
            eid := nextval('subbilling.journal_entries_id_seq'::regclass);
            INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, memo)
            VALUES (acct, eid, inv.kind, inv.issue_date, inv.id, replace(inv.kind, '_', ' ') || ' ' || inv.number);
            -- the entry's lines in one statement (the balance is checked per statement), as
            -- a multi-row VALUES: Citus routes it to the account's shard
            EXECUTE 'INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id) VALUES '
                    || (SELECT string_agg(format('(%s, %s, %L, %L::subbilling.price, %L, %s)', acct, eid, u.code, u.amount,
                                                 u.subledger, coalesce(u.invoice_id::text, 'NULL')), ', ' ORDER BY u.ord)
                          FROM unnest(codes, amounts, subs, oitems) WITH ORDINALITY AS u(code, amount, subledger, invoice_id, ord));
        END IF;
        IF inv.kind = 'invoice' AND minor_units(inv.total) = 0 THEN
            UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
             WHERE x.account_id = acct AND x.id = inv.id;
            PERFORM subbilling_internal.emit_event(acct, 'invoice.paid', inv.subscription_id,
                        jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', inv.currency,
                                           'total', inv.total::text, 'paid_at', now(), 'via', 'zero total',
                                           'payment_id', NULL), inv.id);
            PERFORM subbilling_internal.after_invoice_paid(acct, inv.id);
        END IF;
    END LOOP;
    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.book_new_invoices_citus(bigint, bigint[]) IS 'internal (Citus): book_invoices for one account''s issued invoices (one entry each, once; a zero total is paid at once), one account''s rows per statement; returns the entries booked';
REVOKE ALL ON FUNCTION subbilling_internal.book_new_invoices_citus(bigint, bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.bill_account_citus(acct bigint, subscription_ids bigint[], as_of_dates date[],
                                                       as_of timestamptz, series_ids bigint[],
                                                       INOUT next_numbers bigint[],
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
    notify  boolean := subbilling_internal.notify_enabled();
    ev      record;
BEGIN
    invoice_ids := '{}';
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = acct;
    SELECT cs.reference_kind INTO ref_kind FROM subbilling.country_settings cs WHERE cs.country = a.country;
    SELECT ss.currency INTO s_cur FROM subbilling.seller_settings ss;

    IF to_regclass('pg_temp.subbilling_citus_charges') IS NULL THEN
        CREATE TEMP TABLE subbilling_citus_charges ON COMMIT DELETE ROWS AS
            SELECT * FROM subbilling_internal.billing_charges_citus('{}', '{}', '{}') WITH NO DATA;
    ELSE
        DELETE FROM pg_temp.subbilling_citus_charges;
    END IF;
    INSERT INTO pg_temp.subbilling_citus_charges
    SELECT * FROM subbilling_internal.billing_charges_citus(array_fill(acct, ARRAY[cardinality(subscription_ids)]),
                                                      subscription_ids, as_of_dates);

    -- each subscription's bookkeeping
    UPDATE subbilling.subscriptions x
       SET next_bill_on = st.next_on,
           bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
           billed_as_of = greatest(st.as_of, x.billed_as_of),
           billed_at = stamp
      FROM (SELECT b.subscription_id, b.as_of,
                   (SELECT min(c.due_date) FROM pg_temp.subbilling_citus_charges c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS next_on,
                   (SELECT min(c.key_start) FROM pg_temp.subbilling_citus_charges c
                     WHERE c.subscription_id = b.subscription_id AND c.pending) AS from_d
              FROM unnest(subscription_ids, as_of_dates) AS b(subscription_id, as_of)) st
     WHERE x.account_id = acct AND x.id = st.subscription_id;

    -- one invoice per subscription with lines due, in subscription order
    FOR h IN
        SELECT c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, array_agg(DISTINCT c.tax_treatment) AS treatments
          FROM pg_temp.subbilling_citus_charges c
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
        inv.id := nextval('subbilling.invoices_id_seq'::regclass);
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
          FROM pg_temp.subbilling_citus_charges c
         WHERE c.subscription_id = h.subscription_id AND c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, c.plan_id;
        PERFORM subbilling_internal.emit_event(acct, 'invoice.created', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'as_of', inv.as_of), inv.id);
        PERFORM subbilling_internal.emit_event(acct, 'invoice.finalized', inv.subscription_id,
                    jsonb_build_object('invoice_id', inv.id, 'kind', inv.kind, 'status', inv.status,
                                       'number', inv.number, 'series', ev.code,
                                       'currency', inv.currency, 'net', inv.net::text, 'tax', inv.tax::text,
                                       'total', inv.total::text, 'total_minor', minor_units(inv.total),
                                       'issue_date', inv.issue_date, 'due_date', inv.due_date,
                                       'reference', inv.reference), inv.id);
        invoice_ids := invoice_ids || inv.id;
    END LOOP;
    IF cardinality(invoice_ids) > 0 THEN
        PERFORM subbilling_internal.book_new_invoices_citus(acct, invoice_ids);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]) IS 'internal (Citus): bill claimed subscriptions of one account as of their account-local dates, one account''s rows per statement; numbers from the batch''s blocks (next_numbers moved on); returns the invoice ids';
REVOKE ALL ON FUNCTION subbilling_internal.bill_account_citus(bigint, bigint[], date[], timestamptz, bigint[], bigint[]) FROM PUBLIC;

-- The billing batch on Citus: the due subscriptions are read without locks
-- (Citus locks rows only by their account), then claimed account by account
-- by (account_id, id) with SKIP LOCKED, skipping the ones held elsewhere or
-- billed meanwhile; each account is billed in its own subtransaction, and a
-- failure falls back to one subscription at a time (billing_errors), as on a
-- single server.  The counters of the batch's series are locked once and
-- moved once, at the end.
CREATE FUNCTION subbilling_internal.bill_batch_citus(batch_size integer, as_of timestamptz,
                                                     OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    nbo     date[];
    a_sid   bigint[];
    a_ad    date[];
    ser     bigint[];
    nxt     bigint[];
    nxt_try bigint[];
    first_  bigint[];
    got     bigint[];
    k       bigint;
    claimed integer := 0;
    st      text;
    msg     text;
    det     text;
BEGIN
    invoices := 0;
    errors := 0;
    -- one connection per node: the batch writes reference tables (invoice series and
    -- counters) after reading the distributed ones
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id),
           array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id)
      INTO acc, sid, ad, nbo
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
    FOR k IN SELECT DISTINCT x FROM unnest(acc) x ORDER BY x LOOP
        -- claim the account's due subscriptions of the batch
        -- (each statement either local or on the account's shard alone)
        a_sid := ARRAY(SELECT u.sid FROM unnest(acc, sid) AS u(acc, sid) WHERE u.acc = k);
        SELECT array_agg(x.id ORDER BY x.id) INTO a_sid
          FROM (SELECT x.id FROM subbilling.subscriptions x
                 WHERE x.account_id = k AND x.id = ANY (a_sid)
                   AND x.next_bill_on <= (bill_batch_citus.as_of AT TIME ZONE 'UTC')::date + 1
                   FOR UPDATE SKIP LOCKED) x;
        CONTINUE WHEN a_sid IS NULL;
        a_ad := ARRAY(SELECT b.ad FROM unnest(acc, sid, ad) AS b(acc, sid, ad)
                       WHERE b.acc = k AND b.sid = ANY (a_sid) ORDER BY b.sid);
        claimed := claimed + cardinality(a_sid);
        BEGIN
            SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
              FROM subbilling_internal.bill_account_citus(k, a_sid, a_ad, bill_batch_citus.as_of, ser, nxt) r;
            UPDATE subbilling.billing_errors e SET resolved_at = now()
             WHERE e.account_id = k AND e.subscription_id = ANY (a_sid) AND e.resolved_at IS NULL;
            nxt := nxt_try;
            invoices := invoices + cardinality(got);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR j IN 1 .. cardinality(a_sid) LOOP
                BEGIN
                    SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
                      FROM subbilling_internal.bill_account_citus(k, ARRAY[a_sid[j]], ARRAY[a_ad[j]], bill_batch_citus.as_of, ser, nxt) r;
                    UPDATE subbilling.billing_errors e SET resolved_at = now()
                     WHERE e.account_id = k AND e.subscription_id = a_sid[j] AND e.resolved_at IS NULL;
                    nxt := nxt_try;
                    invoices := invoices + cardinality(got);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (k, a_sid[j], current_run_id(), bill_batch_citus.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = a_ad[j] + 1
                     WHERE x.account_id = k AND x.id = a_sid[j];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
    END LOOP;
    -- a full batch that claimed nothing (all held elsewhere) ends the run
    more := more AND claimed > 0;
    -- the counters moved once, by what the batch numbered
    UPDATE subbilling.invoice_counters ct SET next_number = u.nxt
      FROM unnest(ser, nxt, first_) AS u(series_id, nxt, first_)
     WHERE ct.series_id = u.series_id AND u.nxt <> u.first_;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) IS 'internal (Citus): bill_batch account by account: claim by (account_id, id) with SKIP LOCKED, bill each account in its own subtransaction, number from one block per series, move the counters once';
REVOKE ALL ON FUNCTION subbilling_internal.bill_batch_citus(integer, timestamptz) FROM PUBLIC;
