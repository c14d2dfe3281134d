-- billing_batch_size() had no caller (the worker and run_billing read subbilling.batch_size in C).
DROP FUNCTION subbilling.billing_batch_size();
-- Internal helpers move from schema subbilling to subbilling_internal (sql/parts defines them
-- there now): the public schema keeps the public API only.  Functions keep their privileges
-- (owner only) when they move; the few that PUBLIC could execute lose that below.  Every
-- function that calls a moved helper is re-created by 999_refresh.sql with the helper's new
-- name (scripts/upgrade_refresh.py).
ALTER FUNCTION subbilling.account_today(bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.accounts_validate() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.accounts_vat_number() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.after_invoice_paid(bigint,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.base_item_on(subbilling.subscriptions,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.bill_batch(integer,timestamp with time zone) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.bill_subscriptions(bigint[],bigint[],date[],timestamp with time zone) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.billing_charges(bigint[],bigint[],date[]) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.book_entry(bigint,text,date,text[],subbilling.price[],bigint,bigint,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.book_invoices(bigint[],bigint[]) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.campaigns_validate() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.check_date(text,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.check_not_ended(subbilling.subscriptions,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.check_plan_fits(subbilling.subscriptions,subbilling.plans,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.check_quantity(numeric) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.check_report_dates(date,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.convert_price(subbilling.price,numeric,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.country_settings_validate_dunning() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_actions_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_batch(integer,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_fee(text,subbilling.price[],text,text,integer,integer) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_fee_invoice(subbilling.invoices,integer,text,date,integer,subbilling.price,subbilling.price,daterange,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_invoice(bigint,bigint,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_policy_of(bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_steps_check_order() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_steps_validate() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.dunning_take_step(subbilling.invoices,subbilling.dunning_steps,subbilling.price,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.emit_event(bigint,text,bigint,jsonb,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.exchange_rate_for(text,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.format_invoice_number(text,integer,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.import_bank_file(text,text,boolean) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.in_seller_currency(subbilling.price,text,numeric,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoice_for_update(bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoice_lines_check_totals() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoice_lines_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoice_paid(subbilling.invoices,text,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoice_uncredited(subbilling.invoices) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoices_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.invoices_reopen_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.is_eu_country(text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.is_payment_method(text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.item_json(subbilling.subscription_items) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.journal_immutable() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.journal_lines_balanced() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.ledger_mapping(text,text,text,boolean) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.line_tax(boolean,text,text,text,numeric,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.lock_account_credit(bigint,boolean) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.lock_row(text,boolean) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.notify_enabled() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.notify_unaccounted(text,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.outbox_notify(bigint,text,bigint,bigint,bigint,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.outbox_reserve() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.payment_request_payload(subbilling.payment_requests) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.plan_by_code(text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.plans_guard_in_use() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.plans_validate() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.post_payment(subbilling.invoices,bigint,subbilling.price,text,date,text,text,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.price_in_currency(subbilling.price[],text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.rate_detail(numeric) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.refresh_status(bigint,bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.replace_item(subbilling.subscriptions,text,bigint,date,bigint,integer,text) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.resolve_billing_errors(bigint[],bigint[]) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.revenue_code(text,text,numeric,boolean) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.seller_currency() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.seller_settings_validate() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.series_for(date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.shipped_row() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.status_on(subbilling.subscriptions,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.subscription_for_update(bigint) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.subscription_items_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.subscription_pauses_guard() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.subscription_period_end(subbilling.subscriptions,date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.subscriptions_billing_changed() SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.take_invoice_number(date) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.tax_notes_for(text[]) SET SCHEMA subbilling_internal;
ALTER FUNCTION subbilling.transition(subbilling.subscriptions,text) SET SCHEMA subbilling_internal;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA subbilling_internal FROM PUBLIC;
-- tax_rate_at (executable by PUBLIC) raises its error through tax_rate_missing: a caller
-- who may ask for a rate gets the 42704 of a missing one, not 42501.
GRANT EXECUTE ON FUNCTION subbilling.tax_rate_missing(text, text, date) TO PUBLIC;
