
-- Schema for internal helpers (see sql/parts/000_header.sql).
CREATE SCHEMA subbilling_internal;
REVOKE ALL ON SCHEMA subbilling_internal FROM PUBLIC;
COMMENT ON SCHEMA subbilling_internal IS 'subbilling''s internal helpers; not an API, callable only by the extension''s own functions';
