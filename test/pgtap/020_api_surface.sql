-- The API surface: schema subbilling holds the public API (every function there is documented
-- in docs/ and executable by someone), schema subbilling_internal the helpers, which no role
-- but the extension's owner may use or execute.  Run from the repository root (pg_prove does):
-- the docs are read with psql's backquotes.
\set docs `cat docs/*.md README.md 2>/dev/null`
BEGIN;
SET LOCAL search_path = subbilling, public;
SELECT plan(14);

CREATE TEMP TABLE api AS
    SELECT p.oid, p.proname, p.prosecdef, p.prosrc FROM pg_proc p WHERE p.pronamespace = 'subbilling'::regnamespace;
CREATE TEMP TABLE helpers AS
    SELECT p.oid, p.proname, p.prosecdef, p.proacl FROM pg_proc p WHERE p.pronamespace = 'subbilling_internal'::regnamespace;
CREATE TEMP TABLE docs AS SELECT :'docs'::text AS body;
GRANT SELECT ON api, helpers, docs TO PUBLIC;

SELECT cmp_ok((SELECT length(body) FROM docs), '>', 100000, 'the docs were read (run from the repository root)');
SELECT cmp_ok((SELECT count(*) FROM helpers), '>=', 70::bigint, 'the helpers live in subbilling_internal');

-- the helpers: nobody but the owner
SELECT is_empty($$
    SELECT oid::regprocedure FROM helpers
     WHERE proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(proacl) a WHERE a.grantee = 0)
$$, 'no helper is executable by PUBLIC');
SELECT is_empty($$
    SELECT h.oid::regprocedure, r FROM helpers h, unnest(ARRAY['subbilling_operator', 'subbilling_reader']) r
     WHERE has_function_privilege(r, h.oid, 'EXECUTE')
$$, 'no helper is executable by subbilling_operator or subbilling_reader');
SELECT ok(NOT has_schema_privilege('subbilling_operator', 'subbilling_internal', 'USAGE')
          AND NOT has_schema_privilege('subbilling_reader', 'subbilling_internal', 'USAGE')
          AND NOT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
                           WHERE n.nspname = 'subbilling_internal' AND a.grantee <> n.nspowner),
          'nobody but the owner has USAGE on subbilling_internal');
SELECT is_empty($$
    SELECT oid::regprocedure FROM helpers WHERE NOT EXISTS (
        SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = helpers.oid
           AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
$$, 'every helper belongs to the extension');

-- the API: documented, executable by someone, and calling helpers only as the owner
SELECT is_empty($$
    SELECT DISTINCT proname FROM api, docs WHERE docs.body !~ ('\m' || proname || '\M') ORDER BY 1
$$, 'every function of schema subbilling is documented in docs/');
SELECT is_empty($$
    SELECT oid::regprocedure FROM api
     WHERE NOT (has_function_privilege('public', oid, 'EXECUTE')
                OR has_function_privilege('subbilling_operator', oid, 'EXECUTE')
                OR has_function_privilege('subbilling_reader', oid, 'EXECUTE'))
$$, 'every function of schema subbilling is executable by a role (none is a helper left behind)');
SELECT is_empty($$
    SELECT oid::regprocedure FROM api WHERE NOT prosecdef AND prosrc ~ 'subbilling_internal\.'
       -- distribute() refuses every caller but a superuser, who may call helpers
       AND oid <> 'subbilling.distribute(integer)'::regprocedure
$$, 'no SECURITY INVOKER function of the API calls a helper (its caller could not)');
SELECT is_empty($$
    SELECT t.tgrelid::regclass, t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE NOT t.tgisinternal AND p.pronamespace = 'subbilling_internal'::regnamespace AND NOT p.prosecdef
       AND (has_table_privilege('subbilling_operator', t.tgrelid, 'INSERT')
            OR has_table_privilege('subbilling_operator', t.tgrelid, 'UPDATE')
            OR has_table_privilege('subbilling_operator', t.tgrelid, 'DELETE'))
       AND p.prosrc ~ 'subbilling_internal\.'
$$, 'no SECURITY INVOKER trigger on a table operators write calls a helper (it runs as the operator)');

-- as the roles
CREATE ROLE t_api_op NOLOGIN IN ROLE subbilling_operator;
CREATE ROLE t_api_nobody NOLOGIN;
SET LOCAL ROLE t_api_op;
SELECT throws_ok($$ SELECT subbilling_internal.format_invoice_number('X-', 6, 1) $$, '42501', NULL,
                 'an operator cannot call a helper');
SELECT throws_ok($$ SELECT tax_rate_at('SE', 'standard', '2019-06-01') $$, '42704', NULL,
                 'an operator asking for a missing VAT rate gets 42704 (tax_rate_missing is executable)');
RESET ROLE;
SET LOCAL ROLE t_api_nobody;
SELECT throws_ok($$ SELECT subbilling_internal.check_date('d', current_date) $$, '42501', NULL,
                 'PUBLIC cannot call a helper');
SELECT is(format_invoice_number, NULL, 'nor find it in schema subbilling')
  FROM (SELECT to_regprocedure('subbilling.format_invoice_number(text, integer, bigint)')::text AS format_invoice_number) x;
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
