
-- ============================================================================
-- Backups: what pg_dump writes of the extension's tables.  docs/operations.md
--
-- The objects of an extension are not dumped (CREATE EXTENSION recreates them);
-- the rows of its tables and the values of its sequences are dumped only for
-- tables and sequences marked with pg_extension_config_dump.  Every table and
-- every sequence (identity sequences included) of the schema is marked.
--
-- The tables that ship rows are marked where they are created, with the filter
-- WHERE origin <> 'shipped' (sql/parts/010_shipped_rows.sql).
-- ============================================================================

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
