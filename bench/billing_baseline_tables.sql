-- The baselines' target tables, included by bench/billing.sql for both cycles: A (bench.a_*)
-- with the columns, NOT NULLs, CHECKs, keys and indexes of subbilling.invoices and
-- invoice_lines; B (bench.b_*) the same plus the originals' foreign keys, references to
-- invoices redirected to bench.b_invoices.
CREATE TABLE bench.a_invoices (LIKE invoices INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench.a_invoice_lines (LIKE invoice_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench.b_invoices (LIKE invoices INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench.b_invoice_lines (LIKE invoice_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
-- B: the originals' foreign keys, references to invoices redirected to bench.b_invoices.
DO $$
DECLARE
    c record;
BEGIN
    PERFORM set_config('search_path', 'pg_catalog', true);
    FOR c IN SELECT conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def
               FROM pg_constraint
              WHERE contype = 'f' AND conrelid IN ('subbilling.invoices'::regclass, 'subbilling.invoice_lines'::regclass)
              ORDER BY conrelid, conname
    LOOP
        EXECUTE format('ALTER TABLE %s ADD %s',
                       CASE c.tbl WHEN 'subbilling.invoices' THEN 'bench.b_invoices' ELSE 'bench.b_invoice_lines' END,
                       replace(c.def, 'REFERENCES subbilling.invoices(', 'REFERENCES bench.b_invoices('));
    END LOOP;
END
$$;
SELECT count(*) AS b_fks FROM pg_constraint WHERE contype = 'f'
   AND conrelid IN ('bench.b_invoices'::regclass, 'bench.b_invoice_lines'::regclass) \gset
\echo == billing: baseline B carries :b_fks foreign keys
