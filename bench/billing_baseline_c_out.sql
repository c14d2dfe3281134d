-- Baseline C's source, included by bench/billing.sql after each timed cycle: every row the
-- cycle wrote, to files in :copydir (server-side COPY), which bench/billing_baseline_c.sql
-- loads into a copy of the database as it was before the cycle.  Set before \ir: inv0, line0,
-- ev0, je0, jl0, pr0 (the highest ids before the cycle).  The subscriptions' billing columns
-- and the counters are written whole: the cycle set them.
\set f_inv :copydir '/invoices.copy'
\set f_lines :copydir '/invoice_lines.copy'
\set f_ev :copydir '/events.copy'
\set f_je :copydir '/journal_entries.copy'
\set f_jl :copydir '/journal_lines.copy'
\set f_pr :copydir '/payment_requests.copy'
\set f_sub :copydir '/subscriptions.copy'
\set f_cnt :copydir '/invoice_counters.copy'
COPY (SELECT * FROM invoices WHERE id > :inv0 ORDER BY account_id, id) TO :'f_inv';
COPY (SELECT * FROM invoice_lines WHERE id > :line0 ORDER BY account_id, id) TO :'f_lines';
COPY (SELECT * FROM events WHERE id > :ev0 ORDER BY id) TO :'f_ev';
COPY (SELECT * FROM journal_entries WHERE id > :je0 ORDER BY account_id, id) TO :'f_je';
COPY (SELECT * FROM journal_lines WHERE id > :jl0 ORDER BY account_id, id) TO :'f_jl';
COPY (SELECT * FROM payment_requests WHERE id > :pr0 ORDER BY account_id, id) TO :'f_pr';
COPY (SELECT account_id, id, next_bill_on, bill_from, billed_as_of, billed_at FROM subscriptions) TO :'f_sub';
COPY (SELECT * FROM invoice_counters) TO :'f_cnt';
SELECT count(*) AS c_events FROM events WHERE id > :ev0 \gset
SELECT count(*) AS c_je FROM journal_entries WHERE id > :je0 \gset
SELECT count(*) AS c_jl FROM journal_lines WHERE id > :jl0 \gset
SELECT count(*) AS c_pr FROM payment_requests WHERE id > :pr0 \gset
\echo == billing: baseline C writes the cycle :c_events events, :c_je journal entries, :c_jl journal lines, :c_pr payment requests besides its invoices and lines, and updates the subscriptions
