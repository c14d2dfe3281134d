
-- ============================================================================
-- Privileges of entitlements (sql/parts/470_entitlements.sql), after the
-- grants of 490_privileges.sql so that the schema's ACL lists the roles in
-- the same order in a fresh install and after an upgrade.  docs/entitlements.md
-- and docs/privileges.md.
-- ============================================================================


-- subbilling_access: the role of an application that only checks access
-- (has_access, entitlement_limit, the entitlements view and the feature
-- catalog), nothing else.  Roles are cluster-wide: created if missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_access') THEN
        CREATE ROLE subbilling_access NOLOGIN;
        COMMENT ON ROLE subbilling_access IS 'subbilling: checks what accounts may use (has_access, entitlement_limit, entitlements) and nothing else';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA subbilling TO subbilling_access;

GRANT SELECT ON subbilling.features, subbilling.plan_features, subbilling.entitlement_policy,
                subbilling.account_entitlements, subbilling.entitlements
    TO subbilling_operator, subbilling_access;
GRANT SELECT ON subbilling.entitlement_accounts TO subbilling_operator;
-- features are catalog, maintained with plain SQL; plan_features and the policy change
-- through functions that bring the holders up to date
GRANT INSERT, UPDATE ON subbilling.features TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.has_access(bigint, text),
    subbilling.entitlement_limit(bigint, text),
    subbilling.set_plan_feature(text, text, numeric),
    subbilling.remove_plan_feature(text, text),
    subbilling.set_entitlement_policy(text, boolean),
    subbilling.refresh_entitlements(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.has_access(bigint, text),
    subbilling.entitlement_limit(bigint, text)
    TO subbilling_operator, subbilling_access;
GRANT EXECUTE ON FUNCTION
    subbilling.set_plan_feature(text, text, numeric),
    subbilling.remove_plan_feature(text, text),
    subbilling.set_entitlement_policy(text, boolean),
    subbilling.refresh_entitlements(bigint)
    TO subbilling_operator;
