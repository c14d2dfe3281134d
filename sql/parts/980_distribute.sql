
-- ============================================================================
-- distribute(): an installed subbilling turned into Citus tables, by account.
-- docs/citus.md
--
-- accounts is distributed by its id; every customer table (account_id NOT
-- NULL, its primary key including account_id) by account_id, colocated with
-- accounts.  Catalog, settings and the other global tables become reference
-- tables.  Tables keyed by a bank's own identifier (direct-debit mandates and
-- claims) and the webhook deliveries become reference tables, without their
-- foreign keys into the distributed tables (Citus has none from a reference
-- table to a distributed one); every other foreign key is put back.  The
-- external-id lookup is distributed by the external id.  Foreign keys are dropped before
-- the conversion and put back after it (Citus converts a table only once the
-- tables it refers to are converted, and payments and payment requests refer
-- to each other).  Nothing here runs on a single server unless it is called.
-- ============================================================================

-- Runs one command on every worker node with DDL propagation off (a worker refuses DDL on
-- the extension's objects otherwise) and raises if any worker refuses it:
-- run_command_on_workers only reports a failure.  distribute() runs every command it
-- sends to the workers through it.  The command goes as one statement (a DO block that turns
-- propagation off and EXECUTEs it): run_command_on_workers reports only the first result of
-- a string of several statements, so a refusal of the second would pass unseen.
CREATE FUNCTION subbilling_internal.run_on_workers(command text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    failed  text;
BEGIN
    EXECUTE $q$SELECT string_agg(w.nodename || ':' || w.nodeport || ': ' || w.result, '; ' ORDER BY w.nodename, w.nodeport)
                 FROM pg_catalog.run_command_on_workers($1) w WHERE NOT w.success$q$
       INTO failed
      USING format('DO $subbilling_run$BEGIN PERFORM pg_catalog.set_config(%L, %L, true); EXECUTE %L; END$subbilling_run$',
                   'citus.enable_ddl_propagation', 'off', command);
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'a worker node refused a command of distribute()'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Command: %s; refused by %s', command, failed);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.run_on_workers(text) IS 'internal (Citus): run a command on every worker node with DDL propagation off; raises 55000 if any worker refuses it';
REVOKE ALL ON FUNCTION subbilling_internal.run_on_workers(text) FROM PUBLIC;

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
    trgs        text[] := '{}';
    kept_local  regclass[];
    distributed regclass[];
    referenced  regclass[];
    ddl         text;
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
                -- the external-id lookup, distributed by the external id
                WHEN c.oid = 'subbilling_internal.account_external_ids'::regclass THEN 'distributed'
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
        -- keys into the distributed tables; all the other foreign keys are put back.
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
            PERFORM subbilling_internal.run_on_workers(
                        format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname));
            IF fk.src_how <> 'distributed' AND fk.dst_how = 'distributed' THEN
                -- Citus keeps no foreign key from a reference table to a distributed one
                RAISE NOTICE 'foreign key % of % is not kept on Citus', fk.conname, fk.rel;
            ELSE
                fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.conname, fk.def);
            END IF;
        END LOOP;
        UPDATE pg_temp.subbilling_distribute_plan p SET how = 'reference' WHERE p.how = 'local';
        -- A deferred constraint trigger of a reference table (the order of dunning steps) would
        -- leave events of the copied rows pending on every node until commit, and no foreign
        -- key can be added to a table with pending trigger events: such triggers are dropped
        -- for the conversion (here and on the workers' copies) and created again after it.
        FOR fk IN
            SELECT tg.tgrelid::regclass AS rel, tg.tgname, pg_catalog.pg_get_triggerdef(tg.oid) AS def
              FROM pg_catalog.pg_trigger tg
              JOIN pg_temp.subbilling_distribute_plan p ON p.rel = tg.tgrelid AND p.how = 'reference'
             WHERE tg.tgconstraint <> 0 AND NOT tg.tgisinternal AND tg.tgdeferrable
             ORDER BY 1, 2
        LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', fk.tgname, fk.rel);
            PERFORM subbilling_internal.run_on_workers(format('DROP TRIGGER IF EXISTS %I ON %s', fk.tgname, fk.rel));
            trgs := trgs || fk.def;
        END LOOP;

        -- a UNIQUE without the distribution column cannot be kept: accounts' external ids
        -- become indexed there, and unique in account_external_ids (docs/citus.md)
        ALTER TABLE subbilling.accounts DROP CONSTRAINT IF EXISTS accounts_external_id_key;
        CREATE INDEX IF NOT EXISTS accounts_external_id_idx ON subbilling.accounts (external_id);
        -- account_external_ids (distributed by the external id) keeps them unique across the
        -- cluster, written by set_account_external_id; this trigger refuses other writes
        CREATE TRIGGER accounts_external_id
            BEFORE INSERT OR UPDATE OF external_id ON subbilling.accounts
            FOR EACH ROW EXECUTE FUNCTION subbilling_internal.accounts_external_id();

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
                    PERFORM subbilling_internal.run_on_workers(
                                format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.rel, fk.conname));
                    fks := fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.rel, fk.conname, fk.def);
                END LOOP;
                CONTINUE;
            END IF;
            IF r.how = 'reference' THEN
                EXECUTE format('SELECT create_reference_table(%L)', r.rel);
            ELSIF r.rel = 'subbilling_internal.account_external_ids'::regclass THEN
                EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L, shard_count => %s)',
                               r.rel, 'external_id', 'none', shard_count);
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
        FOR i IN 1 .. coalesce(array_length(trgs, 1), 0) LOOP
            EXECUTE trgs[i];
        END LOOP;
        -- SQL functions whose queries Citus cannot plan get their plpgsql bodies
        -- (subbilling_internal.citus_*), here and on the workers
        FOR fk IN
            SELECT v.src, v.dst,
                   regexp_replace(pg_catalog.pg_get_functiondef(v.src::regprocedure),
                                  '^CREATE OR REPLACE FUNCTION subbilling_internal\.citus_[a-z_]+\(',
                                  'CREATE OR REPLACE FUNCTION ' || v.dst || '(') AS def
              FROM (VALUES ('subbilling_internal.citus_invoice_open_amount(bigint,bigint)', 'subbilling.invoice_open_amount'),
                           ('subbilling_internal.citus_customer_credit(bigint)', 'subbilling.customer_credit'),
                           ('subbilling_internal.citus_invoice_uncredited(subbilling.invoices)', 'subbilling_internal.invoice_uncredited'),
                           ('subbilling_internal.citus_invoice_parties(subbilling.invoices)', 'subbilling_internal.invoice_parties'),
                           ('subbilling_internal.citus_document_lines(subbilling.invoices,boolean)', 'subbilling_internal.document_lines'),
                           ('subbilling_internal.citus_delivery_schedule(date,date,bigint)', 'subbilling_internal.delivery_schedule')) AS v(src, dst)
        LOOP
            EXECUTE fk.def;
            PERFORM subbilling_internal.run_on_workers(fk.def);
        END LOOP;
        -- triggers run on the shards (they touch their own table's rows of one account)
        EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
        -- billing, payments, dunning: the billing engine runs on the account's shard, and
        -- the functions it calls there read reference tables (tax rules, exchange rates)
        EXECUTE format('ALTER DATABASE %I SET citus.allow_nested_distributed_execution = on', current_database());
    END IF;

    -- ---------------------------------------------------------------- delegated billing
    -- (sql/parts/985_citus_billing.sql; each call, so that a worker added since gets it too)
    -- Ids drawn on a worker: CREATE EXTENSION made the extension's sequences on each worker,
    -- starting at 1 as on the coordinator, and Citus gives node ranges only to the
    -- sequences it creates itself.  Each worker's bigint sequences get a range of their own,
    -- from its group id shifted by 48 bits (the coordinator, group 0, keeps 1 to 2^48 - 1),
    -- so that a row inserted on a worker (an invoice line of the delegated billing) never
    -- takes an id that the coordinator or another worker hands out.
    EXECUTE format('SELECT string_agg(w.nodeport || '': '' || w.result, ''; '') FROM run_command_on_workers(%L) w WHERE NOT w.success',
                   $w$DO $d$
DECLARE
    g   bigint := (SELECT l.groupid FROM pg_catalog.pg_dist_local_group l);
    r   record;
BEGIN
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    FOR r IN SELECT s.seqrelid::regclass AS seq
               FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
              WHERE c.relnamespace IN ('subbilling'::regnamespace, 'subbilling_internal'::regnamespace)
                AND s.seqtypid = 'pg_catalog.int8'::regtype AND g > 0 AND s.seqmin < (g << 48)
              ORDER BY 1 LOOP
        EXECUTE format('ALTER SEQUENCE %s MINVALUE %s MAXVALUE %s START WITH %s RESTART WITH %s',
                       r.seq, (g << 48) + 1, ((g + 1) << 48) - 1, (g << 48) + 1, (g << 48) + 1);
    END LOOP;
END
$d$$w$) INTO fk;
    IF fk.string_agg IS NOT NULL THEN
        RAISE EXCEPTION 'could not give the workers'' sequences ranges of their own'
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = fk.string_agg;
    END IF;
    -- The billing and the dunning of a shard's accounts run on the shard's worker: registered
    -- for delegation by account (their first argument), colocated with accounts.
    FOR r IN SELECT f::regprocedure AS f FROM unnest(ARRAY[
                 'subbilling_internal.bill_accounts_citus(bigint,bigint[],bigint[],date[],timestamptz,bigint,bigint[],bigint[],text,text,text)',
                 'subbilling_internal.dunning_accounts_citus(bigint,bigint[],bigint[],date,bigint,bigint[],bigint[],text,text,text)']) f LOOP
        EXECUTE $q$SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_object o
                                   WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = $1
                                     AND o.distribution_argument_index IS NOT NULL)$q$ INTO citus USING r.f;
        IF NOT citus THEN
            PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
            EXECUTE $q$SELECT create_distributed_function($1, 'acct', colocate_with := 'subbilling.accounts')$q$
              USING r.f;
        END IF;
    END LOOP;

    -- The MRR views' live part on Citus (sql/parts/977_citus_kpis.sql): kpi_movement_parts gets
    -- the body of citus_kpi_movement_parts (each call: an extension update puts back the single
    -- server's), on the coordinator, where the views are read; not propagated to the workers.
    ddl := pg_catalog.current_setting('citus.enable_ddl_propagation');
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    EXECUTE 'CREATE OR REPLACE VIEW subbilling_internal.kpi_movement_parts WITH (security_barrier) AS '
            || pg_catalog.pg_get_viewdef('subbilling_internal.citus_kpi_movement_parts'::pg_catalog.regclass);
    -- The KPI views for their readers: Citus plans a view's query on the shards (and on the
    -- coordinator's copies of the reference tables) as the session's user, and the reader and
    -- operator have no way into subbilling_internal, where the tables the views read live.
    -- Each KPI view's query becomes a view of its own in subbilling_internal
    -- (citus_<view>_q), read by a SECURITY DEFINER function (citus_<view>_rows, executable
    -- by the roles that may read the view), and the view reads the function: its query runs
    -- as the extension's owner, and the readers see what the view shows them on one server,
    -- nothing more.  A view already reading its function is left as it is (a second call);
    -- one that an extension update put back is wrapped again.  The new objects are made
    -- members of the extension.
    FOR r IN SELECT c.oid::pg_catalog.regclass AS v, x.q, x.fn,
                    -- the view's query, or Citus's version of it where the extension has one
                    -- (subbilling_internal.citus_<view>, as for ar_aging: 977_citus_kpis.sql)
                    coalesce(pg_catalog.to_regclass('subbilling_internal.citus_' || c.relname), c.oid::pg_catalog.regclass) AS src
               FROM pg_catalog.pg_class c,
                    LATERAL (SELECT 'citus_' || c.relname || '_q' AS q, 'citus_' || c.relname || '_rows' AS fn) x
              WHERE c.relnamespace = 'subbilling'::pg_catalog.regnamespace AND c.relkind = 'v'
                AND c.relname IN ('kpi_mrr', 'kpi_mrr_movements', 'kpi_churn', 'kpi_ltv', 'kpi_growth',
                                  'kpi_snapshot_status', 'ar_aging', 'upsell_candidates', 'revenue_recognition')
                AND pg_catalog.pg_get_viewdef(c.oid) !~ (x.fn || '\(')
              ORDER BY c.relname LOOP
        IF pg_catalog.to_regprocedure(format('subbilling_internal.%I()', r.fn)) IS NOT NULL THEN
            EXECUTE format('ALTER EXTENSION subbilling DROP FUNCTION subbilling_internal.%I()', r.fn);
            EXECUTE format('DROP FUNCTION subbilling_internal.%I()', r.fn);
        END IF;
        IF pg_catalog.to_regclass(format('subbilling_internal.%I', r.q)) IS NOT NULL THEN
            EXECUTE format('ALTER EXTENSION subbilling DROP VIEW subbilling_internal.%I', r.q);
            EXECUTE format('DROP VIEW subbilling_internal.%I', r.q);
        END IF;
        EXECUTE format('CREATE VIEW subbilling_internal.%I WITH (security_barrier) AS %s',
                       r.q, pg_catalog.pg_get_viewdef(r.src));
        EXECUTE format('REVOKE ALL ON subbilling_internal.%I FROM PUBLIC', r.q);
        EXECUTE format($q$CREATE FUNCTION subbilling_internal.%1$I() RETURNS SETOF subbilling_internal.%2$I
                            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = subbilling, pg_catalog, pg_temp
                            AS 'SELECT * FROM subbilling_internal.%2$I'$q$, r.fn, r.q);
        EXECUTE format('REVOKE ALL ON FUNCTION subbilling_internal.%I() FROM PUBLIC', r.fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION subbilling_internal.%I() TO subbilling_reader, subbilling_operator', r.fn);
        EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_barrier) AS SELECT * FROM subbilling_internal.%I()',
                       r.v, r.fn);
        EXECUTE format('ALTER EXTENSION subbilling ADD VIEW subbilling_internal.%I', r.q);
        EXECUTE format('ALTER EXTENSION subbilling ADD FUNCTION subbilling_internal.%I()', r.fn);
    END LOOP;
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', ddl, true);

    -- the tables kept off the account's node are reference tables (a second call, which
    -- converts nothing, returns the placements of the first)
    UPDATE pg_temp.subbilling_distribute_plan p SET how = 'reference' WHERE p.how = 'local';
    RETURN QUERY SELECT p.rel, p.how FROM pg_temp.subbilling_distribute_plan p ORDER BY p.how, p.rel::text;
END
$fn$;
COMMENT ON FUNCTION subbilling.distribute(integer) IS 'turn an installed subbilling without customer data into Citus tables (accounts and customer tables distributed by account, colocated; catalog and settings as reference tables); call on the coordinator as a superuser; idempotent';
-- a superuser's operation: operators may call it and are told so (42501), PUBLIC may not
REVOKE ALL ON FUNCTION subbilling.distribute(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.distribute(integer) TO subbilling_operator;
