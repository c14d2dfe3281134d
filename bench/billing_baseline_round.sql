-- One timed round of a billing baseline, included by bench/billing.sql four times.
-- Set before \ir: inv and lines (the target tables), ord (result row), label.
-- Invoices then lines, one transaction, timed on the client with the commit included,
-- like the billing run it is compared with.
SELECT clock_timestamp() AS t0 \gset
BEGIN;
INSERT INTO bench.:inv SELECT * FROM bench.src_invoices;
INSERT INTO bench.:lines SELECT * FROM bench.src_invoice_lines;
COMMIT;
SELECT 1000 * extract(epoch FROM clock_timestamp() - :'t0') AS ms \gset
INSERT INTO bench.billing_results SELECT :ord, :'label', :ms,
    (SELECT count(*) FROM bench.:inv), (SELECT count(*) FROM bench.:lines),
    split_part(pg_read_file('/proc/loadavg'), ' ', 1);
