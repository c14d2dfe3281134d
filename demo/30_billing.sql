-- Invoicing the demo business: the background worker (shared_preload_libraries
-- = 'subbilling', subbilling.naptime = 1) bills everything due as of now.  We
-- wake it, wait for a run that started after the demo data was loaded, and
-- show the invoices, their lines, a preview, a credit note and the invoice
-- events as a LISTEN client received them.
SET search_path = subbilling, public;

\echo
\echo '== invoicing: the background worker bills the demo business'
SELECT now() AS loaded_at \gset
SELECT set_config('demo.loaded_at', :'loaded_at', false) IS NOT NULL AS noted, wake_worker() AS worker_woken;
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 seconds';
BEGIN
    LOOP
        EXIT WHEN EXISTS (SELECT FROM subbilling.worker_runs
                           WHERE status = 'ok' AND started_at > current_setting('demo.loaded_at')::timestamptz);
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'no worker run finished within 60 seconds'
                USING HINT = 'Is subbilling in shared_preload_libraries, and subbilling.database this database?';
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
END
$$;
SELECT last_run_status AS status, last_run_invoices AS invoices, last_run_errors AS errors,
       last_run_transitions AS transitions, open_errors
  FROM worker_status;

\echo
\echo '-- the invoices: numbered gaplessly per year, due after each customer''s terms, with a payment reference by country'
SELECT i.number, a.name AS account, a.country, i.kind, i.status, i.issue_date, i.due_date, i.net, i.tax, i.total,
       i.reference
  FROM invoices i JOIN accounts a ON a.id = i.account_id
 ORDER BY i.number;

\echo
\echo '-- Anna (coffee since 75 days ago, KAFFE3: 50 kr off three months): every month due, on one invoice'
SELECT l.kind, l.description, l.quantity, l.unit_price, l.net, l.tax_rate AS vat, l.tax
  FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
  JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id = 'cust-1001'
 ORDER BY i.id, l.id;

\echo
\echo '-- Studio Nord (trial, WELCOME half price, upgrade to Team x5, support for a year, API calls in arrears)'
SELECT l.kind, l.description, l.quantity, l.net, l.tax
  FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
  JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id = 'cust-2001'
 ORDER BY i.id, l.id;

\echo
\echo '-- Café Lyktan (quarterly, 5 -> 8 boxes 20 days ago, grinder rental with a setup fee)'
SELECT l.kind, l.description, l.quantity, l.net, l.tax
  FROM invoice_lines l JOIN invoices i ON i.account_id = l.account_id AND i.id = l.invoice_id
  JOIN accounts a ON a.id = i.account_id
 WHERE a.external_id = 'cust-1003'
 ORDER BY i.id, l.id;

\echo
\echo '-- every invoice''s totals are the sums of its lines; every series is gapless'
SELECT count(*) AS invoices,
       count(*) FILTER (WHERE i.net = (SELECT sum(l.net) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)
                          AND i.tax = (SELECT sum(l.tax) FROM invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id)
                          AND i.total = i.net + i.tax) AS totals_exact,
       (SELECT bool_and(g.max - g.min + 1 = g.n)
          FROM (SELECT max(number_seq) AS max, min(number_seq) AS min, count(*) AS n FROM invoices GROUP BY series_id) g) AS gapless
  FROM invoices i;

\echo
\echo '-- the next invoices, previewed (written nowhere): Molnbyrån after its trial, Café Lyktan next quarter'
SELECT 'Molnbyrån' AS account, p.* FROM preview_invoice((SELECT s.id FROM subscriptions s JOIN accounts a ON a.id = s.account_id
                                                 WHERE a.external_id = 'cust-2003'), current_date + 11) p
UNION ALL
SELECT 'Café Lyktan', p.* FROM preview_invoice((SELECT s.id FROM subscriptions s JOIN accounts a ON a.id = s.account_id
                                                 WHERE a.external_id = 'cust-1003'),
                                              (SELECT next_bill_on FROM subscriptions s JOIN accounts a ON a.id = s.account_id
                                                WHERE a.external_id = 'cust-1003')) p;

\echo
\echo '-- billing again bills nothing new'
SELECT run_billing() AS invoices_made;

\echo
\echo '-- a goodwill credit of 100 kr on Café Lyktan''s invoice: split over its VAT rates, numbered, referenced'
SELECT credit_invoice((SELECT i.id FROM invoices i JOIN accounts a ON a.id = i.account_id
                        WHERE a.external_id = 'cust-1003' AND i.kind = 'invoice' ORDER BY i.id LIMIT 1),
                      '100.00 SEK', 'Goodwill: late delivery') AS credit_note_id \gset
SELECT c.number, c.kind, o.number AS credits, c.net, c.tax, c.total, c.reference
  FROM invoices c JOIN invoices o ON o.account_id = c.account_id AND o.id = c.credits_invoice_id
 WHERE c.id = :credit_note_id;
SELECT description, net, tax_rate AS vat, tax FROM invoice_lines WHERE invoice_id = :credit_note_id ORDER BY id;

\echo
\echo '-- an issued invoice cannot be altered or deleted'
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT pg_temp.try('UPDATE subbilling.invoices SET due_date = due_date + 30 WHERE id = (SELECT min(id) FROM subbilling.invoices)') AS "UPDATE"
UNION ALL
SELECT pg_temp.try('DELETE FROM subbilling.invoices WHERE id = (SELECT min(id) FROM subbilling.invoices)');

\echo
\echo '== invoicing: the events a LISTEN subbilling client received (the same rows as in subbilling.events)'
SELECT e.id, e.type, a.external_id AS account, e.payload->>'number' AS number, e.payload->>'total' AS total,
       e.payload->>'due_date' AS due_date, e.payload->>'reference' AS reference
  FROM events e JOIN accounts a ON a.id = e.account_id
 WHERE e.type LIKE 'invoice.%'
 ORDER BY e.id;
