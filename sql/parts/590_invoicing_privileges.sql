
-- ============================================================================
-- Privileges of invoicing, following 490_privileges.sql:
-- functions that change data are SECURITY DEFINER with a pinned search_path
-- and executable by subbilling_operator, never by PUBLIC; internal helpers
-- are executable by nobody but their owner.  subbilling_reader gets no
-- table: it reads the reporting views.
-- ============================================================================

GRANT SELECT ON subbilling.invoices, subbilling.invoice_lines, subbilling.invoice_series,
                subbilling.invoice_counters, subbilling.country_settings
    TO subbilling_operator;
-- settings are maintained with plain SQL; the counter moves only by numbering
GRANT INSERT, UPDATE ON subbilling.country_settings TO subbilling_operator;
GRANT INSERT (code, prefix, digits, description), UPDATE (prefix, digits, description)
    ON subbilling.invoice_series TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.run_billing(timestamptz),
    subbilling.preview_invoice(bigint, date),
    subbilling.credit_invoice(bigint, subbilling.price, text),
    subbilling.void_invoice(bigint, text),
    subbilling.finalize_invoice(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.run_billing(timestamptz),
    subbilling.preview_invoice(bigint, date),
    subbilling.credit_invoice(bigint, subbilling.price, text),
    subbilling.void_invoice(bigint, text),
    subbilling.finalize_invoice(bigint)
    TO subbilling_operator;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling_internal.billing_charges(bigint[], bigint[], date[]),
    subbilling_internal.bill_subscriptions(bigint[], bigint[], date[], timestamptz),
    subbilling_internal.bill_batch(integer, timestamptz),
    subbilling_internal.resolve_billing_errors(bigint[], bigint[]),
    subbilling_internal.outbox_reserve(),
    subbilling_internal.notify_enabled(),
    subbilling_internal.series_for(date),
    subbilling_internal.take_invoice_number(date),
    subbilling_internal.invoice_for_update(bigint),
    subbilling_internal.invoice_uncredited(subbilling.invoices),
    subbilling_internal.subscriptions_billing_changed(),
    subbilling_internal.invoices_guard(),
    subbilling_internal.invoice_lines_guard(),
    subbilling_internal.invoice_lines_check_totals()
    FROM PUBLIC;
