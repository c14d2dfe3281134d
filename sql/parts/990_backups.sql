
-- ============================================================================
-- Backups: what pg_dump writes of the extension's tables.  docs/operations.md
--
-- The objects of an extension are not dumped (CREATE EXTENSION recreates them);
-- the rows of its tables and the values of its sequences are dumped only for
-- tables and sequences marked with pg_extension_config_dump.  Every table and
-- every sequence (identity sequences included) of the schema is marked.
--
-- Tables that ship rows (the status transitions, country settings, chart of
-- accounts, ledger mappings, payment settings, reference rates, the default
-- dunning policy and its steps) have a column origin: 'shipped' for a row as
-- installed, 'user' for a row an operator added, 'edited' for a shipped row an
-- operator changed (set by a trigger on the first change).  Only user and
-- edited rows are dumped (filter WHERE origin <> 'shipped'): the shipped rows
-- come from CREATE EXTENSION.  At restore an edited row arrives as an INSERT
-- whose key the fresh install already holds as a shipped row; the same trigger
-- turns it into an UPDATE of that row, so the operator's values win.
-- ============================================================================

-- Mark a shipped row edited on its first change; at restore (an INSERT of an
-- edited row whose key exists as a shipped row) update the shipped row instead.
CREATE FUNCTION subbilling_internal.shipped_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    keys    text;
    cols    text;
    vals    text;
    n       bigint;
    idcol   name;
    taken   boolean;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.origin = 'shipped' AND NEW.origin = 'shipped' AND ROW(NEW.*) IS DISTINCT FROM ROW(OLD.*) THEN
            NEW.origin := 'edited';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.origin = 'edited' THEN
        -- INSERT of an edited row (a restore): replace the shipped row of the same
        -- key.  The key is the primary key, unless that is a generated id: ids
        -- differ between a database updated from an earlier version and a fresh
        -- install (the update ships its new rows after the operator's), so such a
        -- table is matched on its natural unique key (ledger_mappings: purpose,
        -- currency, detail; dunning_policies: code)
        SELECT string_agg(format('t.%1$I IS NOT DISTINCT FROM ($1).%1$I', a.attname), ' AND ')
          INTO keys
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = TG_RELID
           AND a.attnum = ANY ((SELECT k.conkey FROM pg_catalog.pg_constraint k
                                 WHERE k.conrelid = TG_RELID AND k.contype IN ('p', 'u')
                                 ORDER BY EXISTS (SELECT FROM pg_catalog.pg_attribute g
                                                   WHERE g.attrelid = TG_RELID AND g.attnum = ANY (k.conkey)
                                                     AND g.attidentity <> ''),
                                          k.contype <> 'p', k.conname
                                 LIMIT 1)::smallint[]);
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
    END IF;
    -- A row inserted with a generated id that a shipped row already has (a user
    -- row restored from a database updated from an earlier version, where the
    -- update shipped its rows after the operator's): it takes the next id,
    -- unless other tables refer to the id (then the collision is an error)
    SELECT a.attname INTO idcol
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = TG_RELID AND i.indisprimary AND i.indnatts = 1 AND a.attidentity <> ''
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint f WHERE f.confrelid = TG_RELID AND f.contype = 'f');
    IF idcol IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM %s t WHERE t.%I = ($1).%I)', TG_RELID::regclass, idcol, idcol)
          INTO taken USING NEW;
        IF taken THEN
            NEW := pg_catalog.jsonb_populate_record(NEW, pg_catalog.jsonb_build_object(idcol,
                       pg_catalog.nextval(pg_catalog.pg_get_serial_sequence(TG_RELID::regclass::text, idcol))));
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.shipped_row() IS 'trigger: a shipped row becomes origin edited on its first change; an inserted edited row (a restore) updates the shipped row of its key instead (the natural key where the primary key is a generated id); a restored row whose generated id a shipped row holds takes the next id';

-- the shipped dunning steps' deferred order check runs now: their table is altered below
SET CONSTRAINTS subbilling.dunning_steps_check_order IMMEDIATE;
DO $shipped$
DECLARE
    t       text;
    tables  text[] := ARRAY['subscription_transitions', 'country_settings', 'ledger_accounts', 'ledger_mappings',
                            'payment_settings', 'reference_rates', 'dunning_policies', 'dunning_steps'];
BEGIN
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('ALTER TABLE subbilling.%1$I ADD COLUMN origin text NOT NULL DEFAULT ''user''
                            CONSTRAINT %2$I CHECK (origin IN (''shipped'', ''user'', ''edited''))',
                       t, t || '_origin_check');
        EXECUTE format('COMMENT ON COLUMN subbilling.%I.origin IS %L', t,
                       'shipped: installed with the extension (not dumped); user: added by an operator; edited: shipped, then changed (dumped, restored over the shipped row)');
    END LOOP;
    FOREACH t IN ARRAY tables LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON subbilling.%I
                            FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row()', t || '_shipped_row', t);
    END LOOP;
END
$shipped$;
-- the tax tables have their column origin from their CREATE TABLE
CREATE TRIGGER tax_categories_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_categories
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
CREATE TRIGGER tax_rates_shipped_row BEFORE INSERT OR UPDATE ON subbilling.tax_rates
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
CREATE TRIGGER vat_boxes_shipped_row BEFORE INSERT OR UPDATE ON subbilling.vat_boxes
    FOR EACH ROW EXECUTE FUNCTION subbilling_internal.shipped_row();
-- the rows present now are the shipped ones
UPDATE subbilling.subscription_transitions SET origin = 'shipped';
UPDATE subbilling.country_settings SET origin = 'shipped';
UPDATE subbilling.ledger_accounts SET origin = 'shipped';
UPDATE subbilling.ledger_mappings SET origin = 'shipped';
UPDATE subbilling.payment_settings SET origin = 'shipped';
UPDATE subbilling.reference_rates SET origin = 'shipped';
UPDATE subbilling.dunning_policies SET origin = 'shipped';
UPDATE subbilling.dunning_steps SET origin = 'shipped';
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

REVOKE ALL ON FUNCTION subbilling_internal.shipped_row() FROM PUBLIC;
