
-- ============================================================================
-- Shipped rows: the settings tables that ship rows (the status transitions,
-- country settings, tax categories and rates, the chart of accounts, ledger
-- mappings, VAT boxes, payment settings, reference rates, the default dunning
-- policy and its steps) have a column origin: 'shipped' for a row as
-- installed, 'user' for a row an operator added, 'edited' for a shipped row an
-- operator changed (set by the trigger below on the first change).  Each such
-- table is created with its column origin, its shipped rows (origin
-- 'shipped'), its trigger <table>_shipped_row and its pg_dump mark with the
-- filter WHERE origin <> 'shipped': only user and edited rows are dumped, the
-- shipped rows come from CREATE EXTENSION.  At restore an edited row arrives as
-- an INSERT whose key the fresh install already holds as a shipped row; the
-- trigger turns it into an UPDATE of that row, so the operator's values win.
-- docs/operations.md
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
REVOKE ALL ON FUNCTION subbilling_internal.shipped_row() FROM PUBLIC;
