
-- ============================================================================
-- Privileges of catalog, accounts, subscriptions and events for the roles
-- subbilling_operator and subbilling_reader (created in 000_header.sql).
-- Functions that change data are SECURITY DEFINER with a pinned
-- search_path; none of them is executable by PUBLIC.  See docs/privileges.md.
-- Later parts grant their own objects the same way.
-- ============================================================================

GRANT USAGE ON SCHEMA subbilling TO subbilling_operator, subbilling_reader;

-- The types (price, billing_period, tier) and their pure functions are for everyone, as
-- with any type extension: PUBLIC may look names up in the schema.  That reads no table
-- and executes nothing that writes: tables grant nothing to PUBLIC and every mutating
-- function is revoked from PUBLIC below.
GRANT USAGE ON SCHEMA subbilling TO PUBLIC;

-- ---------------------------------------------------------------- tables

GRANT SELECT ON subbilling.dunning_policies, subbilling.products, subbilling.plans, subbilling.campaigns,
                subbilling.accounts, subbilling.payment_methods, subbilling.events,
                subbilling.subscription_transitions, subbilling.subscriptions, subbilling.subscription_items,
                subbilling.subscription_pauses, subbilling.subscription_discounts, subbilling.usage,
                subbilling.subscription_item_history
    TO subbilling_operator;
-- catalog and customer master data are maintained with plain SQL
GRANT INSERT, UPDATE ON subbilling.dunning_policies, subbilling.products, subbilling.plans,
                        subbilling.campaigns, subbilling.accounts, subbilling.payment_methods
    TO subbilling_operator;
-- subscriptions, items, pauses, discounts, usage and events change only through functions

GRANT SELECT ON subbilling.subscription_item_history TO subbilling_reader;

-- ---------------------------------------------------------------- functions

-- the lifecycle: operator only
REVOKE ALL ON FUNCTION
    subbilling.subscribe(bigint, text, integer, date, text, integer),
    subbilling.add_addon(bigint, text, integer, date),
    subbilling.remove_addon(bigint, text, date),
    subbilling.change_plan(bigint, text, date, text),
    subbilling.change_quantity(bigint, integer, date),
    subbilling.pause(bigint, date, date),
    subbilling.resume(bigint, date),
    subbilling.cancel(bigint, date, boolean),
    subbilling.record_usage(bigint, text, numeric, timestamptz, text),
    subbilling.migrate_subscriptions(text, text, date),
    subbilling.set_subscription_status(bigint, text, text),
    subbilling.advance_subscriptions(date),
    subbilling.events_after(bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.subscribe(bigint, text, integer, date, text, integer),
    subbilling.add_addon(bigint, text, integer, date),
    subbilling.remove_addon(bigint, text, date),
    subbilling.change_plan(bigint, text, date, text),
    subbilling.change_quantity(bigint, integer, date),
    subbilling.pause(bigint, date, date),
    subbilling.resume(bigint, date),
    subbilling.cancel(bigint, date, boolean),
    subbilling.record_usage(bigint, text, numeric, timestamptz, text),
    subbilling.migrate_subscriptions(text, text, date),
    subbilling.set_subscription_status(bigint, text, text),
    subbilling.advance_subscriptions(date),
    subbilling.events_after(bigint, integer)
    TO subbilling_operator;

-- read-only questions about one subscription: operator and reader
REVOKE ALL ON FUNCTION
    subbilling.subscription_status(bigint, date),
    subbilling.subscription_history(bigint),
    subbilling.subscription_items_on(bigint, date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.subscription_status(bigint, date),
    subbilling.subscription_history(bigint),
    subbilling.subscription_items_on(bigint, date)
    TO subbilling_operator, subbilling_reader;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling_internal.emit_event(bigint, text, bigint, jsonb, bigint),
    subbilling_internal.outbox_notify(bigint, text, bigint, bigint, bigint, bigint),
    subbilling_internal.subscription_for_update(bigint),
    subbilling_internal.plan_by_code(text),
    subbilling_internal.check_plan_fits(subbilling.subscriptions, subbilling.plans, text),
    subbilling_internal.status_on(subbilling.subscriptions, date),
    subbilling_internal.transition(subbilling.subscriptions, text),
    subbilling_internal.check_not_ended(subbilling.subscriptions, date),
    subbilling_internal.base_item_on(subbilling.subscriptions, date),
    subbilling_internal.subscription_period_end(subbilling.subscriptions, date),
    subbilling_internal.replace_item(subbilling.subscriptions, text, bigint, date, bigint, integer, text),
    subbilling_internal.item_json(subbilling.subscription_items),
    subbilling_internal.refresh_status(bigint, bigint),
    subbilling_internal.plans_validate(),
    subbilling_internal.plans_guard_in_use(),
    subbilling_internal.campaigns_validate(),
    subbilling_internal.accounts_validate(),
    subbilling_internal.subscription_items_guard(),
    subbilling_internal.subscription_pauses_guard()
    FROM PUBLIC;

-- Suspensions are read like pauses; they change only through
-- set_subscription_status() and dunning.
GRANT SELECT ON subbilling.subscription_suspensions TO subbilling_operator;
