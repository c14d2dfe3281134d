
-- ============================================================================
-- Privileges of the ledger and payments, following
-- 490_privileges.sql: functions that change data are SECURITY DEFINER with a
-- pinned search_path, executable by subbilling_operator and never by PUBLIC;
-- internal helpers by their owner only; subbilling_reader reads the views.
-- ============================================================================

GRANT SELECT ON subbilling.ledger_accounts, subbilling.ledger_mappings, subbilling.journal_entries,
                subbilling.journal_lines, subbilling.payment_settings, subbilling.payments,
                subbilling.unmatched_payments, subbilling.refunds, subbilling.payment_requests,
                subbilling.customer_ledger, subbilling.open_items, subbilling.account_balances
    TO subbilling_operator;
-- settings are maintained with plain SQL; the journal and payments only through functions
GRANT INSERT, UPDATE ON subbilling.ledger_accounts, subbilling.ledger_mappings TO subbilling_operator;
GRANT DELETE ON subbilling.ledger_mappings TO subbilling_operator;
GRANT UPDATE (retry_days, updated_at) ON subbilling.payment_settings TO subbilling_operator;

GRANT SELECT ON subbilling.customer_ledger, subbilling.open_items, subbilling.account_balances
    TO subbilling_reader;

-- payments: operator only
REVOKE ALL ON FUNCTION
    subbilling.register_payment(subbilling.price, text, date, text, text),
    subbilling.match_payment(bigint, bigint),
    subbilling.refund(bigint, subbilling.price),
    subbilling.payment_failed(bigint, text, date),
    subbilling.run_payment_retries(date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.register_payment(subbilling.price, text, date, text, text),
    subbilling.match_payment(bigint, bigint),
    subbilling.refund(bigint, subbilling.price),
    subbilling.payment_failed(bigint, text, date),
    subbilling.run_payment_retries(date)
    TO subbilling_operator;

-- read-only questions: operator and reader
REVOKE ALL ON FUNCTION
    subbilling.account_balance(bigint),
    subbilling.invoice_open_amount(bigint, bigint),
    subbilling.customer_credit(bigint),
    subbilling.ledger_code(text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.account_balance(bigint),
    subbilling.invoice_open_amount(bigint, bigint),
    subbilling.customer_credit(bigint),
    subbilling.ledger_code(text, text, text)
    TO subbilling_operator, subbilling_reader;

-- internal: called by the functions above and by billing and dunning (as
-- their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling_internal.rate_detail(numeric),
    subbilling_internal.ledger_mapping(text, text, text, boolean),
    subbilling_internal.journal_lines_balanced(),
    subbilling_internal.journal_immutable(),
    subbilling_internal.book_entry(bigint, text, date, text[], subbilling.price[], bigint, bigint, text),
    subbilling_internal.invoices_reopen_guard(),
    subbilling_internal.account_today(bigint),
    subbilling_internal.lock_account_credit(bigint, boolean),
    subbilling_internal.invoice_paid(subbilling.invoices, text, bigint),
    subbilling_internal.post_payment(subbilling.invoices, bigint, subbilling.price, text, date, text, text, text),
    subbilling_internal.notify_unaccounted(text, bigint),
    subbilling_internal.lock_row(text, boolean),
    subbilling_internal.payment_request_payload(subbilling.payment_requests),
    subbilling_internal.revenue_code(text, text, numeric, boolean),
    subbilling_internal.book_invoices(bigint[], bigint[])
    FROM PUBLIC;
