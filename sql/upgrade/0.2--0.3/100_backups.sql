
-- ---------------------------------------------------------------------------
-- Backups: every table and sequence marked for pg_dump; shipped rows told
-- apart from an operator's (column origin); the invoice counter created by
-- series_for instead of a trigger that collides at restore.
-- ---------------------------------------------------------------------------

DROP TRIGGER invoice_series_counter ON subbilling.invoice_series;
DROP FUNCTION subbilling.invoice_series_counter();
INSERT INTO subbilling.invoice_counters (series_id)
SELECT s.id FROM subbilling.invoice_series s ON CONFLICT (series_id) DO NOTHING;

CREATE OR REPLACE FUNCTION subbilling.series_for(issue_date date) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text := to_char(issue_date, 'FMYYYY');
    sid bigint;
BEGIN
    SELECT s.id INTO sid FROM subbilling.invoice_series s
     WHERE s.code = c AND EXISTS (SELECT FROM subbilling.invoice_counters ct WHERE ct.series_id = s.id);
    IF NOT FOUND THEN
        -- created here, not by a trigger: a restore loads series and counters as dumped
        INSERT INTO subbilling.invoice_series AS s (code, prefix, description)
        VALUES (c, c || '-', format('invoices and credit notes issued in %s', c))
        ON CONFLICT (code) DO NOTHING;
        SELECT s.id INTO sid FROM subbilling.invoice_series s WHERE s.code = c;
        INSERT INTO subbilling.invoice_counters (series_id) VALUES (sid) ON CONFLICT (series_id) DO NOTHING;
    END IF;
    RETURN sid;
END
$$;
COMMENT ON FUNCTION subbilling.series_for(date) IS 'internal: the id of the number series of an issue date''s year (code YYYY), created with its counter if missing';

CREATE FUNCTION subbilling.shipped_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    keys    text;
    cols    text;
    vals    text;
    n       bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.origin = 'shipped' AND NEW.origin = 'shipped' AND ROW(NEW.*) IS DISTINCT FROM ROW(OLD.*) THEN
            NEW.origin := 'edited';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.origin IS DISTINCT FROM 'edited' THEN
        RETURN NEW;
    END IF;
    -- INSERT of an edited row (a restore): replace the shipped row of the same key
    SELECT string_agg(format('t.%1$I = ($1).%1$I', a.attname), ' AND ')
      INTO keys
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = TG_RELID AND i.indisprimary;
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('($1).%I', a.attname), ', ' ORDER BY a.attnum)
      INTO cols, vals
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attgenerated = '' AND a.attidentity = ''
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i
                        WHERE i.indrelid = TG_RELID AND i.indisprimary AND a.attnum = ANY (i.indkey));
    EXECUTE format('UPDATE %s AS t SET (%s) = ROW(%s) WHERE %s AND t.origin = ''shipped''',
                   TG_RELID::regclass, cols, vals, keys)
      USING NEW;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.shipped_row() IS 'trigger: a shipped row becomes origin edited on its first change; an inserted edited row (a restore) updates the shipped row of its key instead';
REVOKE ALL ON FUNCTION subbilling.shipped_row() FROM PUBLIC;

-- The column origin.  Rows of 0.2 whose key is a shipped key cannot be told
-- apart from an operator's change of them: they are marked edited (dumped,
-- and restored over the shipped row of the same key, with their own values);
-- the status transitions are not settings and stay shipped.
DO $shipped$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subscription_transitions', 'country_settings', 'ledger_accounts', 'ledger_mappings',
                             'payment_settings', 'reference_rates', 'dunning_policies', 'dunning_steps'] LOOP
        EXECUTE format('ALTER TABLE subbilling.%1$I ADD COLUMN origin text NOT NULL DEFAULT ''user''
                            CONSTRAINT %2$I CHECK (origin IN (''shipped'', ''user'', ''edited''))',
                       t, t || '_origin_check');
        EXECUTE format('COMMENT ON COLUMN subbilling.%I.origin IS %L', t,
                       'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)');
    END LOOP;
END
$shipped$;
SET CONSTRAINTS subbilling.dunning_steps_check_order IMMEDIATE;
UPDATE subbilling.subscription_transitions SET origin = 'shipped';
UPDATE subbilling.country_settings SET origin = 'edited' WHERE country IN ('SE', 'NO', 'DK', 'FI', 'IS');
UPDATE subbilling.ledger_accounts SET origin = 'edited'
 WHERE code IN ('1510', '1930', '2420', '2611', '2621', '2631', '3001', '3002', '3003', '3004', '3740', '3930', '6351', '8313');
UPDATE subbilling.ledger_mappings SET origin = 'edited'
 WHERE currency IS NULL
   AND (purpose, coalesce(detail, '')) IN (('receivables', ''), ('bank', ''), ('customer_credit', ''), ('revenue_rate', '25'),
                                           ('revenue_rate', '12'), ('revenue_rate', '6'), ('revenue_rate', '0'), ('vat', '25'),
                                           ('vat', '12'), ('vat', '6'), ('fees', ''), ('interest', ''), ('write_off', ''),
                                           ('rounding', ''));
UPDATE subbilling.payment_settings SET origin = 'edited';
UPDATE subbilling.reference_rates SET origin = 'edited'
 WHERE country IN ('SE', 'NO') AND lower(valid) >= '2023-01-01' AND upper(valid) <= '2026-01-01';
UPDATE subbilling.dunning_policies SET origin = 'edited' WHERE code = 'default';
UPDATE subbilling.dunning_steps SET origin = 'edited'
 WHERE policy_id = (SELECT p.id FROM subbilling.dunning_policies p WHERE p.code = 'default') AND step_no BETWEEN 1 AND 4;
DO $shipped$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subscription_transitions', 'country_settings', 'ledger_accounts', 'ledger_mappings',
                             'payment_settings', 'reference_rates', 'dunning_policies', 'dunning_steps'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON subbilling.%I
                            FOR EACH ROW EXECUTE FUNCTION subbilling.shipped_row()', t || '_shipped_row', t);
    END LOOP;
END
$shipped$;
SET CONSTRAINTS subbilling.dunning_steps_check_order DEFERRED;

-- Mark every table and sequence for pg_dump (a table that ships rows with the
-- filter); in name order, all but the ones marked where they are created.
DO $dump$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind,
               EXISTS (SELECT FROM pg_catalog.pg_trigger tg
                        WHERE tg.tgrelid = c.oid AND tg.tgname = c.relname || '_shipped_row') AS ships_rows
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                                     AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
          JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'subbilling'
         WHERE c.relkind IN ('r', 'S')
           AND NOT c.oid = ANY (coalesce(x.extconfig, '{}'))   -- marked where created, with its filter
         ORDER BY c.relkind DESC, c.relname
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r.rel, CASE WHEN r.ships_rows THEN 'WHERE origin <> ''shipped''' ELSE '' END);
    END LOOP;
END
$dump$;

-- ---------------------------------------------------------------------------
-- Smaller: ledger_code runs as the owner (operators and readers were granted it
-- but could not read the mappings); readers no longer read the worker's tables;
-- every function with a body in text pins its search_path; event retention.
-- ---------------------------------------------------------------------------
ALTER FUNCTION subbilling.ledger_code(text, text, text) SECURITY DEFINER;
REVOKE SELECT ON subbilling.worker_status, subbilling.worker_runs, subbilling.billing_errors FROM subbilling_reader;
ALTER FUNCTION subbilling.current_run_id() SET search_path = subbilling, pg_catalog, pg_temp;
ALTER FUNCTION subbilling.run_worker_cycle(timestamptz) SET search_path = subbilling, pg_catalog, pg_temp;
ALTER FUNCTION subbilling.dunning_due(date) SET search_path = subbilling, pg_catalog, pg_temp;
ALTER FUNCTION subbilling.tier(numeric, subbilling.price, subbilling.price) SET search_path = subbilling, pg_catalog, pg_temp;

-- ============================================================================
-- Retention of the event outbox.  docs/operations.md
--
-- Events are the outbox of listeners; nothing in subbilling reads old ones
-- except the dunning record, whose steps point at the event they announced
-- (dunning_actions.event_id).  purge_events deletes the events created before
-- a cutoff that no dunning step points at, in one statement.
-- ============================================================================

CREATE FUNCTION subbilling.purge_events(created_before timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   bigint;
BEGIN
    IF created_before IS NULL OR NOT isfinite(created_before) OR created_before > pg_catalog.now() THEN
        RAISE EXCEPTION 'the retention cutoff must be a time in the past'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', coalesce(created_before::text, 'NULL')),
                  HINT = 'For example purge_events(now() - interval ''90 days'').';
    END IF;
    DELETE FROM subbilling.events e
     WHERE e.created_at < created_before
       AND NOT EXISTS (SELECT FROM subbilling.dunning_actions d
                        WHERE d.account_id = e.account_id AND d.event_id = e.id);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.purge_events(timestamptz) IS
    'event retention: delete the events created before a cutoff (in the past) that no dunning step points at; returns how many were deleted';
REVOKE ALL ON FUNCTION subbilling.purge_events(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.purge_events(timestamptz) TO subbilling_operator;
