-- bench/entitlements.sql: has_access() and entitlement_limit() calls per second in one session,
-- against a primary-key lookup of one row (accounts by id) measured in the same run.  Run by
-- bench/entitlements.sh after bench/billing_gen.sql made the subscriptions.  Not a test.
\set ON_ERROR_STOP 1
SET search_path = subbilling, public;

-- features of the benchmark plans: storage (GB, per seat/unit), sso, api calls (unlimited)
INSERT INTO features (code, name, unit, scales_with_quantity) VALUES
    ('storage', 'Storage', 'GB', true), ('sso', 'Single sign-on', NULL, false),
    ('api', 'API calls', 'calls a month', false);
INSERT INTO plan_features (plan, feature, quantity_limit)
SELECT p.code, v.feature, v.quantity_limit
  FROM plans p
  JOIN (VALUES ('basic', 'storage', 10), ('pro', 'storage', 100), ('pro', 'sso', NULL),
               ('team', 'storage', 100), ('team', 'sso', NULL), ('storage', 'storage', 50),
               ('api', 'api', NULL)) v (tier, feature, quantity_limit)
    ON p.code LIKE 'bench-' || v.tier || '-%';

\echo '-- rebuilding every account''s entitlements (refresh_entitlements())'
\timing on
SELECT refresh_entitlements() AS accounts_with_event;
\timing off
ANALYZE account_entitlements;
SELECT count(*) AS entitlement_rows, count(DISTINCT account_id) AS accounts FROM account_entitlements;

-- M random account ids (every account, some with nothing), the same for every case
SELECT :m AS m \gset
CREATE TEMP TABLE probe AS
SELECT array_agg(1 + (k::bigint * 2654435761 % (SELECT max(id) FROM accounts))::bigint ORDER BY k) AS ids
  FROM generate_series(1, :m) k;

CREATE TEMP TABLE result (case_name text, run int, seconds float8, hits bigint);
CREATE FUNCTION pg_temp.time_case(case_name text, runs int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ids     bigint[] := (SELECT p.ids FROM probe p);
    a       bigint;
    b       boolean;
    l       numeric;
    hits    bigint;
    t0      timestamptz;
    r       int;
BEGIN
    FOR r IN 0 .. runs LOOP      -- run 0 warms up
        hits := 0;
        t0 := clock_timestamp();
        IF case_name = 'pk lookup (accounts by id)' THEN
            FOREACH a IN ARRAY ids LOOP
                SELECT true INTO b FROM subbilling.accounts x WHERE x.id = a;
                IF b THEN hits := hits + 1; END IF;
            END LOOP;
        ELSIF case_name = 'has_access(account, ''storage'')' THEN
            FOREACH a IN ARRAY ids LOOP
                IF subbilling.has_access(a, 'storage') THEN hits := hits + 1; END IF;
            END LOOP;
        ELSIF case_name = 'entitlement_limit(account, ''storage'')' THEN
            FOREACH a IN ARRAY ids LOOP
                IF subbilling.entitlement_limit(a, 'storage') > 0 THEN hits := hits + 1; END IF;
            END LOOP;
        ELSIF case_name = 'has_access(account, ''sso'')' THEN
            FOREACH a IN ARRAY ids LOOP
                IF subbilling.has_access(a, 'sso') THEN hits := hits + 1; END IF;
            END LOOP;
        END IF;
        IF r > 0 THEN
            INSERT INTO result VALUES (case_name, r, extract(epoch FROM clock_timestamp() - t0), hits);
        END IF;
    END LOOP;
END
$$;
SELECT pg_temp.time_case(c, :runs)
  FROM unnest(ARRAY['pk lookup (accounts by id)', 'has_access(account, ''storage'')',
                    'entitlement_limit(account, ''storage'')', 'has_access(account, ''sso'')']) WITH ORDINALITY u (c, o)
 ORDER BY o;

-- best run of each case; ratio = the case's time per call / the primary-key lookup's
WITH best AS (SELECT case_name, min(seconds) AS seconds, max(hits) AS hits FROM result GROUP BY case_name)
SELECT b.case_name AS "case",
       :m AS calls,
       b.hits,
       round((:m / b.seconds)::numeric) AS calls_per_second,
       round((b.seconds * 1e6 / :m)::numeric, 2) AS us_per_call,
       round((b.seconds / k.seconds)::numeric, 2) AS ratio_to_pk_lookup
  FROM best b, best k
 WHERE k.case_name = 'pk lookup (accounts by id)'
 ORDER BY b.case_name = k.case_name DESC, b.case_name;
