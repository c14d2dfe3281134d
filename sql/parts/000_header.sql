-- subbilling install script, assembled by the Makefile from sql/parts/*.sql in name order.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION subbilling" to load this file. \quit

-- The extension's objects all live in schema subbilling (created from the control file).
COMMENT ON SCHEMA subbilling IS 'subscription billing: types, catalog, subscriptions, invoices, ledger, KPIs';
