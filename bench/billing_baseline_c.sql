-- One round of baseline C, included by bench/billing.sql three times.  Set before \ir: cdb (a
-- copy of the database as it was before the cycle), resdb (where bench.billing_results is),
-- ord and label (its result row), and the f_* files bench/billing_baseline_c_out.sql wrote.
-- Stages the rows run 2 wrote in plain tables (no keys), then, timed on the client with the
-- commit included, writes them into the product's tables in one transaction: invoices,
-- lines, events, journal entries, journal lines, payment requests (in the order the cycle
-- makes them, so that every foreign key finds its row), and updates the subscriptions'
-- billing columns and the series counters to what the run left.  The invoice series the run
-- created is created first, untimed (series_for, as the run does before its lock).
\c :cdb
SET search_path = subbilling, public;
SET client_min_messages = warning;
CREATE SCHEMA cstage;
CREATE TABLE cstage.invoices (LIKE invoices);
CREATE TABLE cstage.invoice_lines (LIKE invoice_lines);
CREATE TABLE cstage.events (LIKE events);
CREATE TABLE cstage.journal_entries (LIKE journal_entries);
CREATE TABLE cstage.journal_lines (LIKE journal_lines);
CREATE TABLE cstage.payment_requests (LIKE payment_requests);
CREATE TABLE cstage.subscriptions AS
    SELECT account_id, id, next_bill_on, bill_from, billed_as_of, billed_at FROM subscriptions WITH NO DATA;
CREATE TABLE cstage.invoice_counters (LIKE invoice_counters);
COPY cstage.invoices FROM :'f_inv';
COPY cstage.invoice_lines FROM :'f_lines';
COPY cstage.events FROM :'f_ev';
COPY cstage.journal_entries FROM :'f_je';
COPY cstage.journal_lines FROM :'f_jl';
COPY cstage.payment_requests FROM :'f_pr';
COPY cstage.subscriptions FROM :'f_sub';
COPY cstage.invoice_counters FROM :'f_cnt';
SELECT count(subbilling_internal.series_for(make_date(y::int, 1, 1))) AS c_series
  FROM (SELECT DISTINCT extract(year FROM issue_date) AS y FROM cstage.invoices) q \gset
-- the series must have the ids the run gave them (both databases start from bgen)
SELECT NOT EXISTS (SELECT FROM cstage.invoices i
                    WHERE NOT EXISTS (SELECT FROM invoice_series s WHERE s.id = i.series_id)) AS c_series_ok \gset
\if :c_series_ok
\else
  \warn 'baseline C: the invoice series ids differ from the run''s'
  SELECT 1 / 0;
\endif
VACUUM ANALYZE;
CHECKPOINT;
SELECT clock_timestamp() AS t0 \gset
BEGIN;
INSERT INTO invoices SELECT * FROM cstage.invoices ORDER BY account_id, id;
INSERT INTO invoice_lines SELECT * FROM cstage.invoice_lines ORDER BY account_id, id;
INSERT INTO events SELECT * FROM cstage.events ORDER BY id;
INSERT INTO journal_entries SELECT * FROM cstage.journal_entries ORDER BY account_id, id;
INSERT INTO journal_lines SELECT * FROM cstage.journal_lines ORDER BY account_id, id;
INSERT INTO payment_requests SELECT * FROM cstage.payment_requests ORDER BY account_id, id;
UPDATE subscriptions s
   SET next_bill_on = c.next_bill_on, bill_from = c.bill_from, billed_as_of = c.billed_as_of, billed_at = c.billed_at
  FROM cstage.subscriptions c
 WHERE s.account_id = c.account_id AND s.id = c.id;
UPDATE invoice_counters k SET next_number = c.next_number
  FROM cstage.invoice_counters c
 WHERE k.series_id = c.series_id;
COMMIT;
SELECT 1000 * extract(epoch FROM clock_timestamp() - :'t0') AS ms \gset
SELECT (SELECT count(*) FROM cstage.invoices) AS c_inv, (SELECT count(*) FROM cstage.invoice_lines) AS c_lines,
       split_part(pg_read_file('/proc/loadavg'), ' ', 1) AS c_load \gset
\echo == billing: :label: :ms ms
\c :resdb
INSERT INTO bench.billing_results VALUES (:ord, :'label', :ms, :c_inv, :c_lines, :'c_load');
