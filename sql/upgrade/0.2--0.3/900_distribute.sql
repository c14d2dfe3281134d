-- distribute(): an installed subbilling turned into Citus tables (docs/citus.md); new in 0.3.

-- ============================================================================
-- distribute(): an installed subbilling turned into Citus tables, by account.
-- docs/citus.md
--
-- accounts is distributed by its id; every customer table (account_id NOT
-- NULL, its primary key including account_id) by account_id, colocated with
-- accounts.  Catalog, settings and the other global tables become reference
-- tables.  Tables keyed by a bank's own identifier (direct-debit mandates and
-- claims) and the webhook deliveries stay on the coordinator, without their
-- foreign keys into the distributed tables.  Only the foreign keys of the distributed tables are
        -- put back (limit: the reference tables' ones are not, docs/citus.md).  Foreign keys are dropped before
-- the conversion and put back after it (Citus converts a table only once the
-- tables it refers to are converted, and payments and payment requests refer
-- to each other).  Nothing here runs on a single server unless it is called.
-- ============================================================================

CREATE FUNCTION subbilling.distribute(shard_count integer DEFAULT 32)
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
    END IF;

    RETURN QUERY SELECT p.rel, p.how FROM pg_temp.subbilling_distribute_plan p ORDER BY p.how, p.rel::text;
END
$fn$;
COMMENT ON FUNCTION subbilling.distribute(integer) IS 'turn an installed subbilling without customer data into Citus tables (accounts and customer tables distributed by account, colocated; catalog and settings as reference tables); call on the coordinator as a superuser; idempotent';
-- a superuser's operation: operators may call it and are told so (42501), PUBLIC may not
REVOKE ALL ON FUNCTION subbilling.distribute(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.distribute(integer) TO subbilling_operator;

-- Citus: functions changed so that they run on a distributed database (the same results on one
-- server): account_balance in plpgsql, subscribe's campaign discount with CASE WHEN, the billing
-- batch claiming by (account_id, id) on Citus.

CREATE OR REPLACE FUNCTION subbilling.account_balance(account_id bigint) RETURNS subbilling.price
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
-- plpgsql: each statement goes to the account's shard on Citus, which cannot plan a SQL
-- function's parameters
DECLARE
    cur     text;
    bal     subbilling.price;
BEGIN
    SELECT a.currency INTO cur FROM subbilling.accounts a WHERE a.id = account_balance.account_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT sum(l.amount) INTO bal FROM subbilling.journal_lines l
     WHERE l.account_id = account_balance.account_id AND l.subledger IS NOT NULL;
    RETURN coalesce(bal, price_minor(0, cur));
END
$$;

CREATE OR REPLACE FUNCTION subbilling.subscribe(account_id bigint, plan_code text, quantity integer DEFAULT 1,
                                     start_date date DEFAULT CURRENT_DATE, campaign_code text DEFAULT NULL,
                                     trial_days integer DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a       subbilling.accounts;
    p       subbilling.plans;
    c       subbilling.campaigns;
    s       subbilling.subscriptions;
    item    subbilling.subscription_items;
    ndays   integer;
    t_end   date;
BEGIN
    PERFORM subbilling_internal.check_quantity(subscribe.quantity);
    PERFORM subbilling_internal.check_date('start_date', subscribe.start_date);
    IF subscribe.trial_days < 0 OR subscribe.trial_days > 3650 THEN
        RAISE EXCEPTION 'trial_days must be between 0 and 3650'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', subscribe.trial_days);
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = subscribe.account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(subscribe.account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    p := subbilling_internal.plan_by_code(subscribe.plan_code);
    s.id := NULL;
    s.currency := a.currency;
    PERFORM subbilling_internal.check_plan_fits(s, p, 'base');

    IF subscribe.campaign_code IS NOT NULL THEN
        SELECT * INTO c FROM subbilling.campaigns x WHERE x.code = subscribe.campaign_code FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown campaign code "%"', subscribe.campaign_code
                USING ERRCODE = 'undefined_object';
        END IF;
        IF NOT c.active OR NOT c.valid @> subscribe.start_date THEN
            RAISE EXCEPTION 'campaign "%" is not valid on %', c.code, subscribe.start_date
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = CASE WHEN c.active THEN format('It is valid %s.', c.valid) ELSE 'It is not active.' END;
        END IF;
        IF c.plan_codes IS NOT NULL AND NOT p.code = ANY (c.plan_codes) THEN
            RAISE EXCEPTION 'campaign "%" does not apply to plan "%"', c.code, p.code
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('It applies to %s.', array_to_string(c.plan_codes, ', '));
        END IF;
        IF c.amount_off IS NOT NULL AND currency(c.amount_off) <> a.currency THEN
            RAISE EXCEPTION 'campaign "%" takes off %, but the account bills in %', c.code, c.amount_off, a.currency
                USING ERRCODE = 'data_exception';
        END IF;
        IF c.times_redeemed >= c.max_redemptions THEN
            RAISE EXCEPTION 'campaign "%" has been redeemed all % times', c.code, c.max_redemptions
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;

    ndays := coalesce(subscribe.trial_days, p.trial_days);
    IF ndays > 0 THEN
        t_end := subscribe.start_date + ndays;
    END IF;

    INSERT INTO subbilling.subscriptions AS x
           (account_id, status, currency, start_date, trial_end, billing_anchor)
    VALUES (a.id, CASE WHEN t_end > current_date THEN 'trialing' ELSE 'active' END,
            a.currency, subscribe.start_date, t_end, coalesce(t_end, subscribe.start_date))
    RETURNING x.* INTO s;

    INSERT INTO subbilling.subscription_items AS i
           (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
    VALUES (a.id, s.id, p.id, 'base', subscribe.quantity, daterange(subscribe.start_date, NULL), 'subscribe')
    RETURNING i.* INTO item;

    IF c.id IS NOT NULL THEN
        UPDATE subbilling.campaigns x SET times_redeemed = x.times_redeemed + 1 WHERE x.id = c.id;
        INSERT INTO subbilling.subscription_discounts
               (account_id, subscription_id, campaign_id, percent_off, amount_off, periods, starts_on)
        VALUES (a.id, s.id, c.id, c.percent_off, c.amount_off,
                CASE WHEN c.duration = 'once' THEN 1 WHEN c.duration = 'repeating' THEN c.duration_periods END,
                s.billing_anchor);
    END IF;

    PERFORM subbilling_internal.emit_event(a.id, 'subscription.created', s.id,
        jsonb_build_object('status', s.status, 'currency', s.currency,
                           'start_date', s.start_date, 'trial_end', s.trial_end,
                           'billing_anchor', s.billing_anchor, 'campaign', c.code)
        || jsonb_build_object('item', subbilling_internal.item_json(item), 'setup_fee', p.setup_fee::text));
    RETURN s.id;
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
    on_citus boolean := EXISTS (SELECT FROM pg_catalog.pg_extension x WHERE x.extname = 'citus');
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
        -- one connection per node: the batch writes reference tables (invoice series)
        -- after reading the distributed ones
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
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
        IF NOT on_citus THEN
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
        ELSE
            -- Citus locks rows only by their account: the due subscriptions are read
            -- without locks, then claimed one by one by (account_id, id), skipping the
            -- ones held elsewhere or billed meanwhile (docs/citus.md)
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
                       AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                     ORDER BY s.next_bill_on, s.account_id, s.id
                     LIMIT bill_batch.batch_size) c;
            n := 0;
            FOR k IN 1 .. coalesce(cardinality(sid), 0) LOOP
                PERFORM FROM subbilling.subscriptions x
                  WHERE x.account_id = acc[k] AND x.id = sid[k] AND x.next_bill_on = nbo[k]
                    FOR UPDATE SKIP LOCKED;
                IF FOUND THEN
                    n := n + 1;
                    acc[n] := acc[k]; sid[n] := sid[k]; ad[n] := ad[k]; nbo[n] := nbo[k];
                END IF;
            END LOOP;
            acc := acc[1:n]; sid := sid[1:n]; ad := ad[1:n]; nbo := nbo[1:n];
            IF n = 0 THEN
                more := false;
                EXIT;
            END IF;
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

-- Citus: a subscription or an invoice named by its id alone is locked by (account_id, id).

CREATE OR REPLACE FUNCTION subbilling_internal.subscription_for_update(subscription_id bigint) RETURNS subbilling.subscriptions
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    s   subbilling.subscriptions;
    acc bigint;
BEGIN
    -- the account first, then the row locked by (account_id, id): on Citus a row is locked
    -- on its account's shard only
    SELECT x.account_id INTO acc FROM subbilling.subscriptions x WHERE x.id = subscription_for_update.subscription_id;
    SELECT * INTO s FROM subbilling.subscriptions x
     WHERE x.account_id = acc AND x.id = subscription_for_update.subscription_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END
$$;

CREATE OR REPLACE FUNCTION subbilling_internal.invoice_for_update(invoice_id bigint) RETURNS subbilling.invoices
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    i   subbilling.invoices;
    acc bigint;
BEGIN
    -- the account first, then the row locked by (account_id, id): on Citus a row is locked
    -- on its account's shard only
    SELECT x.account_id INTO acc FROM subbilling.invoices x WHERE x.id = invoice_for_update.invoice_id;
    SELECT * INTO i FROM subbilling.invoices x
     WHERE x.account_id = acc AND x.id = invoice_for_update.invoice_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', coalesce(invoice_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN i;
END
$$;

-- Citus: the status of a subscription on a date in plpgsql.

CREATE OR REPLACE FUNCTION subbilling_internal.status_on(s subbilling.subscriptions, as_of date) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
-- plpgsql: the query goes to the account's shard on Citus, which cannot plan a SQL
-- function's parameters
BEGIN
    RETURN CASE
        WHEN as_of < s.start_date THEN NULL
        WHEN s.cancel_at <= as_of THEN 'canceled'
        WHEN s.status IN ('past_due', 'suspended') THEN s.status
        WHEN EXISTS (SELECT 1 FROM subbilling.subscription_pauses p
                      WHERE p.account_id = s.account_id AND p.subscription_id = s.id
                        AND p.during @> as_of) THEN 'paused'
        WHEN s.trial_end > as_of THEN 'trialing'
        ELSE 'active'
    END;
END
$$;

-- Citus: the base item in effect on a date in plpgsql.

CREATE OR REPLACE FUNCTION subbilling_internal.base_item_on(s subbilling.subscriptions, d date) RETURNS subbilling.subscription_items
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
-- plpgsql: the query goes to the account's shard on Citus, which cannot plan a SQL
-- function's parameters
DECLARE
    it  subbilling.subscription_items;
BEGIN
    SELECT i.* INTO it
      FROM subbilling.subscription_items i
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id
       AND i.kind = 'base' AND i.voided_at IS NULL
     ORDER BY i.validity @> d DESC, lower(i.validity) DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN it;
END
$$;
