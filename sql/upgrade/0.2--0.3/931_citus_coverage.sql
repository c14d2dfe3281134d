-- Citus: the rest of the API through the coordinator (docs/citus.md): the claim files and
-- run_payment_retries lock the payment requests by (account_id, id), payment_failed locks its
-- request on its shard, import_autogiro_payments passes register_payment the reference as a
-- value, refund reopens an invoice with the setting made on the invoice's worker; the usage
-- queue folded account by account (kpi_usage_fold_citus) by refresh_kpi_snapshots, which
-- builds no snapshot there; the background worker's events relay (worker_relay_events);
-- webhook_host_allowed with a quoted body (Citus runs it), webhook_fanout reading the events
-- one shard at a time, webhook_claim and webhook_record with no volatile call in an UPDATE
-- (webhook_backoff with a quoted body); new in 0.3.

CREATE FUNCTION subbilling_internal.lock_payment_requests_citus(accts bigint[], ids bigint[]) RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    k       integer;
    locked  bigint[] := '{}';
BEGIN
    FOR k IN 1 .. coalesce(pg_catalog.cardinality(ids), 0) LOOP
        PERFORM FROM subbilling.payment_requests r
         WHERE r.account_id = accts[k] AND r.id = ids[k] AND r.status = 'requested'
           FOR UPDATE;
        IF FOUND THEN
            locked := locked || ids[k];
        END IF;
    END LOOP;
    RETURN locked;
END
$$;
COMMENT ON FUNCTION subbilling_internal.lock_payment_requests_citus(bigint[], bigint[]) IS 'internal (Citus): locks the payment requests (account_id, id) still requested, one statement on each one''s shard; returns the ids locked';
REVOKE ALL ON FUNCTION subbilling_internal.lock_payment_requests_citus(bigint[], bigint[]) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_usage_fold_account(acct bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    WITH q AS (
        DELETE FROM subbilling_internal.kpi_usage_queue q
         WHERE q.account_id = acct
        RETURNING q.account_id, q.subscription_id, q.usage_date, q.quantity
    ),
    d AS (
        SELECT q.account_id, q.subscription_id, q.usage_date AS day, sum(q.quantity) AS q, count(*) AS n
          FROM q GROUP BY q.account_id, q.subscription_id, q.usage_date
    ),
    k0 AS (
        SELECT w.account_id, w.subscription_id, w.starts, w.used, w.billing_anchor AS kept_anchor,
               w.billing_period AS kept_period, s.billing_anchor,
               (SELECT p.billing_period FROM subbilling.subscription_items i JOIN subbilling.plans p ON p.id = i.plan_id
                 WHERE i.account_id = acct AND i.subscription_id = w.subscription_id AND i.kind = 'base'
                   AND i.voided_at IS NULL AND i.validity @> current_date
                 ORDER BY i.id LIMIT 1) AS billing_period
          FROM subbilling_internal.kpi_usage_periods w
          JOIN subbilling.subscriptions s ON s.account_id = w.account_id AND s.id = w.subscription_id
         WHERE w.account_id = acct AND s.account_id = acct
           AND w.subscription_id IN (SELECT d.subscription_id FROM d)
    ),
    k AS (
        SELECT k0.*, coalesce(k0.kept_anchor = k0.billing_anchor AND k0.kept_period = k0.billing_period, false) AS same
          FROM k0
    ),
    t AS (
        -- the same key: the kept totals and the changes
        SELECT k.account_id, k.subscription_id, x.ps, x.q
          FROM k CROSS JOIN LATERAL unnest(k.starts, k.used) AS x(ps, q)
         WHERE k.same
        UNION ALL
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, d.day)), d.q
          FROM k JOIN d ON d.account_id = k.account_id AND d.subscription_id = k.subscription_id
         WHERE k.same
        UNION ALL
        -- unkeyed or a new key: all the usage (which includes the changes claimed)
        SELECT k.account_id, k.subscription_id,
               subbilling.period_start(k.billing_anchor, k.billing_period,
                                       subbilling.period_index(k.billing_anchor, k.billing_period, u.usage_date)), u.quantity
          FROM k JOIN subbilling.usage u ON u.account_id = k.account_id AND u.subscription_id = k.subscription_id
         WHERE NOT k.same AND k.billing_period IS NOT NULL AND u.account_id = acct
    ),
    tot AS (
        SELECT t.account_id, t.subscription_id, t.ps, sum(t.q) AS q
          FROM t GROUP BY t.account_id, t.subscription_id, t.ps
        HAVING sum(t.q) <> 0
    ),
    r AS (
        SELECT k.account_id, k.subscription_id,
               CASE WHEN k.billing_period IS NOT NULL THEN k.billing_anchor END AS billing_anchor, k.billing_period,
               coalesce(array_agg(tot.ps ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS starts,
               coalesce(array_agg(tot.q ORDER BY tot.ps) FILTER (WHERE tot.ps IS NOT NULL), '{}') AS used
          FROM k LEFT JOIN tot ON tot.account_id = k.account_id AND tot.subscription_id = k.subscription_id
         GROUP BY k.account_id, k.subscription_id, k.billing_anchor, k.billing_period
    ),
    up AS (
        UPDATE subbilling_internal.kpi_usage_periods w
           SET billing_anchor = r.billing_anchor, billing_period = r.billing_period, starts = r.starts, used = r.used
          FROM r
         WHERE w.account_id = acct AND w.account_id = r.account_id AND w.subscription_id = r.subscription_id
    )
    SELECT coalesce(sum(d.n), 0) INTO n FROM d;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) IS 'internal (Citus): kpi_usage_fold of one account''s queued usage, one statement on the account''s shard; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_account(bigint) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.kpi_usage_fold_citus() RETURNS bigint
LANGUAGE plpgsql SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n    bigint := 0;
    acct bigint;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kpi_usage_fold runs in a read committed transaction'
            USING ERRCODE = 'active_sql_transaction',
                  DETAIL = 'The fold reads the usage and the queue as committed after it takes its lock.';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock('subbilling_internal.kpi_usage_queue'::pg_catalog.regclass::oid::bigint);
    FOR acct IN SELECT DISTINCT q.account_id FROM subbilling_internal.kpi_usage_queue q ORDER BY 1 LOOP
        n := n + subbilling_internal.kpi_usage_fold_account(acct);
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling_internal.kpi_usage_fold_citus() IS 'internal (Citus): kpi_usage_fold account by account (kpi_usage_fold_account, each on its shard), under the fold''s lock; returns the queue rows folded';
REVOKE ALL ON FUNCTION subbilling_internal.kpi_usage_fold_citus() FROM PUBLIC;

CREATE FUNCTION subbilling_internal.worker_relay_events() RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   integer := 0;
    k   integer;
BEGIN
    IF NOT subbilling_internal.on_citus() OR subbilling_internal.notify_enabled() THEN
        RETURN 0;
    END IF;
    LOOP
        k := subbilling.relay_events(1000);
        n := n + k;
        EXIT WHEN k < 1000;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling_internal.worker_relay_events() IS 'internal (Citus): the background worker''s events relay after each cycle: relay_events until every committed event is announced, when subbilling.notify is off; 0 otherwise';
REVOKE ALL ON FUNCTION subbilling_internal.worker_relay_events() FROM PUBLIC;

CREATE OR REPLACE FUNCTION subbilling.autogiro_claim_file(run_date date, customer_number text, bankgiro text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    payers  text[];
    dues    date[];
    amounts subbilling.price[];
    refs    text[];
    out_ids bigint[];
    outs    record;
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('autogiro_claims');
    SELECT f.content INTO body FROM subbilling.autogiro_files f WHERE f.kind = 'claims' AND f.run_date = autogiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again; the reads over every shard go one shard at a
        -- time, so that the transaction may then write the claims (reference tables)
        -- (docs/citus.md)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
        SELECT array_agg(r.account_id ORDER BY r.account_id, r.id), array_agg(r.id ORDER BY r.account_id, r.id)
          INTO accts, ids
          FROM subbilling.payment_requests r
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
          JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
         WHERE pm.kind = 'autogiro' AND r.status = 'requested';
        locked := subbilling_internal.lock_payment_requests_citus(accts, ids);
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    -- refunds to pay back (autogiro_refund): outgoing payments (32), written as negative amounts
    SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') AS ids,
           coalesce(array_agg(o.payer_number ORDER BY o.id), '{}') AS payers,
           coalesce(array_agg(greatest(o.pay_date, run_date) ORDER BY o.id), '{}') AS dates,
           coalesce(array_agg(-minor_units(o.amount) ORDER BY o.id), '{}') AS minor,
           coalesce(array_agg(o.reference ORDER BY o.id), '{}') AS refs
      INTO outs
      FROM (SELECT x.* FROM subbilling.autogiro_payouts x WHERE x.file_id IS NULL AND x.outcome = 'sent'
               FOR UPDATE) o;
    body := subbilling_internal.autogiro_claims_text(
        run_date, customer_number, bankgiro, dues || outs.dates, payers || outs.payers,
        (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k))
            || outs.minor,
        refs || outs.refs);
    INSERT INTO subbilling.autogiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, sha256(convert_to(body, 'LATIN1')), body)
    RETURNING f.id INTO fid;
    out_ids := outs.ids;
    UPDATE subbilling.autogiro_payouts x SET file_id = fid, pay_date = greatest(x.pay_date, run_date)
     WHERE x.id = ANY (out_ids);
    INSERT INTO subbilling.autogiro_claims (payment_request_id, attempt, account_id, file_id, payer_number, due_date,
                                            amount, reference)
    SELECT u.id, u.attempt, u.account_id, fid, u.payer_number, u.due, u.amount, u.reference
      FROM unnest(ids, attempts, accts, payers, dues, amounts, refs)
           AS u(id, attempt, account_id, payer_number, due, amount, reference);
    RETURN body;
END
$$;

CREATE OR REPLACE FUNCTION subbilling.avtalegiro_claim_file(run_date date, data_transmitter text, agreement_id text,
                                                 assignment_account text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    kids    text[];
    notes   boolean[];
    dues    date[];
    amounts subbilling.price[];
    names   text[];
    specs   text[];
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('avtalegiro_claims');
    SELECT f.content INTO body FROM subbilling.avtalegiro_files f
     WHERE f.kind = 'claims' AND f.run_date = avtalegiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again; the reads over every shard go one shard at a
        -- time, so that the transaction may then write the claims (reference tables)
        -- (docs/citus.md)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
        SELECT array_agg(r.account_id ORDER BY r.account_id, r.id), array_agg(r.id ORDER BY r.account_id, r.id)
          INTO accts, ids
          FROM subbilling.payment_requests r
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
          JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
         WHERE pm.kind = 'avtalegiro' AND r.status = 'requested';
        locked := subbilling_internal.lock_payment_requests_citus(accts, ids);
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    INSERT INTO subbilling.avtalegiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, '\x'::bytea, '')
    RETURNING f.id INTO fid;
    body := subbilling_internal.avtalegiro_claims_text(
        ARRAY[data_transmitter, lpad(fid::text, 7, '0'), '00008080', agreement_id, lpad(fid::text, 7, '0'),
              assignment_account],
        dues, (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k)),
        kids, notes, names, specs);
    UPDATE subbilling.avtalegiro_files f SET sha256 = sha256(convert_to(body, 'LATIN1')), content = body WHERE f.id = fid;
    INSERT INTO subbilling.avtalegiro_claims (payment_request_id, attempt, account_id, file_id, kid, notify, due_date, amount)
    SELECT u.id, u.attempt, u.account_id, fid, u.kid, u.notify, u.due, u.amount
      FROM unnest(ids, attempts, accts, kids, notes, dues, amounts) AS u(id, attempt, account_id, kid, notify, due, amount);
    RETURN body;
END
$$;

CREATE OR REPLACE FUNCTION subbilling.import_autogiro_payments(file text,
                                                    OUT file_id bigint, OUT approved integer,
                                                    OUT rejected integer, OUT unknown integer,
                                                    OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    c       subbilling.autogiro_claims;
    digest  bytea;
    pid     bigint;
    reason  text;
    ref     text;
BEGIN
    approved := 0; rejected := 0; unknown := 0;
    IF EXISTS (SELECT 1 FROM subbilling.parse_autogiro(file) p WHERE p.kind <> 'payments') THEN
        RAISE EXCEPTION 'not an Autogiro payment specification'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A mandate advice is read by import_autogiro_mandates.';
    END IF;
    PERFORM subbilling_internal.lock_row('autogiro_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT f.id INTO file_id FROM subbilling.autogiro_files f WHERE f.kind = 'payments' AND f.sha256 = digest;
    repeated := FOUND;
    IF repeated THEN
        RETURN;
    END IF;
    INSERT INTO subbilling.autogiro_files AS f (kind, sha256, content) VALUES ('payments', digest, file)
    RETURNING f.id INTO file_id;
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p WHERE p.code = 82 ORDER BY p.line LOOP
        -- the claim sent: payer number, due date, amount (and reference when several fit)
        SELECT * INTO c FROM subbilling.autogiro_claims x
         WHERE x.payer_number = r.payer_number AND x.due_date = r.date
           AND minor_units(x.amount) = r.amount_minor AND x.outcome = 'sent'
         ORDER BY (x.reference = coalesce(r.reference, '')) DESC, x.payment_request_id, x.attempt
         LIMIT 1
           FOR UPDATE;
        IF NOT FOUND THEN
            unknown := unknown + 1;
            CONTINUE;
        END IF;
        IF r.status = 0 THEN
            -- the reference read on its own: a call with a subquery on one account's rows as its
            -- argument would run, call and all, on the account's shard on Citus
            SELECT i.reference INTO ref FROM subbilling.payment_requests q
              JOIN subbilling.invoices i ON i.account_id = q.account_id AND i.id = q.invoice_id
             WHERE q.account_id = c.account_id AND q.id = c.payment_request_id;
            pid := subbilling.register_payment(c.amount, ref, r.settled_on, 'autogiro',
                                               format('autogiro:%s:%s:%s:%s', r.bankgiro, to_char(r.settled_on, 'YYYYMMDD'),
                                                      r.section_serial, c.payment_request_id || '.' || c.attempt));
            UPDATE subbilling.autogiro_claims x SET outcome = 'approved', status_code = 0, payment_id = pid
             WHERE x.payment_request_id = c.payment_request_id AND x.attempt = c.attempt;
            approved := approved + 1;
        ELSE
            reason := CASE r.status WHEN 1 THEN 'insufficient funds' WHEN 2 THEN 'no mandate or account closed'
                                    ELSE 'renewed attempt' END;
            IF EXISTS (SELECT 1 FROM subbilling.payment_requests q
                        WHERE q.account_id = c.account_id AND q.id = c.payment_request_id
                          AND q.status = 'requested' AND q.attempt = c.attempt) THEN
                PERFORM subbilling.payment_failed(c.payment_request_id, 'autogiro: ' || reason, r.date);
            END IF;
            UPDATE subbilling.autogiro_claims x SET outcome = 'rejected', status_code = r.status
             WHERE x.payment_request_id = c.payment_request_id AND x.attempt = c.attempt;
            rejected := rejected + 1;
        END IF;
    END LOOP;
    -- outgoing payments (refunds paid back, autogiro_refund): paid, or refused and registered back
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p WHERE p.code = 32 ORDER BY p.line LOOP
        pid := subbilling_internal.autogiro_payout_of(r.payer_number, r.date, r.amount_minor, r.reference);
        IF pid IS NULL THEN
            unknown := unknown + 1;
        ELSIF r.status = 0 THEN
            UPDATE subbilling.autogiro_payouts x SET outcome = 'paid', status_code = 0 WHERE x.id = pid;
            approved := approved + 1;
        ELSE
            PERFORM subbilling_internal.autogiro_payout_refused(pid, r.status, r.settled_on);
            rejected := rejected + 1;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION subbilling.payment_failed(payment_request_id bigint, reason text, failed_on date DEFAULT current_date)
    RETURNS date
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       subbilling.payment_requests;
    days    integer[];
    nxt     date;
    inv     subbilling.invoices;
    acct    bigint;
BEGIN
    IF failed_on IS NULL OR NOT isfinite(failed_on) THEN
        RAISE EXCEPTION 'failed_on must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('failed_on', failed_on);
    IF subbilling_internal.on_citus() THEN
        -- on Citus the request is locked by (account_id, id), on its own shard
        SELECT y.account_id INTO acct FROM subbilling.payment_requests y WHERE y.id = payment_request_id;
        SELECT * INTO r FROM subbilling.payment_requests x
         WHERE x.account_id = acct AND x.id = payment_request_id FOR UPDATE;
    ELSE
        SELECT * INTO r FROM subbilling.payment_requests x WHERE x.id = payment_request_id FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment request % does not exist', coalesce(payment_request_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF r.status <> 'requested' THEN
        RAISE EXCEPTION 'payment request % is %, not requested', r.id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = r.account_id AND x.id = r.invoice_id;
    SELECT s.retry_days INTO days FROM subbilling.payment_settings s;
    IF r.attempt <= coalesce(cardinality(days), 0) AND inv.status IN ('open', 'uncollectible') THEN
        nxt := failed_on + days[r.attempt];
    END IF;
    UPDATE subbilling.payment_requests x
       SET status = 'failed', failed_on = payment_failed.failed_on, failure_reason = reason,
           next_attempt_on = nxt, updated_at = now()
     WHERE x.account_id = r.account_id AND x.id = r.id;
    PERFORM subbilling_internal.emit_event(r.account_id, 'payment.failed', inv.subscription_id,
        jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', inv.number,
                           'currency', currency(r.amount), 'amount', r.amount::text, 'attempt', r.attempt,
                           'reason', reason, 'failed_on', failed_on, 'next_attempt_on', nxt, 'final', nxt IS NULL),
        r.invoice_id);
    RETURN nxt;
END
$$;
COMMENT ON FUNCTION subbilling.payment_failed(bigint, text, date) IS 'the application reports a failed automatic payment: the request becomes failed and, while payment_settings.retry_days has entries left, a retry is scheduled (returned; NULL = no more retries, the invoice stays open for dunning); event payment.failed';

CREATE OR REPLACE FUNCTION subbilling.refund(payment_id bigint, amount subbilling.price)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    u           subbilling.unmatched_payments;
    p           subbilling.payments;
    inv         subbilling.invoices;
    cur         text;
    zero        subbilling.price;
    remaining   subbilling.price;
    refunded    subbilling.price;
    paid_on_invoice subbilling.price;
    credit      subbilling.price;
    open_       subbilling.price;
    capacity    subbilling.price;
    from_credit subbilling.price;
    reopen      subbilling.price;
    today       date;
    rid         bigint;
BEGIN
    IF amount IS NULL THEN
        RAISE EXCEPTION 'a refund needs an amount'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF minor_units(amount) <= 0 THEN
        RAISE EXCEPTION 'refund amount % is not positive', amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- an unmatched payment goes back whole; it was never booked
    SELECT * INTO u FROM subbilling.unmatched_payments x WHERE x.id = payment_id FOR UPDATE;
    IF FOUND AND u.status <> 'matched' THEN
        IF u.status = 'refunded' THEN
            RAISE EXCEPTION 'unmatched payment % is already refunded', u.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF currency(amount) <> currency(u.amount) THEN
            RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, u.id, u.amount
                USING ERRCODE = 'data_exception';
        END IF;
        IF amount <> u.amount THEN
            RAISE EXCEPTION 'an unmatched payment is refunded whole'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Payment %s is %s; the refund asked for %s.', u.id, u.amount, amount);
        END IF;
        UPDATE subbilling.unmatched_payments x SET status = 'refunded', resolved_at = now() WHERE x.id = u.id;
        PERFORM subbilling_internal.notify_unaccounted('payment.refunded', u.id);
        RETURN u.id;
    END IF;

    SELECT * INTO p FROM subbilling.payments x WHERE x.id = payment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    cur := currency(p.amount);
    zero := price_minor(0, cur);
    IF currency(amount) <> cur THEN
        RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, p.id, p.amount
            USING ERRCODE = 'data_exception';
    END IF;
    PERFORM subbilling_internal.lock_account_credit(p.account_id);
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = p.account_id AND x.id = p.invoice_id FOR UPDATE;

    -- sums read on their own, not as subqueries inside expressions (Citus sends such a
    -- subquery to the worker without the types of the expression's other variables)
    SELECT sum(r.amount) INTO refunded FROM subbilling.refunds r
     WHERE r.account_id = p.account_id AND r.payment_id = p.id;
    remaining := p.amount - coalesce(refunded, zero);
    credit := greatest(customer_credit(p.account_id), zero);
    open_ := invoice_open_amount(p.account_id, p.invoice_id);
    -- what may go back on the invoice: what this payment paid on it (less
    -- what earlier refunds reopened), at most what is uncredited and not open
    SELECT sum(l.amount) INTO paid_on_invoice
      FROM subbilling.journal_lines l
      JOIN subbilling.journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
     WHERE e.account_id = p.account_id AND e.payment_id = p.id AND l.invoice_id = p.invoice_id;
    capacity := CASE WHEN inv.kind = 'invoice' AND inv.status IN ('open', 'paid', 'uncollectible') THEN
                    greatest(least(-coalesce(paid_on_invoice, zero),
                                   subbilling_internal.invoice_uncredited(inv) - open_), zero)
                ELSE zero END;
    from_credit := least(amount, credit);
    reopen := amount - from_credit;
    IF amount > remaining OR reopen > capacity THEN
        RAISE EXCEPTION 'refund % is more than the refundable %', amount, least(remaining, credit + capacity)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Payment %s of %s: %s not yet refunded; customer credit %s; %s may go back on invoice %s.',
                                  p.id, p.amount, remaining, credit, capacity, inv.number);
    END IF;

    today := subbilling_internal.account_today(p.account_id);
    INSERT INTO subbilling.refunds AS r (account_id, payment_id, amount, from_credit, reopened, refunded_on)
    VALUES (p.account_id, p.id, amount, from_credit, reopen, today)
    RETURNING r.id INTO rid;
    PERFORM subbilling_internal.book_entry(p.account_id, 'refund', today,
                       ARRAY[ledger_code('bank', cur), ledger_code('customer_credit', cur), ledger_code('receivables', cur)],
                       ARRAY[-amount, from_credit, reopen], p.invoice_id, p.id,
                       format('refund %s of payment %s', rid, p.id));
    IF reopen > zero AND inv.status = 'paid' THEN
        IF subbilling_internal.on_citus() THEN
            -- on Citus the invoice's trigger runs on its worker: the setting is made there, by
            -- a query on the invoice's row that Citus routes to its shard (on the connection
            -- the UPDATE then takes)
            PERFORM set_config('subbilling_internal.reopen_invoice', x.id::text, true)
               FROM subbilling.invoices x WHERE x.account_id = inv.account_id AND x.id = inv.id;
            UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
             WHERE x.account_id = inv.account_id AND x.id = inv.id;
            PERFORM set_config('subbilling_internal.reopen_invoice', '', true)
               FROM subbilling.invoices x WHERE x.account_id = inv.account_id AND x.id = inv.id;
        ELSE
            PERFORM set_config('subbilling_internal.reopen_invoice', inv.id::text, true);
            UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
             WHERE x.account_id = inv.account_id AND x.id = inv.id;
            PERFORM set_config('subbilling_internal.reopen_invoice', '', true);
        END IF;
        PERFORM subbilling_internal.emit_event(inv.account_id, 'invoice.reopened', inv.subscription_id,
            jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', cur,
                               'open_amount', (open_ + reopen)::text, 'refund_id', rid, 'payment_id', p.id),
            inv.id);
    END IF;
    PERFORM subbilling_internal.emit_event(p.account_id, 'payment.refunded', inv.subscription_id,
        jsonb_build_object('refund_id', rid, 'payment_id', p.id, 'invoice_id', p.invoice_id, 'currency', cur,
                           'amount', amount::text, 'from_credit', from_credit::text, 'reopened', reopen::text,
                           'refunded_on', today),
        p.invoice_id);
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.refund(bigint, subbilling.price) IS 'pay money back on a payment: first out of the customer credit, the rest put back on the payment''s invoice (reopening it if it was paid); bank credit; refuses more than refundable (22023); an unmatched payment goes back whole; returns the refund id (the payment id for an unmatched payment); event payment.refunded';

CREATE OR REPLACE FUNCTION subbilling.refresh_kpi_snapshots(only_marked boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp AS $$
DECLARE
    n     bigint;
    dirty bigint[];
    b     date;
BEGIN
    IF only_marked IS NULL THEN
        RAISE EXCEPTION 'only_marked must not be null' USING ERRCODE = '22004';
    END IF;
    LOCK TABLE subbilling_internal.kpi_snapshot_state IN EXCLUSIVE MODE;
    -- the queued usage into the kept per-period usage (upsell_candidates); on Citus account by
    -- account, each on its shard (sql/parts/978_citus_coverage.sql)
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed' THEN
        IF subbilling_internal.on_citus() THEN
            PERFORM subbilling_internal.kpi_usage_fold_citus();
        ELSE
            PERFORM subbilling_internal.kpi_usage_fold();
        END IF;
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- the snapshots' queries read every shard in ways Citus cannot plan yet (docs/citus.md):
        -- the fold above is all a refresh does there
        RAISE NOTICE 'the KPI snapshots are not built on Citus yet: only the usage queue was folded'
            USING HINT = 'See "Not yet working" in docs/citus.md.';
        RETURN 0;
    END IF;
    IF only_marked AND EXISTS (SELECT FROM subbilling_internal.kpi_snapshot_state z
                                WHERE z.time_zone = current_setting('TimeZone') AND NOT z.building) THEN
        -- recognition: the same for the accounts whose invoices changed
        WITH gone AS (DELETE FROM subbilling_internal.kpi_recognition_dirty d RETURNING d.account_id)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        IF dirty IS NOT NULL THEN
            INSERT INTO subbilling_internal.kpi_recognition_months AS m
            SELECT p.* FROM subbilling_internal.kpi_recognition_delta(dirty) p
            ON CONFLICT (currency, month) DO UPDATE
               SET line_months = m.line_months + excluded.line_months, billed = m.billed + excluded.billed,
                   recognised = m.recognised + excluded.recognised;
            DELETE FROM subbilling_internal.kpi_recognition_snapshot c WHERE c.account_id = ANY (dirty);
            INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
            SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
              FROM subbilling_internal.kpi_recognition_accounts c
             WHERE c.account_id = ANY (dirty);
        END IF;
        SELECT date_trunc('month', LEAST(z.computed_on, current_date))::date INTO b
          FROM subbilling_internal.kpi_snapshot_state z
         WHERE z.computed_on <> current_date;
        IF b IS NOT NULL THEN
            -- an earlier day's snapshot: the months from b on for everyone, the
            -- marked accounts whole; the month sums are the sums of the rows
            -- (the closed months' sums corrected by the marked accounts)
            LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
            WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id)
            SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
            DELETE FROM subbilling_internal.kpi_snapshot_months s WHERE s.month >= b;
            WITH r AS (
                DELETE FROM subbilling_internal.kpi_snapshot_customers c
                 WHERE c.month >= b OR c.account_id = ANY (dirty)
                RETURNING -1 AS sign, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
            )
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
    SELECT r.currency, r.month,
           sum(r.sign)::bigint, sum(r.sign * r.prev)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.cur - r.prev)) FILTER (WHERE r.prev > 0 AND r.cur > r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.prev - r.cur)) FILTER (WHERE r.cur > 0 AND r.cur < r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.prev) FILTER (WHERE r.cur = 0), 0)::bigint,
           sum(r.sign * r.cur)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev > 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur = 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur > 0), 0)::bigint,
           sum(r.sign * r.subscriptions)::bigint
      FROM r
     WHERE r.month < b
     GROUP BY r.currency, r.month
    ON CONFLICT (currency, month) DO UPDATE
       SET customer_rows = m.customer_rows + excluded.customer_rows, start_mrr = m.start_mrr + excluded.start_mrr,
           new_mrr = m.new_mrr + excluded.new_mrr, expansion_mrr = m.expansion_mrr + excluded.expansion_mrr,
           reactivation_mrr = m.reactivation_mrr + excluded.reactivation_mrr,
           contraction_mrr = m.contraction_mrr + excluded.contraction_mrr,
           churned_mrr = m.churned_mrr + excluded.churned_mrr, end_mrr = m.end_mrr + excluded.end_mrr,
           customers_start = m.customers_start + excluded.customers_start,
           new_customers = m.new_customers + excluded.new_customers,
           reactivated_customers = m.reactivated_customers + excluded.reactivated_customers,
           churned_customers = m.churned_customers + excluded.churned_customers,
           customers_end = m.customers_end + excluded.customers_end,
           subscriptions_end = m.subscriptions_end + excluded.subscriptions_end;
            WITH r AS (
                INSERT INTO subbilling_internal.kpi_snapshot_customers
                       (account_id, currency, month, cur, prev, subscriptions, first_month)
                SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
                  FROM subbilling_internal.kpi_customer_movements_recent c
                 WHERE NOT coalesce(c.account_id = ANY (dirty), false)
                UNION ALL
                SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
                  FROM subbilling_internal.kpi_customer_movements c
                 WHERE c.account_id = ANY (dirty)
                RETURNING 1 AS sign, currency, month, cur, prev, subscriptions, first_month
            ),
            s AS (
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
    SELECT r.currency, r.month,
           sum(r.sign)::bigint, sum(r.sign * r.prev)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.cur - r.prev)) FILTER (WHERE r.prev > 0 AND r.cur > r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.cur) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign * (r.prev - r.cur)) FILTER (WHERE r.cur > 0 AND r.cur < r.prev), 0)::bigint,
           coalesce(sum(r.sign * r.prev) FILTER (WHERE r.cur = 0), 0)::bigint,
           sum(r.sign * r.cur)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev > 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month = r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.prev = 0 AND r.first_month < r.month), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur = 0), 0)::bigint,
           coalesce(sum(r.sign) FILTER (WHERE r.cur > 0), 0)::bigint,
           sum(r.sign * r.subscriptions)::bigint
      FROM r
     GROUP BY r.currency, r.month
    ON CONFLICT (currency, month) DO UPDATE
       SET customer_rows = m.customer_rows + excluded.customer_rows, start_mrr = m.start_mrr + excluded.start_mrr,
           new_mrr = m.new_mrr + excluded.new_mrr, expansion_mrr = m.expansion_mrr + excluded.expansion_mrr,
           reactivation_mrr = m.reactivation_mrr + excluded.reactivation_mrr,
           contraction_mrr = m.contraction_mrr + excluded.contraction_mrr,
           churned_mrr = m.churned_mrr + excluded.churned_mrr, end_mrr = m.end_mrr + excluded.end_mrr,
           customers_start = m.customers_start + excluded.customers_start,
           new_customers = m.new_customers + excluded.new_customers,
           reactivated_customers = m.reactivated_customers + excluded.reactivated_customers,
           churned_customers = m.churned_customers + excluded.churned_customers,
           customers_end = m.customers_end + excluded.customers_end,
           subscriptions_end = m.subscriptions_end + excluded.subscriptions_end
            RETURNING 1)
            SELECT count(*) INTO n FROM r;
            UPDATE subbilling_internal.kpi_snapshot_state SET computed_on = current_date, refreshed_at = pg_catalog.now();
            RETURN n;
        END IF;
        -- one statement: the marks it claims are the ones kpi_movement_parts
        -- sees (the same snapshot), whose sums (live less snapshot rows of
        -- the marked accounts) correct the month sums
        WITH gone AS (DELETE FROM subbilling_internal.kpi_dirty_accounts d RETURNING d.account_id),
        sums AS (
            INSERT INTO subbilling_internal.kpi_snapshot_months AS m
            SELECT p.* FROM subbilling_internal.kpi_movement_parts p
            ON CONFLICT (currency, month) DO UPDATE
               SET customer_rows = m.customer_rows + excluded.customer_rows, start_mrr = m.start_mrr + excluded.start_mrr,
                   new_mrr = m.new_mrr + excluded.new_mrr, expansion_mrr = m.expansion_mrr + excluded.expansion_mrr,
                   reactivation_mrr = m.reactivation_mrr + excluded.reactivation_mrr,
                   contraction_mrr = m.contraction_mrr + excluded.contraction_mrr,
                   churned_mrr = m.churned_mrr + excluded.churned_mrr, end_mrr = m.end_mrr + excluded.end_mrr,
                   customers_start = m.customers_start + excluded.customers_start,
                   new_customers = m.new_customers + excluded.new_customers,
                   reactivated_customers = m.reactivated_customers + excluded.reactivated_customers,
                   churned_customers = m.churned_customers + excluded.churned_customers,
                   customers_end = m.customers_end + excluded.customers_end,
                   subscriptions_end = m.subscriptions_end + excluded.subscriptions_end)
        SELECT array_agg(DISTINCT gone.account_id) INTO dirty FROM gone;
        IF dirty IS NULL THEN
            RETURN 0;
        END IF;
        DELETE FROM subbilling_internal.kpi_snapshot_customers c WHERE c.account_id = ANY (dirty);
        INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
        SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
          FROM subbilling_internal.kpi_customer_movements c
         WHERE c.account_id = ANY (dirty);
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    LOCK TABLE subbilling.plans, subbilling.campaigns IN SHARE MODE;
    DELETE FROM subbilling_internal.kpi_dirty_accounts;
    DELETE FROM subbilling_internal.kpi_snapshot_customers;
    DELETE FROM subbilling_internal.kpi_snapshot_months;
    INSERT INTO subbilling_internal.kpi_snapshot_state AS z (computed_on, time_zone, building)
    VALUES (current_date, current_setting('TimeZone'), true)
    ON CONFLICT (only_row) DO UPDATE SET computed_on = excluded.computed_on, time_zone = excluded.time_zone,
                                         building = true, refreshed_at = pg_catalog.now();
    INSERT INTO subbilling_internal.kpi_snapshot_customers (account_id, currency, month, cur, prev, subscriptions, first_month)
    SELECT c.account_id, c.currency, c.month, c.cur, c.prev, c.subscriptions, c.first_month
      FROM subbilling_internal.kpi_customer_movements c;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO subbilling_internal.kpi_snapshot_months
    SELECT p.currency, p.month, p.customer_rows, p.start_mrr, p.new_mrr, p.expansion_mrr, p.reactivation_mrr,
           p.contraction_mrr, p.churned_mrr, p.end_mrr, p.customers_start, p.new_customers, p.reactivated_customers,
           p.churned_customers, p.customers_end, p.subscriptions_end
      FROM subbilling_internal.kpi_movement_parts p;
    DELETE FROM subbilling_internal.kpi_recognition_dirty;
    DELETE FROM subbilling_internal.kpi_recognition_snapshot;
    DELETE FROM subbilling_internal.kpi_recognition_months;
    INSERT INTO subbilling_internal.kpi_recognition_snapshot (account_id, currency, month, line_months, billed, recognised)
    SELECT c.account_id, c.currency, c.month, c.line_months, c.billed, c.recognised
      FROM subbilling_internal.kpi_recognition_accounts c;
    INSERT INTO subbilling_internal.kpi_recognition_months
    SELECT p.currency, p.month, p.line_months, p.billed, p.recognised
      FROM subbilling_internal.kpi_recognition_parts p;
    UPDATE subbilling_internal.kpi_snapshot_state SET building = false;
    RETURN n;
END $$;
COMMENT ON FUNCTION subbilling.refresh_kpi_snapshots(boolean) IS 'rebuilds the KPI views'' monthly snapshots as of today (daily after midnight; until then the views compute live), or with only_marked the marked accounts only (every few minutes, the worker''s kpi_refresh_interval); returns the customer rows written';

CREATE OR REPLACE FUNCTION subbilling_internal.webhook_host_allowed(host text) RETURNS boolean
    LANGUAGE sql STABLE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM subbilling.webhook_allowed_hosts a
                    WHERE a.pattern = host
                       OR (a.pattern LIKE '*.%' AND host LIKE '%' || substr(a.pattern, 2)))
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.webhook_fanout(max_events integer,
                                                   OUT events integer, OUT deliveries integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     bigint;
    last    bigint;
    evs     subbilling.events[];
BEGIN
    IF subbilling_internal.on_citus() THEN
        -- the events are read over every shard one shard at a time, so that the transaction
        -- may then write the deliveries (a reference table)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    INSERT INTO subbilling_internal.webhook_cursor (singleton, last_event_id) VALUES (true, 0)
        ON CONFLICT (singleton) DO NOTHING;
    SELECT c.last_event_id INTO cur FROM subbilling_internal.webhook_cursor c FOR UPDATE;
    SELECT coalesce(array_agg(e ORDER BY e.id), '{}') INTO evs FROM subbilling.events_after(cur, max_events) e;
    events := cardinality(evs);
    last := evs[events].id;
    INSERT INTO subbilling.webhook_deliveries (endpoint_id, account_id, event_id, event_type, next_attempt_at)
    SELECT w.id, e.account_id, e.id, e.type, pg_catalog.now()
      FROM unnest(evs) e
      JOIN subbilling.webhook_endpoints w
        ON w.active
       AND e.created_at >= w.created_at
       AND subbilling_internal.webhook_type_matches(w.event_types, e.type)
       AND NOT (e.type = 'webhook.failed' AND e.payload ->> 'endpoint_id' = w.id::text)
     ORDER BY w.id, e.id
    ON CONFLICT (endpoint_id, event_id) DO NOTHING;
    GET DIAGNOSTICS deliveries = ROW_COUNT;
    IF last IS NOT NULL THEN
        UPDATE subbilling_internal.webhook_cursor SET last_event_id = last;
    END IF;
    more := events >= max_events;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.webhook_backoff(n integer, retry_base_ms integer) RETURNS interval
    LANGUAGE sql VOLATILE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT make_interval(secs => (least(3600000.0, retry_base_ms * power(2.0, least(greatest(n, 1) - 1, 40)))
                                  * (0.5 + 0.5 * random())) / 1000.0)
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.webhook_claim(max_deliveries integer, busy bigint[],
                                                  retry_base_ms integer, max_attempts integer)
    RETURNS TABLE (delivery_id bigint, endpoint_id bigint, attempt integer, url text,
                   msg_id text, msg_timestamp bigint, body text, secrets text[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    ts      bigint := floor(extract(epoch FROM pg_catalog.clock_timestamp()))::bigint;
    n       integer := 0;
    nxt     timestamptz;
BEGIN
    FOR r IN
        SELECT d.id, d.endpoint_id AS ep, d.account_id, d.event_id, d.attempts, d.total_attempts,
               w.url AS ep_url, w.host, w.secret,
               CASE WHEN w.previous_secret_expires_at > pg_catalog.now() THEN w.previous_secret END AS prev
          FROM subbilling.webhook_endpoints w
          CROSS JOIN LATERAL (SELECT * FROM subbilling.webhook_deliveries d
                               WHERE d.endpoint_id = w.id AND d.status = 'pending'
                               ORDER BY d.event_id LIMIT 1) d
         WHERE w.active
           AND NOT (w.id = ANY (coalesce(busy, '{}')))
           AND d.next_attempt_at <= pg_catalog.now()
         ORDER BY d.next_attempt_at, d.id
    LOOP
        EXIT WHEN n >= max_deliveries;
        IF NOT subbilling_internal.webhook_host_allowed(r.host) THEN
            -- no request: a failed attempt, with the same retries as any other
            -- the next attempt's time drawn first: Citus refuses a volatile function in an
            -- UPDATE of a reference table
            SELECT pg_catalog.now() + subbilling_internal.webhook_backoff(d.attempts + 1, retry_base_ms) INTO nxt
              FROM subbilling.webhook_deliveries d WHERE d.id = r.id;
            UPDATE subbilling.webhook_deliveries d
               SET attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
                   last_attempt_at = pg_catalog.now(), next_attempt_at = nxt
             WHERE d.id = r.id;
            INSERT INTO subbilling.webhook_delivery_attempts (delivery_id, attempt, webhook_timestamp, started_at, next_attempt_at)
            VALUES (r.id, r.total_attempts + 1, ts, pg_catalog.clock_timestamp(), nxt);
            PERFORM subbilling_internal.webhook_record(r.id, r.total_attempts + 1, NULL,
                        format('host "%s" is not in subbilling.webhook_allowed_hosts; no request was made', r.host),
                        0, max_attempts);
            CONTINUE;
        END IF;
        SELECT pg_catalog.now() + subbilling_internal.webhook_backoff(d.attempts + 1, retry_base_ms) INTO nxt
          FROM subbilling.webhook_deliveries d WHERE d.id = r.id;
        UPDATE subbilling.webhook_deliveries d
           SET attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
               last_attempt_at = pg_catalog.now(), next_attempt_at = nxt
         WHERE d.id = r.id;
        INSERT INTO subbilling.webhook_delivery_attempts (delivery_id, attempt, webhook_timestamp, started_at, next_attempt_at)
        VALUES (r.id, r.total_attempts + 1, ts, pg_catalog.clock_timestamp(), nxt);
        delivery_id := r.id;
        endpoint_id := r.ep;
        attempt := r.total_attempts + 1;
        url := r.ep_url;
        msg_id := r.event_id::text;
        msg_timestamp := ts;
        SELECT to_jsonb(e)::text INTO body FROM subbilling.events e
         WHERE e.account_id = r.account_id AND e.id = r.event_id;
        secrets := CASE WHEN r.prev IS NULL THEN ARRAY[r.secret] ELSE ARRAY[r.secret, r.prev] END;
        n := n + 1;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.webhook_record(delivery_id bigint, attempt integer, status_code integer,
                                                   error text, duration_ms double precision, max_attempts integer)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    d       subbilling.webhook_deliveries;
    ok      boolean := status_code BETWEEN 200 AND 299;
    err     text := CASE WHEN status_code BETWEEN 200 AND 299 THEN NULL
                         ELSE coalesce(error, format('HTTP status %s', status_code)) END;
    fin     timestamptz;
BEGIN
    SELECT * INTO d FROM subbilling.webhook_deliveries x WHERE x.id = webhook_record.delivery_id FOR UPDATE;
    IF NOT FOUND OR d.total_attempts <> webhook_record.attempt THEN
        RETURN 'stale';     -- deleted, or attempted again meanwhile
    END IF;
    fin := pg_catalog.clock_timestamp();     -- not in the UPDATE: Citus refuses it there
    UPDATE subbilling.webhook_delivery_attempts a
       SET finished_at = fin, duration_ms = webhook_record.duration_ms,
           status_code = webhook_record.status_code, error = err,
           next_attempt_at = CASE WHEN ok OR d.attempts >= max_attempts OR d.status <> 'pending' THEN NULL
                                  ELSE d.next_attempt_at END
     WHERE a.delivery_id = d.id AND a.attempt = webhook_record.attempt;
    IF d.status <> 'pending' THEN
        RETURN d.status;
    END IF;
    IF ok THEN
        UPDATE subbilling.webhook_deliveries x
           SET status = 'succeeded', finished_at = pg_catalog.now(), next_attempt_at = NULL,
               last_status_code = webhook_record.status_code, last_error = NULL,
               last_duration_ms = webhook_record.duration_ms
         WHERE x.id = d.id;
        RETURN 'succeeded';
    END IF;
    IF d.attempts >= max_attempts THEN
        UPDATE subbilling.webhook_deliveries x
           SET status = 'failed', finished_at = pg_catalog.now(), next_attempt_at = NULL,
               last_status_code = webhook_record.status_code, last_error = err,
               last_duration_ms = webhook_record.duration_ms
         WHERE x.id = d.id;
        -- the failure of a webhook.failed delivery is not announced again
        IF d.event_type <> 'webhook.failed' THEN
            PERFORM subbilling_internal.emit_event(d.account_id, 'webhook.failed', NULL,
                jsonb_build_object('delivery_id', d.id, 'endpoint_id', d.endpoint_id,
                                   'event_id', d.event_id, 'event_type', d.event_type,
                                   'attempts', d.attempts, 'status_code', webhook_record.status_code,
                                   'error', err));
        END IF;
        RETURN 'failed';
    END IF;
    UPDATE subbilling.webhook_deliveries x
       SET last_status_code = webhook_record.status_code, last_error = err,
           last_duration_ms = webhook_record.duration_ms
     WHERE x.id = d.id;
    RETURN 'retry';
END
$$;

CREATE OR REPLACE FUNCTION subbilling.run_payment_retries(as_of date DEFAULT current_date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       record;
    n       integer := 0;
    req     subbilling.payment_requests;
    c       record;
    open_amt subbilling.price;
    inv     subbilling.invoices;
    mkind   text;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM subbilling_internal.check_date('as_of', as_of);
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the due requests are read without
        -- locks, then each is locked by (account_id, id) on its shard (skipped when another
        -- transaction holds it) and read again there
        FOR c IN SELECT x.account_id, x.id FROM subbilling.payment_requests x
                  WHERE x.next_attempt_on <= as_of
                  ORDER BY x.next_attempt_on, x.account_id, x.id LOOP
            SELECT x.account_id, x.id, x.invoice_id, i.status AS invoice_status, pm.active AS method_active
              INTO r
              FROM subbilling.payment_requests x
              JOIN subbilling.invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
              JOIN subbilling.payment_methods pm ON pm.account_id = x.account_id AND pm.id = x.payment_method_id
             WHERE x.account_id = c.account_id AND x.id = c.id AND x.next_attempt_on <= as_of
               FOR UPDATE OF x SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            open_amt := invoice_open_amount(r.account_id, r.invoice_id);
            IF r.invoice_status NOT IN ('open', 'uncollectible') OR minor_units(open_amt) <= 0 OR NOT r.method_active THEN
                UPDATE subbilling.payment_requests x SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
                 WHERE x.account_id = r.account_id AND x.id = r.id;
                CONTINUE;
            END IF;
            UPDATE subbilling.payment_requests x
               SET status = 'requested', attempt = x.attempt + 1, amount = open_amt, requested_on = as_of,
                   next_attempt_on = NULL, updated_at = now()
             WHERE x.account_id = r.account_id AND x.id = r.id
            RETURNING x.* INTO req;
            -- the payload of payment_request_payload, read here (Citus cannot plan that SQL
            -- function's parameters)
            SELECT * INTO inv FROM subbilling.invoices i WHERE i.account_id = req.account_id AND i.id = req.invoice_id;
            SELECT x.kind INTO mkind FROM subbilling.payment_methods x
             WHERE x.account_id = req.account_id AND x.id = req.payment_method_id;
            PERFORM subbilling_internal.emit_event(req.account_id, 'payment.requested', inv.subscription_id,
                jsonb_build_object('payment_request_id', req.id, 'invoice_id', req.invoice_id, 'number', inv.number,
                                   'reference', inv.reference, 'due_date', inv.due_date, 'currency', currency(req.amount),
                                   'amount', req.amount::text, 'amount_minor', minor_units(req.amount),
                                   'payment_method_id', req.payment_method_id, 'method', mkind, 'attempt', req.attempt,
                                   'requested_on', req.requested_on), req.invoice_id);
            n := n + 1;
        END LOOP;
        RETURN n;
    END IF;
    FOR r IN
        SELECT x.account_id, x.id, i.status AS invoice_status,
               invoice_open_amount(x.account_id, x.invoice_id) AS open_amount,
               pm.active AS method_active
          FROM subbilling.payment_requests x
          JOIN subbilling.invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = x.account_id AND pm.id = x.payment_method_id
         WHERE x.next_attempt_on <= as_of
         ORDER BY x.next_attempt_on, x.account_id, x.id
           FOR UPDATE OF x SKIP LOCKED
    LOOP
        IF r.invoice_status NOT IN ('open', 'uncollectible') OR minor_units(r.open_amount) <= 0 OR NOT r.method_active THEN
            UPDATE subbilling.payment_requests x SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
             WHERE x.account_id = r.account_id AND x.id = r.id;
            CONTINUE;
        END IF;
        UPDATE subbilling.payment_requests x
           SET status = 'requested', attempt = x.attempt + 1, amount = r.open_amount, requested_on = as_of,
               next_attempt_on = NULL, updated_at = now()
         WHERE x.account_id = r.account_id AND x.id = r.id
        RETURNING x.* INTO req;
        PERFORM subbilling_internal.emit_event(req.account_id, 'payment.requested',
                           (SELECT i.subscription_id FROM subbilling.invoices i
                             WHERE i.account_id = req.account_id AND i.id = req.invoice_id),
                           subbilling_internal.payment_request_payload(req), req.invoice_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
