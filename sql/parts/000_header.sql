-- subbilling install script, assembled by the Makefile from sql/parts/*.sql in name order.
--
-- The parts are ordered by object, each group numbered by its hundred, with gaps for new parts:
--   0xx  header: schemas and roles; 010 the trigger of the tables that ship rows (origin)
--   1xx  types and their pure functions (price, billing_period, proration, tier pricing,
--        payment references)
--   2xx  catalog: dunning policies, tax categories, products, plans, campaigns
--   3xx  accounts
--   4xx  subscriptions, usage, events (the outbox: before the parts whose tables refer to it);
--        490 the grants of the groups so far and the roles
--   5xx  invoicing: invoices, taxes, the billing engine, billing, credit notes, billing batches;
--        590 its grants
--   6xx  ledger: accounts and entries, booking, VAT return, ledger views
--   7xx  payments: payments and requests, bank files, bank import; 790 the grants of ledger
--        and payments
--   8xx  dunning: settings and steps, dunning, reference rates, dunning batches
--   9xx  the worker (its status view reads all of the above); 990 backups: the pg_dump marks
--        of the tables and sequences not marked where they are created
-- A table is created whole (every column in its CREATE TABLE) in the part of its group, with
-- its pg_extension_config_dump next to it; a function is defined once.  New features take a
-- free number in their group (a part on bank files from 730, one on invoices' output from 560,
-- one on reporting from 640, one on listeners of events from 470).
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION subbilling" to load this file. \quit

-- The extension's objects all live in schema subbilling (created from the control file).
COMMENT ON SCHEMA subbilling IS 'subscription billing: types, catalog, subscriptions, invoices, ledger, KPIs';

-- Internal helpers live in schema subbilling_internal: no role but the extension's owner has
-- USAGE on it, so they run only inside the extension's SECURITY DEFINER functions (which call
-- them schema-qualified).  Schema subbilling holds the public API.
CREATE SCHEMA subbilling_internal;
REVOKE ALL ON SCHEMA subbilling_internal FROM PUBLIC;
COMMENT ON SCHEMA subbilling_internal IS 'subbilling''s internal helpers; not an API, callable only by the extension''s own functions';

-- The roles subbilling_operator and subbilling_reader (docs/privileges.md), before any part
-- grants to them.  Roles are cluster-wide: they are created here if missing and outlive
-- DROP EXTENSION (and serve every database of the cluster that installs subbilling).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_operator') THEN
        CREATE ROLE subbilling_operator NOLOGIN;
        COMMENT ON ROLE subbilling_operator IS 'subbilling: runs the lifecycle functions and maintains catalog and accounts';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_reader') THEN
        CREATE ROLE subbilling_reader NOLOGIN;
        COMMENT ON ROLE subbilling_reader IS 'subbilling: reads the reporting views and nothing else';
    END IF;
END
$$;
