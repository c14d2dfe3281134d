
-- ============================================================================
-- What the public API needs beyond one server: the external-id lookup of
-- accounts and the events relay.  docs/citus.md
--
-- On one server accounts.external_id is UNIQUE and looked up in accounts.
-- On Citus a UNIQUE must include the distribution column, so distribute()
-- replaces it with account_external_ids, a table distributed by the external
-- id (its primary key keeps the id unique across the cluster), kept by a
-- trigger on accounts in the same transaction as the account's row.  The
-- trigger is created by distribute() only: a single server pays nothing.
--
-- The relay announces committed events with NOTIFY from the coordinator,
-- where a NOTIFY inside a multi-shard transaction cannot go out: the
-- functions write events with subbilling.notify = off and relay_events()
-- reads the outbox (events_after) and notifies what it read.
-- ============================================================================

-- ------------------------------------------------------- external ids (Citus)

CREATE TABLE subbilling_internal.account_external_ids (
    external_id     text PRIMARY KEY,
    account_id      bigint NOT NULL
);
COMMENT ON TABLE subbilling_internal.account_external_ids IS
    'internal: on Citus, every account''s external id (distributed by it: its primary key keeps it unique across the cluster); filled by the accounts_external_id trigger that distribute() creates; empty on one server, where accounts.external_id is UNIQUE';

-- Keeps account_external_ids in the transaction that writes the account.  On
-- Citus it runs on the account's shard and writes the lookup row's shard,
-- which may be on another node: the nested distributed statement is allowed
-- for that one statement (it touches one row of one shard).
CREATE FUNCTION subbilling_internal.accounts_external_id() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    nested  text := current_setting('citus.allow_nested_distributed_execution', true);
BEGIN
    IF nested IS NOT NULL THEN
        PERFORM set_config('citus.allow_nested_distributed_execution', 'on', true);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.external_id IS NOT NULL
       AND (TG_OP = 'DELETE' OR OLD.external_id IS DISTINCT FROM NEW.external_id) THEN
        DELETE FROM subbilling_internal.account_external_ids x
         WHERE x.external_id = OLD.external_id AND x.account_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.external_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.external_id IS DISTINCT FROM NEW.external_id) THEN
        INSERT INTO subbilling_internal.account_external_ids (external_id, account_id)
        VALUES (NEW.external_id, NEW.id);
    END IF;
    IF nested IS NOT NULL THEN
        PERFORM set_config('citus.allow_nested_distributed_execution', nested, true);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling_internal.accounts_external_id() IS
    'internal: trigger (created by distribute() on Citus): an account''s external id in account_external_ids, in the same transaction; a duplicate is refused by its primary key (23505), as by the UNIQUE of accounts on one server';
REVOKE ALL ON FUNCTION subbilling_internal.accounts_external_id() FROM PUBLIC;

-- The account of an external id: one index probe on one server; on Citus the
-- lookup table's one shard (no query over every shard of accounts).
CREATE FUNCTION subbilling.account_by_external_id(external_id text) RETURNS bigint
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    found   bigint;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = 'subbilling.accounts'::regclass AND t.tgname = 'accounts_external_id') THEN
        SELECT x.account_id INTO found FROM subbilling_internal.account_external_ids x
         WHERE x.external_id = account_by_external_id.external_id;
    ELSE
        SELECT a.id INTO found FROM subbilling.accounts a WHERE a.external_id = account_by_external_id.external_id;
    END IF;
    RETURN found;
END
$$;
COMMENT ON FUNCTION subbilling.account_by_external_id(text) IS
    'the id of the account with this external id, NULL if none (on Citus a look-up in the table distributed by external id)';
REVOKE ALL ON FUNCTION subbilling.account_by_external_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.account_by_external_id(text) TO subbilling_operator, subbilling_reader;

-- ------------------------------------------------------------- events relay

-- Where the relay has announced events up to (one row, created by the first relay).
CREATE TABLE subbilling_internal.relay_cursor (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event_id   bigint NOT NULL
);
COMMENT ON TABLE subbilling_internal.relay_cursor IS 'internal: the id of the last event relay_events() has announced';

-- Announces the committed events after the relay's cursor (at most max) with
-- the NOTIFY the functions send when subbilling.notify is on, and moves the
-- cursor.  The notifications go out when the caller's transaction commits.
CREATE FUNCTION subbilling.relay_events(max integer DEFAULT 1000) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     bigint;
    e       record;
    n       integer := 0;
BEGIN
    IF max IS NULL OR max < 1 THEN
        RAISE EXCEPTION 'max must be a positive number of events, not %', coalesce(max::text, 'null')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO subbilling_internal.relay_cursor (singleton, last_event_id) VALUES (true, 0)
        ON CONFLICT (singleton) DO NOTHING;
    SELECT c.last_event_id INTO cur FROM subbilling_internal.relay_cursor c FOR UPDATE;
    FOR e IN SELECT ev.id, ev.type, ev.account_id, ev.subscription_id, ev.invoice_id
               FROM subbilling.events_after(cur, max) ev ORDER BY ev.id LOOP
        PERFORM pg_notify('subbilling',
            jsonb_strip_nulls(jsonb_build_object('id', e.id, 'type', left(e.type, 200), 'account_id', e.account_id,
                                                 'subscription_id', e.subscription_id,
                                                 'invoice_id', e.invoice_id))::text);
        cur := e.id;
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        UPDATE subbilling_internal.relay_cursor SET last_event_id = cur;
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.relay_events(integer) IS
    'announce the committed events after the relay''s cursor (at most max) with NOTIFY subbilling, as the functions do when subbilling.notify is on, and move the cursor; for subbilling.notify = off (Citus: call it on the coordinator); returns how many';
REVOKE ALL ON FUNCTION subbilling.relay_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.relay_events(integer) TO subbilling_operator;

-- ------------------------------------------------ Citus bodies of SQL functions

-- Citus cannot plan the parameters of a SQL-language function's queries.  These
-- functions stay SQL on one server (cheaper per call than plpgsql: they run per
-- invoice and per account in billing, payments and dunning); distribute() puts
-- these plpgsql bodies in their place, under the same names and signatures.
CREATE FUNCTION subbilling_internal.citus_invoice_open_amount(account_id bigint, invoice_id bigint)
    RETURNS subbilling.price
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     text;
    due     subbilling.price;
BEGIN
    SELECT i.currency INTO cur FROM subbilling.invoices i WHERE i.account_id = $1 AND i.id = $2;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT sum(l.amount) INTO due FROM subbilling.journal_lines l WHERE l.account_id = $1 AND l.invoice_id = $2;
    RETURN coalesce(due, price_minor(0, cur));
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_invoice_open_amount(bigint, bigint) IS
    'internal: on Citus, distribute() makes this the body of invoice_open_amount (plpgsql, one shard per statement)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_invoice_open_amount(bigint, bigint) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.citus_customer_credit(account_id bigint)
    RETURNS subbilling.price
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cur     text;
    credit  subbilling.price;
BEGIN
    SELECT a.currency INTO cur FROM subbilling.accounts a WHERE a.id = $1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT -sum(l.amount) INTO credit FROM subbilling.journal_lines l
     WHERE l.account_id = $1 AND l.subledger = 'customer_credit';
    RETURN coalesce(credit, price_minor(0, cur));
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_customer_credit(bigint) IS
    'internal: on Citus, distribute() makes this the body of customer_credit (plpgsql, one shard per statement)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_customer_credit(bigint) FROM PUBLIC;
