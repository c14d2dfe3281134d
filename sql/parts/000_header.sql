-- subbilling install script, assembled by the Makefile from sql/parts/*.sql in name order.
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
