-- bank files: what a client sees for every kind of bad BgMax and Nets OCR giro file
-- (message, DETAIL with the line and reason, SQLSTATE).  The sample files are in
-- test/bankfiles/ (ISO-8859-1, read through iconv), written by make_samples.py.
SET search_path = subbilling, public;
\set VERBOSITY default
\set bgmax_good `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_good.txt`
\set bgmax_deduction `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_deduction.txt`
\set bgmax_bad_count `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_count.txt`
\set bgmax_bad_sum `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_sum.txt`
\set bgmax_bad_record `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_record.txt`
\set bgmax_truncated_line `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_truncated_line.txt`
\set bgmax_missing_end `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_missing_end.txt`
\set bgmax_bad_end_count `iconv -f latin1 -t utf-8 test/bankfiles/bgmax_bad_end_count.txt`
\set nets_good `cat test/bankfiles/nets_good.txt`
\set nets_bad_count `cat test/bankfiles/nets_bad_count.txt`
\set nets_bad_sum `cat test/bankfiles/nets_bad_sum.txt`
\set nets_bad_record `cat test/bankfiles/nets_bad_record.txt`
\set nets_truncated_line `cat test/bankfiles/nets_truncated_line.txt`
\set nets_missing_end `cat test/bankfiles/nets_missing_end.txt`

-- the good files: one row per payment, the summaries
SELECT line, amount, reference, received_on, payer, payer_name FROM parse_bgmax(:'bgmax_good');
SELECT * FROM bgmax_summary(:'bgmax_good');
SELECT line, kind, amount, reference, deduction_code, extra_references FROM parse_bgmax(:'bgmax_deduction');
SELECT line, amount, reference, received_on, transaction_type, message FROM parse_nets_ocr(:'nets_good');
SELECT * FROM nets_ocr_summary(:'nets_good');

-- BgMax: wrong deposit count, wrong deposit amount, a letter in an amount, a short line,
-- no end record, a wrong end record count
SELECT count(*) FROM parse_bgmax(:'bgmax_bad_count');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(:'bgmax_bad_sum');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(:'bgmax_bad_record');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(:'bgmax_truncated_line');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(:'bgmax_missing_end');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(:'bgmax_bad_end_count');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the summary checks the whole file too
SELECT * FROM bgmax_summary(:'bgmax_bad_sum');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Nets: wrong assignment count, wrong transmission sum, amount item 2 of another
-- transaction, a short line, no end record for the transmission
SELECT count(*) FROM parse_nets_ocr(:'nets_bad_count');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(:'nets_bad_sum');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(:'nets_bad_record');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(:'nets_truncated_line');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(:'nets_missing_end');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM nets_ocr_summary(:'nets_bad_sum');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- a file of the other format, an empty file
SELECT count(*) FROM parse_bgmax(:'nets_good');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(:'bgmax_good');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax('');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_nets_ocr(E'\n');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- characters: Latin-1 letters count as one character each; a character outside
-- ISO-8859-1 is refused with its line; a tab is a control character
SELECT count(*) FROM parse_bgmax(replace(:'bgmax_good', 'Storåker', 'Storåkeř'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(replace(:'bgmax_good', 'Storåker', 'Storåker€'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(replace(:'bgmax_good', 'Storåker ', E'Storåker\t'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM parse_bgmax(replace(:'bgmax_good', 'Storåker ', 'Storåkerö'));

-- text after the end record; empty lines after it are fine
SELECT count(*) FROM parse_nets_ocr(:'nets_good' || E'\n\n\n');
SELECT count(*) FROM parse_nets_ocr(:'nets_good' || E'\nNY');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- STRICT: no file, no rows
SELECT count(*) FROM parse_bgmax(NULL);
SELECT * FROM nets_ocr_summary(NULL);
