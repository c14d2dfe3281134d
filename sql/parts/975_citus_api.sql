
-- ============================================================================
-- What the public API needs beyond one server: the external-id lookup of
-- accounts and the events relay.  docs/citus.md
--
-- On one server accounts.external_id is UNIQUE and looked up in accounts.
-- On Citus a UNIQUE must include the distribution column, so distribute()
-- replaces it with account_external_ids, a table distributed by the external
-- id (its primary key keeps the id unique across the cluster), written by
-- set_account_external_id in the transaction that sets the account's id, and
-- a trigger on accounts that refuses any other way of setting it.  The
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
    'internal: on Citus, every account''s external id (distributed by it: its primary key keeps it unique across the cluster), written by set_account_external_id; empty on one server, where accounts.external_id is UNIQUE';

-- The external id each account was given by set_account_external_id, kept
-- with the account (on Citus colocated with accounts): the accounts trigger
-- that distribute() creates checks a new external id against it on the
-- account's own node, without a query to another node.
CREATE TABLE subbilling_internal.account_external_id_grants (
    account_id      bigint PRIMARY KEY,
    external_id     text NOT NULL
);
COMMENT ON TABLE subbilling_internal.account_external_id_grants IS
    'internal: on Citus, the external id set_account_external_id gave each account (colocated with accounts); empty on one server';

-- On Citus (the trigger exists only there): an account's external id may only
-- be what set_account_external_id granted it.  A trigger on a shard cannot
-- write the lookup row, which may live on another node.
CREATE FUNCTION subbilling_internal.accounts_external_id() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.external_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.external_id IS DISTINCT FROM NEW.external_id)
       AND NOT EXISTS (SELECT FROM subbilling_internal.account_external_id_grants g
                        WHERE g.account_id = NEW.id AND g.external_id = NEW.external_id) THEN
        RAISE EXCEPTION 'the external id of an account is set with set_account_external_id on a distributed installation'
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = 'On Citus the uniqueness of external ids is kept in a table distributed by them, which only set_account_external_id writes.',
                    HINT = format('Insert the account without external_id, then call SELECT subbilling.set_account_external_id(%s, %L) in the same transaction.', NEW.id, NEW.external_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling_internal.accounts_external_id() IS
    'internal: trigger (created by distribute() on Citus): an account''s new external id must have been granted by set_account_external_id (0A000 otherwise)';
REVOKE ALL ON FUNCTION subbilling_internal.accounts_external_id() FROM PUBLIC;

-- Sets (or clears, with NULL) an account's external id.  On one server an
-- UPDATE under the UNIQUE of accounts; on Citus the lookup row (one shard,
-- wherever the external id hashes), the grant and the account's row (the
-- account's node) in one transaction from the coordinator.
CREATE FUNCTION subbilling.set_account_external_id(account_id bigint, external_id text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    ext     text := nullif(btrim(set_account_external_id.external_id), '');
    old     text;
BEGIN
    IF set_account_external_id.account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.external_id INTO old FROM subbilling.accounts a WHERE a.id = set_account_external_id.account_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', set_account_external_id.account_id USING ERRCODE = 'undefined_object';
    END IF;
    IF old IS NOT DISTINCT FROM ext THEN
        RETURN set_account_external_id.account_id;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = 'subbilling.accounts'::regclass AND t.tgname = 'accounts_external_id') THEN
        IF old IS NOT NULL THEN
            DELETE FROM subbilling_internal.account_external_ids x
             WHERE x.external_id = old AND x.account_id = set_account_external_id.account_id;
        END IF;
        DELETE FROM subbilling_internal.account_external_id_grants g WHERE g.account_id = set_account_external_id.account_id;
        IF ext IS NOT NULL THEN
            IF EXISTS (SELECT FROM subbilling_internal.account_external_ids x WHERE x.external_id = ext) THEN
                RAISE EXCEPTION 'duplicate key value violates unique constraint "accounts_external_id_key"'
                      USING ERRCODE = 'unique_violation', DETAIL = format('Key (external_id)=(%s) already exists.', ext);
            END IF;
            -- the primary key refuses a concurrent duplicate (23505)
            INSERT INTO subbilling_internal.account_external_ids (external_id, account_id)
            VALUES (ext, set_account_external_id.account_id);
            INSERT INTO subbilling_internal.account_external_id_grants (account_id, external_id)
            VALUES (set_account_external_id.account_id, ext);
        END IF;
    END IF;
    UPDATE subbilling.accounts a SET external_id = ext, updated_at = pg_catalog.now()
     WHERE a.id = set_account_external_id.account_id;
    RETURN set_account_external_id.account_id;
END
$$;
COMMENT ON FUNCTION subbilling.set_account_external_id(bigint, text) IS
    'set (NULL or empty: clear) the external id of an account, unique across the installation (23505 if taken); on Citus the only way to set it (the lookup table distributed by external id); returns the account id';
REVOKE ALL ON FUNCTION subbilling.set_account_external_id(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.set_account_external_id(bigint, text) TO subbilling_operator;

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
GRANT EXECUTE ON FUNCTION subbilling.account_by_external_id(text) TO subbilling_operator;

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

CREATE FUNCTION subbilling_internal.citus_invoice_uncredited(i subbilling.invoices)
    RETURNS subbilling.price
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    credited subbilling.price;
BEGIN
    SELECT sum(c.total) INTO credited FROM subbilling.invoices c
     WHERE c.account_id = i.account_id AND c.credits_invoice_id = i.id AND c.status <> 'void';
    RETURN i.total + coalesce(credited, price_minor(0, i.currency));
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_invoice_uncredited(subbilling.invoices) IS
    'internal: on Citus, distribute() makes this the body of invoice_uncredited (plpgsql, one shard per statement)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_invoice_uncredited(subbilling.invoices) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.citus_invoice_parties(inv subbilling.invoices,
    OUT seller_country text, OUT seller_currency text, OUT seller_vat text, OUT seller_name text,
    OUT seller_org text, OUT seller_street text, OUT seller_postal_code text, OUT seller_city text,
    OUT seller_address text, OUT seller_scheme text, OUT seller_endpoint text,
    OUT seller_email text, OUT seller_phone text, OUT f_skatt boolean, OUT foretaksregisteret boolean,
    OUT bankgiro text, OUT plusgiro text, OUT iban text, OUT bic text, OUT bank_account text,
    OUT buyer_country text, OUT buyer_name text, OUT buyer_legal_name text, OUT buyer_org text,
    OUT buyer_street text, OUT buyer_postal_code text, OUT buyer_city text, OUT buyer_email text,
    OUT buyer_scheme text, OUT buyer_endpoint text, OUT buyer_reference text, OUT order_reference text,
    OUT contact_name text, OUT language text)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    SELECT s.country, s.currency, s.vat_number, s.legal_name,
           coalesce(sd.org_number, subbilling_internal.org_number_of_vat(s.vat_number)),
           sd.street, sd.postal_code, sd.city, s.address,
           coalesce(sd.electronic_address_scheme, sdef.scheme), coalesce(sd.electronic_address, sdef.id),
           sd.email, sd.phone, s.f_skatt, s.foretaksregisteret,
           sd.bankgiro, sd.plusgiro, sd.iban, sd.bic, sd.bank_account,
           a.country, a.name, coalesce(ad.legal_name, a.name),
           coalesce(ad.org_number, subbilling_internal.org_number_of_vat(inv.buyer_vat_number)),
           ad.street, ad.postal_code, ad.city, a.email,
           coalesce(ad.electronic_address_scheme, bdef.scheme), coalesce(ad.electronic_address, bdef.id),
           ad.buyer_reference, ad.order_reference, ad.contact_name,
           coalesce(ad.language, CASE WHEN a.country = 'SE' THEN 'sv' WHEN a.country = 'NO' THEN 'nb'
                                      WHEN a.country = 'DK' THEN 'da' WHEN a.country = 'FI' THEN 'fi'
                                      ELSE 'en' END)
      INTO seller_country, seller_currency, seller_vat, seller_name, seller_org, seller_street, seller_postal_code, seller_city, seller_address, seller_scheme, seller_endpoint, seller_email, seller_phone, f_skatt, foretaksregisteret, bankgiro, plusgiro, iban, bic, bank_account, buyer_country, buyer_name, buyer_legal_name, buyer_org, buyer_street, buyer_postal_code, buyer_city, buyer_email, buyer_scheme, buyer_endpoint, buyer_reference, order_reference, contact_name, language
      FROM subbilling.accounts a
      LEFT JOIN subbilling.seller_settings s ON true
      LEFT JOIN subbilling.seller_invoice_details sd ON true
      LEFT JOIN subbilling.account_invoice_details ad ON ad.account_id = a.id
      LEFT JOIN LATERAL subbilling_internal.default_electronic_address(
                    s.country, coalesce(sd.org_number, subbilling_internal.org_number_of_vat(s.vat_number)),
                    s.vat_number) sdef ON true
      LEFT JOIN LATERAL subbilling_internal.default_electronic_address(
                    a.country, coalesce(ad.org_number, subbilling_internal.org_number_of_vat(inv.buyer_vat_number)),
                    inv.buyer_vat_number) bdef ON true
     WHERE a.id = inv.account_id;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_invoice_parties(subbilling.invoices) IS
    'internal: on Citus, distribute() makes this the body of invoice_parties (plpgsql, one shard per statement)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_invoice_parties(subbilling.invoices) FROM PUBLIC;

CREATE FUNCTION subbilling_internal.citus_document_lines(inv subbilling.invoices, seller_registered boolean)
    RETURNS TABLE (ord bigint, description text, plan_code text, period daterange, quantity numeric,
                   price numeric, net subbilling.price, tax subbilling.price, rate numeric, vat_code text)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT row_number() OVER (ORDER BY l.id), l.description, p.code, l.period,
           (q.qty * sign(minor_units(l.net) * s.s))::numeric,
           -- the net unit price: at least two decimals, at most six
           round(pr0.price, greatest(2, scale(trim_scale(pr0.price)))),
           l.net * s.s, l.tax * s.s, l.tax_rate,
           subbilling_internal.vat_category_code(l.tax_treatment, l.tax_rate, coalesce(pr.tax_category, 'standard'),
                                                 seller_registered)
      FROM subbilling.invoice_lines l
      CROSS JOIN (SELECT CASE WHEN inv.kind = 'credit_note' THEN -1 ELSE 1 END AS s) s
      CROSS JOIN LATERAL (SELECT CASE WHEN l.quantity IS NULL OR l.quantity = 0 THEN 1::numeric
                                      ELSE abs(l.quantity) END AS qty) q
      CROSS JOIN LATERAL (SELECT round(CASE WHEN minor_units(l.net) = 0 THEN coalesce(abs(minor_units(l.unit_price)), 0)
                                            ELSE abs(minor_units(l.net)) / q.qty END
                                       / power(10::numeric, currency_exponent(inv.currency)), 6) AS price) pr0
      LEFT JOIN subbilling.plans p ON p.id = l.plan_id
      LEFT JOIN subbilling.products pr ON pr.id = p.product_id
     WHERE l.account_id = inv.account_id AND l.invoice_id = inv.id;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_document_lines(subbilling.invoices, boolean) IS
    'internal: on Citus, distribute() makes this the body of document_lines (plpgsql, one shard per statement)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_document_lines(subbilling.invoices, boolean) FROM PUBLIC;

-- The delivery schedule (skip_delivery, delivery_schedule) account by account, every
-- distributed table restricted to that account, so that Citus plans each query for one shard.
CREATE FUNCTION subbilling_internal.citus_delivery_schedule(from_date date, to_date date, only_subscription bigint)
    RETURNS TABLE (account_id bigint, subscription_id bigint, delivery_date date, plan_code text,
                   items jsonb, quantity bigint, address jsonb, status text, delivery_id bigint,
                   bills_per_delivery boolean, period daterange)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    acc     bigint;
BEGIN
    IF only_subscription IS NOT NULL THEN
        -- the subscription's account: a read of every shard, over one connection per node (so
        -- that the reference tables may still be written in the transaction)
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    FOR acc IN
        SELECT DISTINCT s.account_id
          FROM subbilling.subscriptions s
          JOIN subbilling.subscription_items i
            ON i.account_id = s.account_id AND i.subscription_id = s.id AND i.kind = 'base' AND i.voided_at IS NULL
          JOIN subbilling.plans p ON p.id = i.plan_id
         WHERE (only_subscription IS NULL OR s.id = only_subscription) AND p.delivery_period IS NOT NULL
         ORDER BY 1
    LOOP
        RETURN QUERY
        WITH bi AS (
            SELECT s.account_id, s.id AS subscription_id, s.billing_anchor AS anchor, p.code AS plan_code,
                   p.delivery_period AS dp,
                   p.delivery_period = p.billing_period AND p.pricing_model <> 'usage' AS per_delivery,
                   greatest(lower(i.validity), s.start_date, from_date) AS lo,
                   least(upper(i.validity), s.cancel_at, to_date + 1) AS hi
              FROM subbilling.subscriptions s
              JOIN subbilling.subscription_items i
                ON i.account_id = s.account_id AND i.subscription_id = s.id AND i.kind = 'base' AND i.voided_at IS NULL
              JOIN subbilling.plans p ON p.id = i.plan_id
             WHERE s.account_id = acc AND i.account_id = acc AND p.delivery_period IS NOT NULL
               AND (only_subscription IS NULL OR s.id = only_subscription)
               AND i.validity && daterange(from_date, to_date, '[]')
               AND (s.cancel_at IS NULL OR s.cancel_at > from_date)
        ),
        dd AS (
            SELECT bi.account_id, bi.subscription_id, bi.plan_code, bi.per_delivery, per.d, per.d_next
              FROM bi
              CROSS JOIN LATERAL generate_series(period_index(bi.anchor, bi.dp, bi.lo),
                                                 period_index(bi.anchor, bi.dp, bi.hi - 1)) AS k(n)
              CROSS JOIN LATERAL (SELECT period_start(bi.anchor, bi.dp, k.n) AS d,
                                         period_start(bi.anchor, bi.dp, k.n + 1) AS d_next) per
             WHERE bi.hi > bi.lo AND per.d >= bi.lo AND per.d < bi.hi
               AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_pauses z
                                WHERE z.account_id = acc AND z.subscription_id = bi.subscription_id
                                  AND z.during @> per.d)
               AND NOT EXISTS (SELECT 1 FROM subbilling.subscription_suspensions u
                                WHERE u.account_id = acc AND u.subscription_id = bi.subscription_id
                                  AND u.suspended_from <= per.d AND (u.lifted_on IS NULL OR u.lifted_on > per.d))
        )
        SELECT dd.account_id, dd.subscription_id, dd.d, dd.plan_code,
               coalesce(r.items, li.items),
               (SELECT sum((e.value ->> 'quantity')::bigint)::bigint
                  FROM jsonb_array_elements(coalesce(r.items, li.items)) AS e),
               CASE WHEN r.fixed_at IS NOT NULL THEN r.address ELSE la.address END,
               coalesce(r.status, 'planned'),
               r.id,
               dd.per_delivery,
               daterange(dd.d, dd.d_next)
          FROM dd
          LEFT JOIN subbilling.delivery_records r
            ON r.account_id = acc AND r.subscription_id = dd.subscription_id AND r.delivery_date = dd.d
          LEFT JOIN LATERAL (
              SELECT jsonb_agg(jsonb_build_object('sku', x.sku, 'description', x.description, 'quantity', x.quantity)
                               ORDER BY x.sku) AS items
                FROM (SELECT di.sku, max(di.description) AS description, sum(di.quantity::bigint * i.quantity)::bigint AS quantity
                        FROM subbilling.subscription_items i
                        JOIN subbilling.plan_delivery_items di ON di.plan_id = i.plan_id
                       WHERE i.account_id = acc AND i.subscription_id = dd.subscription_id
                         AND i.voided_at IS NULL AND i.validity @> dd.d
                       GROUP BY di.sku) x) li ON r.fixed_at IS NULL
          LEFT JOIN LATERAL (
              SELECT jsonb_build_object('name', a.name, 'line1', a.line1, 'line2', a.line2, 'postal_code', a.postal_code,
                                        'city', a.city, 'country', a.country) AS address
                FROM subbilling.shipping_addresses a
               WHERE a.account_id = acc AND a.valid_from <= dd.d
               ORDER BY a.valid_from DESC
               LIMIT 1) la ON r.fixed_at IS NULL
         WHERE coalesce(r.items, li.items) IS NOT NULL;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling_internal.citus_delivery_schedule(date, date, bigint) IS
    'internal: on Citus, distribute() makes this the body of delivery_schedule (plpgsql, account by account, one shard per query)';
REVOKE ALL ON FUNCTION subbilling_internal.citus_delivery_schedule(date, date, bigint) FROM PUBLIC;
