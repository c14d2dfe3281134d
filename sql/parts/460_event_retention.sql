
-- ============================================================================
-- Retention of the event outbox.  docs/operations.md
--
-- Events are the outbox of listeners; nothing in subbilling reads old ones
-- except the dunning record, whose steps point at the event they announced
-- (dunning_actions.event_id).  purge_events deletes the events created before
-- a cutoff that no dunning step points at, in one statement.
-- ============================================================================

CREATE FUNCTION subbilling.purge_events(created_before timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n   bigint;
BEGIN
    IF created_before IS NULL OR NOT isfinite(created_before) OR created_before > pg_catalog.now() THEN
        RAISE EXCEPTION 'the retention cutoff must be a time in the past'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', coalesce(created_before::text, 'NULL')),
                  HINT = 'For example purge_events(now() - interval ''90 days'').';
    END IF;
    DELETE FROM subbilling.events e
     WHERE e.created_at < created_before
       AND NOT EXISTS (SELECT FROM subbilling.dunning_actions d
                        WHERE d.account_id = e.account_id AND d.event_id = e.id);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.purge_events(timestamptz) IS
    'event retention: delete the events created before a cutoff (in the past) that no dunning step points at; returns how many were deleted';
REVOKE ALL ON FUNCTION subbilling.purge_events(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.purge_events(timestamptz) TO subbilling_operator;
