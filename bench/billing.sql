-- bench/billing.sql: one billing cycle against a plain INSERT ... SELECT of its output.
--
--   bash bench/run.sh --only billing --rows 100000
--
-- Makes N = :rows subscriptions with bench/billing_gen.sql (bulk) in a database bgen, then, for
-- AS_OF = now(), in fresh copies of it (CREATE DATABASE ... TEMPLATE bgen; a fresh session, no
-- dead rows, nothing left over from another run):
--   1. run_billing(as_of), subbilling.notify = off, in database brun_off;
--   2. run_billing(as_of), notify on (the default), in database brun_on;
-- each timed on the client side of the statement, autocommit, so the commit is included
-- (subbilling.batch_size is a sighup setting: its default, 1000, applies).  Then, in brun_on,
-- the baselines, each twice (emptied in between):
--   A. INSERT ... SELECT of exactly the invoice rows and line rows run 2 made (read from a copy)
--      into bench.a_invoices and bench.a_invoice_lines, made LIKE subbilling.invoices /
--      invoice_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES (columns,
--      NOT NULL, CHECKs, primary and unique keys, indexes; no triggers, no foreign keys);
--   B. the same into bench.b_* which also carry the foreign keys of the originals (to accounts,
--      subscriptions, plans, invoice_series, and lines -> invoices);
--   C. the cycle's whole write set, nothing computed: in fresh copies of bgen (brun_c1 and
--      brun_c2, one round each), INSERT ... SELECT of every row run 2 wrote (invoices in their
--      final state, lines, its events, journal entries and lines, payment requests) into the
--      product's own tables (their keys, indexes, foreign keys and triggers), and UPDATE of the
--      subscriptions and counters to the values run 2 left; the rows are carried over in files
--      (server-side COPY into :copydir, which bench/run.sh makes).  What the product's requirements on billing and the ledger
--      and 7 make every cycle write, at the cost of writing it: the floor for run_billing.
-- Then, in brun_off: the next month's cycle (one period per subscription, as_of + 1 month)
-- and its baselines A and B into tables that already hold the first cycle's rows, and C in
-- brun_c3, a copy of brun_off made before that cycle.
-- Registers no case with the harness: it prints its own tables.  For a throwaway cluster only
-- (bench/run.sh makes one); it leaves its databases behind in it.
\set ON_ERROR_STOP 1
\set n :rows
\timing off
SELECT current_database() AS home \gset
CREATE DATABASE bgen;
\c bgen
SET client_min_messages = warning;
CREATE EXTENSION subbilling CASCADE;
-- the C functions at the private library (bench/run.sh passes its path as :lib), as in the
-- home database; the next session loads only that copy
UPDATE pg_proc SET probin = :'lib' WHERE probin = '$libdir/subbilling';
\c bgen
SELECT clock_timestamp() AS t0 \gset
\ir billing_gen.sql
SET search_path = subbilling, public;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1) AS gen_s \gset
\echo == billing: generated :n subscriptions in :gen_s s
VACUUM ANALYZE;
SELECT subbilling_internal.billing_batch_size() AS batch_size \gset
\echo == billing: batch size :batch_size
\c :home
CREATE DATABASE brun_off TEMPLATE bgen;
CREATE DATABASE brun_on TEMPLATE bgen;
CREATE DATABASE brun_c1 TEMPLATE bgen;
CREATE DATABASE brun_c2 TEMPLATE bgen;
CHECKPOINT;
SELECT now() AS as_of \gset

-- 1. notify off
\c brun_off
SET search_path = subbilling, public;
SET subbilling.notify = off;
SELECT split_part(pg_read_file('/proc/loadavg'), ' ', 1) AS load_off \gset
SELECT clock_timestamp() AS t0 \gset
SELECT run_billing(:'as_of') AS inv_off \gset
SELECT 1000 * extract(epoch FROM clock_timestamp() - :'t0') AS ms_off \gset
SELECT count(*) AS lines_off FROM invoice_lines \gset
\echo == billing: run_billing notify off: :inv_off invoices, :lines_off lines, :ms_off ms

-- 2. notify on, the default
\c brun_on
SET search_path = subbilling, public;
CHECKPOINT;
SELECT split_part(pg_read_file('/proc/loadavg'), ' ', 1) AS load_on \gset
SELECT coalesce(max(id), 0) AS ev0 FROM events \gset
SELECT coalesce(max(id), 0) AS je0 FROM journal_entries \gset
SELECT coalesce(max(id), 0) AS jl0 FROM journal_lines \gset
SELECT coalesce(max(id), 0) AS pr0 FROM payment_requests \gset
SELECT clock_timestamp() AS t0 \gset
SELECT run_billing(:'as_of') AS inv \gset
SELECT 1000 * extract(epoch FROM clock_timestamp() - :'t0') AS ms \gset
SELECT count(*) AS lines FROM invoice_lines \gset
\echo == billing: run_billing notify on: :inv invoices, :lines lines, :ms ms
SELECT count(*) AS journal_entries FROM journal_entries \gset
SELECT count(*) AS events FROM events WHERE type LIKE 'invoice.%' \gset
\echo == billing: also wrote :journal_entries journal entries and :events invoice events
CREATE SCHEMA bench;
CREATE TABLE bench.billing_results (
    ord      int,
    name     text,
    ms       numeric,
    invoices bigint,
    lines    bigint,
    load1    text
);
INSERT INTO bench.billing_results VALUES
    (1, 'run_billing, notify off', :ms_off, :inv_off, :lines_off, :'load_off'),
    (2, 'run_billing, notify on', :ms, :inv, :lines, :'load_on');

-- The baseline's source: exactly the rows the committed run made (read from a copy, so the
-- baseline does not read the table it is compared with).
CREATE TABLE bench.src_invoices AS SELECT * FROM invoices;
CREATE TABLE bench.src_invoice_lines AS SELECT * FROM invoice_lines;
\ir billing_baseline_tables.sql
VACUUM ANALYZE;
CHECKPOINT;

-- Baseline C's source: what run 2 wrote, to files for the fresh copies.
\set inv0 0
\set line0 0
\ir billing_baseline_c_out.sql

-- Baselines A and B, two rounds each (the second into emptied tables); each round is
-- bench/billing_baseline_round.sql.
\set inv a_invoices
\set lines a_invoice_lines
\set ord 4
\set label 'baseline A: INSERT ... SELECT, keys and indexes'
\ir billing_baseline_round.sql
\set inv b_invoices
\set lines b_invoice_lines
\set ord 5
\set label 'baseline B: INSERT ... SELECT, + foreign keys'
\ir billing_baseline_round.sql
TRUNCATE bench.b_invoice_lines, bench.b_invoices, bench.a_invoice_lines, bench.a_invoices;
CHECKPOINT;
\set inv a_invoices
\set lines a_invoice_lines
\set ord 6
\set label 'baseline A, again'
\ir billing_baseline_round.sql
\set inv b_invoices
\set lines b_invoice_lines
\set ord 7
\set label 'baseline B, again'
\ir billing_baseline_round.sql

-- Baseline C, one round in each fresh copy (bench/billing_baseline_c.sql).
\set resdb brun_on
\set cdb brun_c1
\set ord 8
\set label 'baseline C: the whole write set, product tables'
\ir billing_baseline_c.sql
\set cdb brun_c2
\set ord 9
\set label 'baseline C, again'
\ir billing_baseline_c.sql
\c brun_on
SET search_path = subbilling, public;

-- The table: ratio against the faster of the two rounds of each baseline.
\echo == billing: results (N = :n)
WITH base AS (SELECT min(ms) FILTER (WHERE ord IN (4, 6)) AS a, min(ms) FILTER (WHERE ord IN (5, 7)) AS b,
                     min(ms) FILTER (WHERE ord IN (8, 9)) AS c
                FROM bench.billing_results)
SELECT r.name, :n AS subscriptions, r.invoices, r.lines, round(r.ms) AS ms,
       round((r.invoices + r.lines) / (r.ms / 1000)) AS rows_per_s,
       round(r.ms / base.a, 2) AS ratio_to_a, round(r.ms / base.b, 2) AS ratio_to_b,
       round(r.ms / base.c, 2) AS ratio_to_c, r.load1
  FROM bench.billing_results r, base
 ORDER BY r.ord;

-- ---------------------------------------------------------------- the next month's cycle
-- In brun_off, where the first cycle is committed: VACUUM ANALYZE (a month later autovacuum
-- has run), then one more run_billing one month after as_of (notify on, the default): one
-- period per subscription, the cycle a business runs every month.  Its baselines insert
-- exactly the rows that cycle made into copies of the tables that already hold the first
-- cycle's rows (A: keys and indexes; B: + the foreign keys), one round each.
\c :home
CREATE DATABASE brun_c3 TEMPLATE brun_off;
\c brun_off
SET search_path = subbilling, public;
VACUUM ANALYZE;
CHECKPOINT;
SELECT (:'as_of'::timestamptz + interval '1 month') AS as_of2 \gset
SELECT max(id) AS inv0 FROM invoices \gset
SELECT max(id) AS line0 FROM invoice_lines \gset
SELECT coalesce(max(id), 0) AS ev0 FROM events \gset
SELECT coalesce(max(id), 0) AS je0 FROM journal_entries \gset
SELECT coalesce(max(id), 0) AS jl0 FROM journal_lines \gset
SELECT coalesce(max(id), 0) AS pr0 FROM payment_requests \gset
SELECT clock_timestamp() AS t0 \gset
SELECT run_billing(:'as_of2') AS inv2 \gset
SELECT 1000 * extract(epoch FROM clock_timestamp() - :'t0') AS ms2 \gset
SELECT count(*) AS lines2 FROM invoice_lines WHERE id > :line0 \gset
\echo == billing: next month (:as_of2): :inv2 invoices, :lines2 lines, :ms2 ms
CREATE SCHEMA bench;
CREATE TABLE bench.src_invoices AS SELECT * FROM invoices WHERE id > :inv0;
CREATE TABLE bench.src_invoice_lines AS SELECT * FROM invoice_lines WHERE id > :line0;
\ir billing_baseline_tables.sql
INSERT INTO bench.a_invoices SELECT * FROM invoices WHERE id <= :inv0;
INSERT INTO bench.a_invoice_lines SELECT * FROM invoice_lines WHERE id <= :line0;
INSERT INTO bench.b_invoices SELECT * FROM invoices WHERE id <= :inv0;
INSERT INTO bench.b_invoice_lines SELECT * FROM invoice_lines WHERE id <= :line0;
VACUUM ANALYZE;
CHECKPOINT;
CREATE TABLE bench.billing_results (ord int, name text, ms numeric, invoices bigint, lines bigint, load1 text);
INSERT INTO bench.billing_results VALUES
    (1, 'next month: run_billing', :ms2, :inv2, :lines2, split_part(pg_read_file('/proc/loadavg'), ' ', 1));
\set inv a_invoices
\set lines a_invoice_lines
\set ord 2
\set label 'next month: baseline A'
\ir billing_baseline_round.sql
\set inv b_invoices
\set lines b_invoice_lines
\set ord 3
\set label 'next month: baseline B'
\ir billing_baseline_round.sql
\ir billing_baseline_c_out.sql
\set resdb brun_off
\set cdb brun_c3
\set ord 4
\set label 'next month: baseline C'
\ir billing_baseline_c.sql
\echo == billing: the next month cycle, N = :n (baseline row counts include the first cycle rows)
WITH base AS (SELECT min(ms) FILTER (WHERE ord = 2) AS a, min(ms) FILTER (WHERE ord = 3) AS b,
                     min(ms) FILTER (WHERE ord = 4) AS c
                FROM bench.billing_results)
SELECT r.name, round(r.ms) AS ms, round(r.ms / base.a, 2) AS ratio_to_a, round(r.ms / base.b, 2) AS ratio_to_b,
       round(r.ms / base.c, 2) AS ratio_to_c, r.load1
  FROM bench.billing_results r, base
 ORDER BY r.ord;
