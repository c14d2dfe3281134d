-- Delegated billing on Citus (docs/citus.md, sql/parts/985_citus_billing.sql); new in 0.3.
-- The billing of a shard's accounts runs on the shard's worker (bill_accounts_citus), with
-- invoice, journal-entry and event ids drawn on the coordinator and handed down as pools.
-- (999_refresh re-creates the functions as sql/parts defines them.)

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
-- ascending, comma-separated ('+' alone: a pool used up).
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
-- transaction-local setting: a rolled-back subtransaction gives its ids back.
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
BEGIN
    IF p IS NULL OR p = '' THEN
        RETURN nextval(format('subbilling.%I', pool || '_id_seq')::regclass);
    END IF;
    p := substr(p, 2);
    IF p = '' THEN
        RAISE EXCEPTION 'the % ids handed to this billing call are used up', pool
            USING ERRCODE = 'internal_error';
    END IF;
    k := position(',' IN p);
    head := CASE WHEN k = 0 THEN p ELSE left(p, k - 1) END;
    rest := CASE WHEN k = 0 THEN '' ELSE substr(p, k + 1) END;
    lo := split_part(head, '-', 1)::bigint;
    hi := split_part(head, '-', 2)::bigint;
    IF lo < hi THEN
        rest := (lo + 1) || '-' || hi || CASE WHEN rest = '' THEN '' ELSE ',' || rest END;
    END IF;
    PERFORM set_config(name, '+' || rest, true);
    RETURN lo;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_take_id(text) IS 'internal (Citus): the next id of a pool handed down by the coordinator (setting subbilling_internal.ids_<pool>), else nextval of subbilling.<pool>_id_seq';
REVOKE ALL ON FUNCTION subbilling_internal.citus_take_id(text) FROM PUBLIC;

-- emit_event for the account-by-account billing: with an events pool (a delegated call)
-- the row is written with an id of the pool and announced by the coordinator after the
-- call (which also holds the outbox slot); without one it is emit_event.
CREATE FUNCTION subbilling_internal.citus_emit_event(account_id bigint, type text, subscription_id bigint,
                                                     payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    eid     bigint;
BEGIN
    IF coalesce(current_setting('subbilling_internal.ids_events', true), '') = '' THEN
        RETURN subbilling_internal.emit_event(account_id, type, subscription_id, payload, invoice_id);
    END IF;
    eid := subbilling_internal.citus_take_id('events');
    INSERT INTO subbilling.events (account_id, id, type, subscription_id, invoice_id, payload)
    VALUES (citus_emit_event.account_id, eid, citus_emit_event.type, citus_emit_event.subscription_id,
            citus_emit_event.invoice_id, coalesce(citus_emit_event.payload, '{}'));
    RETURN eid;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal (Citus): emit_event, or with an events pool (delegated billing) the event row with an id of the pool, announced by the coordinator';
REVOKE ALL ON FUNCTION subbilling_internal.citus_emit_event(bigint, text, bigint, jsonb, bigint) FROM PUBLIC;

-- The billing of a group of accounts that live in one shard, run on the worker that holds
-- the shard (bill_batch_citus calls it in a query routed to that shard; distribute()
-- registers it for delegation by account, colocated with accounts): each account's due
-- subscriptions are claimed by (account_id, id) with SKIP LOCKED, skipping the ones held
-- elsewhere or billed meanwhile, and billed in a subtransaction of their own, falling back
-- to one subscription at a time (billing_errors), as on a single server.  Every statement
-- works on the group's shard alone and runs there locally.  Invoice numbers continue the
-- batch's blocks (next_numbers); invoice, journal-entry and event ids come from the pools
-- the coordinator drew.  Returns invoices, errors, subscriptions claimed, then the next
-- number of each series.
CREATE FUNCTION subbilling_internal.bill_accounts_citus(acct bigint, account_ids bigint[], subscription_ids bigint[],
                                                        as_of_dates date[], as_of timestamptz, run_id bigint,
                                                        series_ids bigint[], next_numbers bigint[],
                                                        invoice_pool text, entry_pool text, event_pool text)
    RETURNS bigint[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    nxt     bigint[] := next_numbers;
    nxt_try bigint[];
    got     bigint[];
    a_sid   bigint[];
    a_ad    date[];
    k       bigint;
    invoices integer := 0;
    errors  integer := 0;
    claimed integer := 0;
    st      text;
    msg     text;
    det     text;
BEGIN
    PERFORM set_config('subbilling_internal.ids_invoices', invoice_pool, true),
            set_config('subbilling_internal.ids_journal_entries', entry_pool, true),
            set_config('subbilling_internal.ids_events', event_pool, true);
    FOR k IN SELECT DISTINCT x FROM unnest(account_ids) x ORDER BY x LOOP
        -- claim the account's due subscriptions of the batch
        a_sid := ARRAY(SELECT u.sid FROM unnest(account_ids, subscription_ids) AS u(acc, sid) WHERE u.acc = k);
        SELECT array_agg(x.id ORDER BY x.id) INTO a_sid
          FROM (SELECT x.id FROM subbilling.subscriptions x
                 WHERE x.account_id = k AND x.id = ANY (a_sid)
                   AND x.next_bill_on <= (bill_accounts_citus.as_of AT TIME ZONE 'UTC')::date + 1
                   FOR UPDATE SKIP LOCKED) x;
        CONTINUE WHEN a_sid IS NULL;
        a_ad := ARRAY(SELECT b.ad FROM unnest(account_ids, subscription_ids, as_of_dates) AS b(acc, sid, ad)
                       WHERE b.acc = k AND b.sid = ANY (a_sid) ORDER BY b.sid);
        claimed := claimed + cardinality(a_sid);
        BEGIN
            SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
              FROM subbilling_internal.bill_account_citus(k, a_sid, a_ad, bill_accounts_citus.as_of, series_ids, nxt) r;
            UPDATE subbilling.billing_errors e SET resolved_at = now()
             WHERE e.account_id = k AND e.subscription_id = ANY (a_sid) AND e.resolved_at IS NULL;
            nxt := nxt_try;
            invoices := invoices + cardinality(got);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR j IN 1 .. cardinality(a_sid) LOOP
                BEGIN
                    SELECT r.next_numbers, r.invoice_ids INTO STRICT nxt_try, got
                      FROM subbilling_internal.bill_account_citus(k, ARRAY[a_sid[j]], ARRAY[a_ad[j]], bill_accounts_citus.as_of,
                                                                  series_ids, nxt) r;
                    UPDATE subbilling.billing_errors e SET resolved_at = now()
                     WHERE e.account_id = k AND e.subscription_id = a_sid[j] AND e.resolved_at IS NULL;
                    nxt := nxt_try;
                    invoices := invoices + cardinality(got);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (k, a_sid[j], bill_accounts_citus.run_id, bill_accounts_citus.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = a_ad[j] + 1
                     WHERE x.account_id = k AND x.id = a_sid[j];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
    END LOOP;
    PERFORM set_config('subbilling_internal.ids_invoices', '', true),
            set_config('subbilling_internal.ids_journal_entries', '', true),
            set_config('subbilling_internal.ids_events', '', true);
    RETURN ARRAY[invoices, errors, claimed]::bigint[] || nxt;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) IS 'internal (Citus): bill the claimed due subscriptions of a group of accounts of one shard, on the shard''s worker (delegated by account): claim by (account_id, id) with SKIP LOCKED, a subtransaction per account; ids from the coordinator''s pools; returns invoices, errors, claimed, next numbers';
REVOKE ALL ON FUNCTION subbilling_internal.bill_accounts_citus(bigint, bigint[], bigint[], date[], timestamptz, bigint, bigint[], bigint[], text, text, text) FROM PUBLIC;


