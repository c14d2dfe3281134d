-- ---------------------------------------------------------------------------
-- direct debit: Autogiro (Bankgirot, Sweden)
-- src/autogiro.c, src/core/autogiro.c; docs/directdebit.md
--
-- Mandates (medgivanden) per account and payer number, registered by hand or
-- read from Bankgirot's mandate advice; the payment-claim file for the
-- requested payments of accounts paying by Autogiro (one file per run date,
-- each request claimed once); the payment specification read back: approved
-- claims become payments (register_payment settles the request), rejected
-- ones payment_failed (retries, then dunning).
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.parse_autogiro(file text)
    RETURNS TABLE (kind text, line integer, code integer, date date, payer_number text, amount_minor bigint,
                   bankgiro text, reference text, status integer, info integer, bank_account text,
                   id_number text, settled_on date, section_serial integer, written_on date)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION subbilling.parse_autogiro(text) IS
    'the records of a Bankgirot Autogiro payment specification (82 incoming, 32 outgoing, 77 refunds: status 0 approved, 1 insufficient funds, 2 no mandate, 9 renewed attempt) or mandate advice (73: information and status codes) or report of rejected payment orders (kind rejections, 82/32: status the comment code, 01 no mandate ...), after checking the whole file (layout, sections'' and end record''s counts and amounts); 22P02 with the line and reason if it is not valid';

CREATE FUNCTION subbilling_internal.autogiro_claims_text(written_on date, customer_number text, bankgiro text,
                                                         due_dates date[], payer_numbers text[],
                                                         amounts bigint[], refs text[])
    RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling_internal.autogiro_claims_text(date, text, text, date[], text[], bigint[], text[]) IS
    'an Autogiro payment-claim file (opening record 01, a claim 82 per element, an outgoing payment 32 for a negative amount), CR LF line ends; 22023 if a value does not fit its field';

CREATE TABLE subbilling.autogiro_files (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CONSTRAINT autogiro_files_kind_check CHECK (kind IN ('claims', 'payments', 'mandates', 'rejections', 'mandate_requests')),
    run_date    date,
    sha256      bytea NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT autogiro_files_one_claim_file_per_day UNIQUE (kind, run_date),
    CONSTRAINT autogiro_files_once UNIQUE (kind, sha256)
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.autogiro_files', '');
COMMENT ON TABLE subbilling.autogiro_files IS 'Autogiro files written (claims and mandate requests, one per run date) and read (payment specifications, mandate advices, rejection reports; each content once)';

CREATE TABLE subbilling.autogiro_mandates (
    payer_number    text PRIMARY KEY
                    CONSTRAINT autogiro_mandates_payer_number_check CHECK (payer_number ~ '^[1-9][0-9]{0,15}$'),
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    status          text NOT NULL DEFAULT 'active'
                    CONSTRAINT autogiro_mandates_status_check
                    CHECK (status IN ('active', 'cancelled', 'rejected', 'requested')),
    bank_account    text,
    id_number       text,
    status_code     integer,
    changed_on      date NOT NULL,
    source          text NOT NULL
                    CONSTRAINT autogiro_mandates_source_check CHECK (source IN ('hand', 'file')),
    request         text
                    CONSTRAINT autogiro_mandates_request_check CHECK (request IN ('new', 'cancel')),
    request_file_id bigint REFERENCES subbilling.autogiro_files (id)
);
CREATE UNIQUE INDEX autogiro_mandates_one_active ON subbilling.autogiro_mandates (account_id) WHERE status = 'active';
SELECT pg_catalog.pg_extension_config_dump('subbilling.autogiro_mandates', '');
COMMENT ON TABLE subbilling.autogiro_mandates IS 'Autogiro mandates (medgivanden): the payer number Bankgirot knows an account by, and whether money may be claimed (active; at most one per account); from register_autogiro_mandate, request_autogiro_mandate (requested until Bankgirot approves it) or a mandate advice (status_code: Bankgirot''s, 32 new, 02/03/07/33/98 cancelled ...); request: new or cancel, to be sent to Bankgirot (request_file_id NULL) or sent in that mandate request file and not yet answered';

CREATE TABLE subbilling.autogiro_claims (
    payment_request_id  bigint NOT NULL,
    attempt             integer NOT NULL,
    account_id          bigint NOT NULL,
    file_id             bigint NOT NULL REFERENCES subbilling.autogiro_files (id),
    payer_number        text NOT NULL,
    due_date            date NOT NULL,
    amount              subbilling.price NOT NULL,
    reference           text NOT NULL,
    outcome             text NOT NULL DEFAULT 'sent'
                        CONSTRAINT autogiro_claims_outcome_check CHECK (outcome IN ('sent', 'approved', 'rejected', 'refused')),
    status_code         integer,
    payment_id          bigint,
    PRIMARY KEY (payment_request_id, attempt),
    FOREIGN KEY (account_id, payment_request_id) REFERENCES subbilling.payment_requests (account_id, id)
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.autogiro_claims', '');
COMMENT ON TABLE subbilling.autogiro_claims IS 'each attempt of a payment request claimed through Autogiro, once (the primary key): the file, what was claimed, and Bankgirot''s answer (approved: payment_id; rejected on the payment date: status_code 1 insufficient funds, 2 no mandate, 9 renewed attempt; refused before it, in a rejection report: status_code the comment code, 01 no mandate, 02 account closed ...)';

CREATE FUNCTION subbilling.register_autogiro_mandate(account_id bigint, payer_number text,
                                                     valid_on date DEFAULT current_date)
    RETURNS subbilling.autogiro_mandates
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    m   subbilling.autogiro_mandates;
BEGIN
    IF payer_number IS NULL OR payer_number !~ '^[1-9][0-9]{0,15}$' THEN
        RAISE EXCEPTION 'invalid Autogiro payer number "%"', coalesce(payer_number, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A payer number is 1 to 16 digits without leading zeros.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM subbilling.accounts a WHERE a.id = account_id) THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE subbilling.autogiro_mandates x SET status = 'cancelled', changed_on = valid_on, source = 'hand'
     WHERE x.account_id = register_autogiro_mandate.account_id AND x.status = 'active'
       AND x.payer_number <> register_autogiro_mandate.payer_number;
    INSERT INTO subbilling.autogiro_mandates AS x (payer_number, account_id, status, changed_on, source)
    VALUES (payer_number, account_id, 'active', valid_on, 'hand')
    ON CONFLICT ON CONSTRAINT autogiro_mandates_pkey DO UPDATE
       SET status = 'active', changed_on = EXCLUDED.changed_on, source = 'hand', request = NULL, request_file_id = NULL
     WHERE x.account_id = EXCLUDED.account_id
    RETURNING * INTO m;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Autogiro payer number % belongs to another account', payer_number
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN m;
END
$$;
COMMENT ON FUNCTION subbilling.register_autogiro_mandate(bigint, text, date) IS
    'register (or reactivate) an account''s Autogiro mandate by hand under its payer number (one Bankgirot has: a request to send for it is dropped); the account''s other active mandate is cancelled; 22023 bad payer number, 42704 no such account, 23505 the payer number is another account''s';

CREATE FUNCTION subbilling.import_autogiro_mandates(file text,
                                                    OUT file_id bigint, OUT activated integer,
                                                    OUT cancelled integer, OUT unknown integer,
                                                    OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    digest  bytea;
BEGIN
    activated := 0; cancelled := 0; unknown := 0;
    IF EXISTS (SELECT 1 FROM subbilling.parse_autogiro(file) p WHERE p.kind <> 'mandates') THEN
        RAISE EXCEPTION 'not an Autogiro mandate advice'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A payment specification is read by import_autogiro_payments.';
    END IF;
    PERFORM subbilling_internal.lock_row('autogiro_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT f.id INTO file_id FROM subbilling.autogiro_files f WHERE f.kind = 'mandates' AND f.sha256 = digest;
    repeated := FOUND;
    IF repeated THEN
        RETURN;
    END IF;
    INSERT INTO subbilling.autogiro_files AS f (kind, sha256, content) VALUES ('mandates', digest, file)
    RETURNING f.id INTO file_id;
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p ORDER BY p.line LOOP
        -- status 32: a new mandate Bankgirot has approved; other codes end it
        UPDATE subbilling.autogiro_mandates m
           SET status = CASE WHEN r.status = 32 THEN 'active'
                             WHEN r.status IN (2, 3, 6, 7, 33, 98) THEN 'cancelled' ELSE 'rejected' END,
               status_code = r.status, changed_on = r.date, source = 'file',
               request = CASE WHEN m.request_file_id IS NOT NULL OR (r.status = 32 AND m.request = 'new') THEN NULL
                              ELSE m.request END,
               bank_account = coalesce(r.bank_account, m.bank_account), id_number = coalesce(r.id_number, m.id_number)
         WHERE m.payer_number = r.payer_number;
        IF NOT FOUND THEN
            unknown := unknown + 1;
        ELSIF r.status = 32 THEN
            activated := activated + 1;
        ELSE
            cancelled := cancelled + 1;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.import_autogiro_mandates(text) IS
    'read a Bankgirot mandate advice (AG-MEDAVI): status 32 activates the mandate of that payer number, 02/03/06/07/33/98 cancel it, other codes mark it rejected; a request sent (autogiro_mandate_file) is answered; payer numbers not registered are counted as unknown; the same file again changes nothing (repeated); 22P02 invalid file';

CREATE FUNCTION subbilling.autogiro_claim_file(run_date date, customer_number text, bankgiro text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    payers  text[];
    dues    date[];
    amounts subbilling.price[];
    refs    text[];
    out_ids bigint[];
    outs    record;
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('autogiro_claims');
    SELECT f.content INTO body FROM subbilling.autogiro_files f WHERE f.kind = 'claims' AND f.run_date = autogiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again (docs/citus.md)
        locked := subbilling_internal.lock_payment_requests_citus('autogiro');
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.payer_number ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(coalesce(d.reference, '') ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, payers, dues, amounts, refs
          FROM (SELECT r.id, r.attempt, r.account_id, m.payer_number, greatest(i.due_date, run_date) AS due, r.amount, i.reference
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.autogiro_mandates m ON m.account_id = r.account_id AND m.status = 'active'
                 WHERE pm.kind = 'autogiro' AND r.status = 'requested' AND i.currency = 'SEK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.autogiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    -- refunds to pay back (autogiro_refund): outgoing payments (32), written as negative amounts
    SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') AS ids,
           coalesce(array_agg(o.payer_number ORDER BY o.id), '{}') AS payers,
           coalesce(array_agg(greatest(o.pay_date, run_date) ORDER BY o.id), '{}') AS dates,
           coalesce(array_agg(-minor_units(o.amount) ORDER BY o.id), '{}') AS minor,
           coalesce(array_agg(o.reference ORDER BY o.id), '{}') AS refs
      INTO outs
      FROM (SELECT x.* FROM subbilling.autogiro_payouts x WHERE x.file_id IS NULL AND x.outcome = 'sent'
               FOR UPDATE) o;
    body := subbilling_internal.autogiro_claims_text(
        run_date, customer_number, bankgiro, dues || outs.dates, payers || outs.payers,
        (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k))
            || outs.minor,
        refs || outs.refs);
    INSERT INTO subbilling.autogiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, sha256(convert_to(body, 'LATIN1')), body)
    RETURNING f.id INTO fid;
    out_ids := outs.ids;
    UPDATE subbilling.autogiro_payouts x SET file_id = fid, pay_date = greatest(x.pay_date, run_date)
     WHERE x.id = ANY (out_ids);
    INSERT INTO subbilling.autogiro_claims (payment_request_id, attempt, account_id, file_id, payer_number, due_date,
                                            amount, reference)
    SELECT u.id, u.attempt, u.account_id, fid, u.payer_number, u.due, u.amount, u.reference
      FROM unnest(ids, attempts, accts, payers, dues, amounts, refs)
           AS u(id, attempt, account_id, payer_number, due, amount, reference);
    RETURN body;
END
$$;
COMMENT ON FUNCTION subbilling.autogiro_claim_file(date, text, text) IS
    'the Autogiro payment-claim file of a run date (payee''s customer number at Bankgirot and bankgiro number): a claim (82) for every requested payment of an account paying by Autogiro with an active mandate, not claimed before, due on the invoice''s due date (or the run date if later), amount the request''s, reference the invoice''s; an outgoing payment (32) for every refund of autogiro_refund not sent before; the same run date again returns the same file';

CREATE FUNCTION subbilling.import_autogiro_payments(file text,
                                                    OUT file_id bigint, OUT approved integer,
                                                    OUT rejected integer, OUT unknown integer,
                                                    OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    c       subbilling.autogiro_claims;
    digest  bytea;
    pid     bigint;
    reason  text;
    ref     text;
BEGIN
    approved := 0; rejected := 0; unknown := 0;
    IF EXISTS (SELECT 1 FROM subbilling.parse_autogiro(file) p WHERE p.kind <> 'payments') THEN
        RAISE EXCEPTION 'not an Autogiro payment specification'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A mandate advice is read by import_autogiro_mandates.';
    END IF;
    PERFORM subbilling_internal.lock_row('autogiro_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT f.id INTO file_id FROM subbilling.autogiro_files f WHERE f.kind = 'payments' AND f.sha256 = digest;
    repeated := FOUND;
    IF repeated THEN
        RETURN;
    END IF;
    INSERT INTO subbilling.autogiro_files AS f (kind, sha256, content) VALUES ('payments', digest, file)
    RETURNING f.id INTO file_id;
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p WHERE p.code = 82 ORDER BY p.line LOOP
        -- the claim sent: payer number, due date, amount (and reference when several fit)
        SELECT * INTO c FROM subbilling.autogiro_claims x
         WHERE x.payer_number = r.payer_number AND x.due_date = r.date
           AND minor_units(x.amount) = r.amount_minor AND x.outcome = 'sent'
         ORDER BY (x.reference = coalesce(r.reference, '')) DESC, x.payment_request_id, x.attempt
         LIMIT 1
           FOR UPDATE;
        IF NOT FOUND THEN
            unknown := unknown + 1;
            CONTINUE;
        END IF;
        IF r.status = 0 THEN
            -- the reference read on its own: a call with a subquery on one account's rows as its
            -- argument would run, call and all, on the account's shard on Citus
            SELECT i.reference INTO ref FROM subbilling.payment_requests q
              JOIN subbilling.invoices i ON i.account_id = q.account_id AND i.id = q.invoice_id
             WHERE q.account_id = c.account_id AND q.id = c.payment_request_id;
            pid := subbilling.register_payment(c.amount, ref, r.settled_on, 'autogiro',
                                               format('autogiro:%s:%s:%s:%s', r.bankgiro, to_char(r.settled_on, 'YYYYMMDD'),
                                                      r.section_serial, c.payment_request_id || '.' || c.attempt));
            UPDATE subbilling.autogiro_claims x SET outcome = 'approved', status_code = 0, payment_id = pid
             WHERE x.payment_request_id = c.payment_request_id AND x.attempt = c.attempt;
            approved := approved + 1;
        ELSE
            reason := CASE r.status WHEN 1 THEN 'insufficient funds' WHEN 2 THEN 'no mandate or account closed'
                                    ELSE 'renewed attempt' END;
            IF EXISTS (SELECT 1 FROM subbilling.payment_requests q
                        WHERE q.account_id = c.account_id AND q.id = c.payment_request_id
                          AND q.status = 'requested' AND q.attempt = c.attempt) THEN
                PERFORM subbilling.payment_failed(c.payment_request_id, 'autogiro: ' || reason, r.date);
            END IF;
            UPDATE subbilling.autogiro_claims x SET outcome = 'rejected', status_code = r.status
             WHERE x.payment_request_id = c.payment_request_id AND x.attempt = c.attempt;
            rejected := rejected + 1;
        END IF;
    END LOOP;
    -- outgoing payments (refunds paid back, autogiro_refund): paid, or refused and registered back
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p WHERE p.code = 32 ORDER BY p.line LOOP
        pid := subbilling_internal.autogiro_payout_of(r.payer_number, r.date, r.amount_minor, r.reference);
        IF pid IS NULL THEN
            unknown := unknown + 1;
        ELSIF r.status = 0 THEN
            UPDATE subbilling.autogiro_payouts x SET outcome = 'paid', status_code = 0 WHERE x.id = pid;
            approved := approved + 1;
        ELSE
            PERFORM subbilling_internal.autogiro_payout_refused(pid, r.status, r.settled_on);
            rejected := rejected + 1;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.import_autogiro_payments(text) IS
    'read a Bankgirot payment specification back: each approved claim (status 0) registered with register_payment (method autogiro, the invoice''s reference, the section''s date; external_id autogiro:<bankgiro>:<date>:<section serial>:<payment request>.<attempt>), which settles the request; each rejected one (1 insufficient funds, 2 no mandate, 9 renewed attempt) reported with payment_failed (retries, then dunning); outgoing payments (32) of autogiro_refund confirmed (paid) or refused (the money registered back), counted with the claims; answers to no claim or payout of ours counted unknown; the same file again changes nothing (repeated); 22P02 invalid file';

REVOKE ALL ON FUNCTION subbilling_internal.autogiro_claims_text(date, text, text, date[], text[], bigint[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.register_autogiro_mandate(bigint, text, date), subbilling.import_autogiro_mandates(text),
    subbilling.autogiro_claim_file(date, text, text), subbilling.import_autogiro_payments(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.register_autogiro_mandate(bigint, text, date), subbilling.import_autogiro_mandates(text),
    subbilling.autogiro_claim_file(date, text, text), subbilling.import_autogiro_payments(text) TO subbilling_operator;
GRANT SELECT ON subbilling.autogiro_mandates, subbilling.autogiro_claims, subbilling.autogiro_files TO subbilling_operator;

-- ---------------------------------------------------------------------------
-- direct debit: AvtaleGiro (Nets, Norway)
--
-- Agreements (avtaler) per account under the payer's KID, registered by hand
-- or read from Nets' agreements file (with the notification flag: the bank
-- notifies the payer, J, or the payee does, N); the payment-claim
-- transmission for requested payments of accounts paying by AvtaleGiro (one
-- per run date, each request attempt once, claim type 21 or 02 by the flag);
-- the money comes back in the OCR giro settlement file (import_nets_ocr,
-- transaction type 15), matched to the claim by KID and amount.
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.parse_avtalegiro_agreements(file text)
    RETURNS TABLE (line integer, transaction_number integer, registration_type integer, kid text,
                   notify boolean, nets_date date)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION subbilling.parse_avtalegiro_agreements(text) IS
    'the agreements of a Nets AvtaleGiro agreements file (registration type 0 all, 1 new or changed, 2 deleted; the payer''s KID; notify: J, the bank notifies the payer), after checking the whole file (layout, the assignment''s and transmission''s counts); 22P02 with the line and reason if it is not valid';

CREATE FUNCTION subbilling_internal.avtalegiro_claims_text(header text[], due_dates date[], amounts bigint[],
                                                           kids text[], notify boolean[], payer_names text[],
                                                           specs text[])
    RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling_internal.avtalegiro_claims_text(text[], date[], bigint[], text[], boolean[], text[], text[]) IS
    'a Nets AvtaleGiro payment-claim transmission (10, 20, per claim 30/31 and specification lines 49, 88, 89), LF line ends; header: transmitter, transmission number, recipient, agreement ID, assignment number, assignment account; 22023 if a value does not fit its field';

CREATE TABLE subbilling.avtalegiro_agreements (
    kid             text PRIMARY KEY
                    CONSTRAINT avtalegiro_agreements_kid_check CHECK (kid ~ '^[0-9]{2,25}$'),
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    notify          boolean NOT NULL DEFAULT true,
    status          text NOT NULL DEFAULT 'active'
                    CONSTRAINT avtalegiro_agreements_status_check CHECK (status IN ('active', 'deleted')),
    changed_on      date NOT NULL,
    source          text NOT NULL
                    CONSTRAINT avtalegiro_agreements_source_check CHECK (source IN ('hand', 'file'))
);
CREATE UNIQUE INDEX avtalegiro_agreements_one_active ON subbilling.avtalegiro_agreements (account_id) WHERE status = 'active';
SELECT pg_catalog.pg_extension_config_dump('subbilling.avtalegiro_agreements', '');
COMMENT ON TABLE subbilling.avtalegiro_agreements IS 'AvtaleGiro agreements (avtaler): the payer''s KID an account''s claims carry, whether the bank notifies the payer (notify) or the payee does, active or deleted; at most one active per account';

CREATE TABLE subbilling.avtalegiro_files (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CONSTRAINT avtalegiro_files_kind_check CHECK (kind IN ('claims', 'agreements')),
    run_date    date,
    sha256      bytea NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT avtalegiro_files_one_claim_file_per_day UNIQUE (kind, run_date),
    CONSTRAINT avtalegiro_files_once UNIQUE (kind, sha256)
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.avtalegiro_files', '');
COMMENT ON TABLE subbilling.avtalegiro_files IS 'AvtaleGiro files written (claim transmissions, one per run date; transmission and assignment number = id) and read (agreements files, each content once)';

CREATE TABLE subbilling.avtalegiro_claims (
    payment_request_id  bigint NOT NULL,
    attempt             integer NOT NULL,
    account_id          bigint NOT NULL,
    file_id             bigint NOT NULL REFERENCES subbilling.avtalegiro_files (id),
    kid                 text NOT NULL,
    notify              boolean NOT NULL,
    due_date            date NOT NULL,
    amount              subbilling.price NOT NULL,
    outcome             text NOT NULL DEFAULT 'sent'
                        CONSTRAINT avtalegiro_claims_outcome_check CHECK (outcome IN ('sent', 'settled')),
    payment_id          bigint,
    PRIMARY KEY (payment_request_id, attempt),
    FOREIGN KEY (account_id, payment_request_id) REFERENCES subbilling.payment_requests (account_id, id)
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.avtalegiro_claims', '');
COMMENT ON TABLE subbilling.avtalegiro_claims IS 'each attempt of a payment request claimed through AvtaleGiro, once: the file, the agreement''s KID, the notification flag sent, and whether the OCR giro settlement has paid it';

CREATE FUNCTION subbilling.register_avtalegiro_agreement(account_id bigint, kid text, notify boolean DEFAULT true,
                                                         valid_on date DEFAULT current_date)
    RETURNS subbilling.avtalegiro_agreements
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    a   subbilling.avtalegiro_agreements;
BEGIN
    IF kid IS NULL OR kid !~ '^[0-9]{2,25}$' THEN
        RAISE EXCEPTION 'invalid KID "%"', coalesce(kid, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'An AvtaleGiro agreement''s KID is 2 to 25 digits.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM subbilling.accounts x WHERE x.id = account_id) THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE subbilling.avtalegiro_agreements x SET status = 'deleted', changed_on = valid_on, source = 'hand'
     WHERE x.account_id = register_avtalegiro_agreement.account_id AND x.status = 'active'
       AND x.kid <> register_avtalegiro_agreement.kid;
    INSERT INTO subbilling.avtalegiro_agreements AS x (kid, account_id, notify, status, changed_on, source)
    VALUES (kid, account_id, coalesce(notify, true), 'active', valid_on, 'hand')
    ON CONFLICT ON CONSTRAINT avtalegiro_agreements_pkey DO UPDATE
       SET status = 'active', notify = EXCLUDED.notify, changed_on = EXCLUDED.changed_on, source = 'hand'
     WHERE x.account_id = EXCLUDED.account_id
    RETURNING * INTO a;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'KID % belongs to another account''s agreement', kid
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN a;
END
$$;
COMMENT ON FUNCTION subbilling.register_avtalegiro_agreement(bigint, text, boolean, date) IS
    'register (or reactivate) an account''s AvtaleGiro agreement by hand under the payer''s KID, with the notification flag; the account''s other active agreement is deleted; 22023 bad KID, 42704 no such account, 23505 the KID is another account''s';

CREATE FUNCTION subbilling.import_avtalegiro_agreements(file text,
                                                        OUT file_id bigint, OUT changed integer,
                                                        OUT deleted integer, OUT unknown integer,
                                                        OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    digest  bytea;
BEGIN
    changed := 0; deleted := 0; unknown := 0;
    PERFORM count(*) FROM subbilling.parse_avtalegiro_agreements(file);
    PERFORM subbilling_internal.lock_row('avtalegiro_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT f.id INTO file_id FROM subbilling.avtalegiro_files f WHERE f.kind = 'agreements' AND f.sha256 = digest;
    repeated := FOUND;
    IF repeated THEN
        RETURN;
    END IF;
    INSERT INTO subbilling.avtalegiro_files AS f (kind, sha256, content) VALUES ('agreements', digest, file)
    RETURNING f.id INTO file_id;
    FOR r IN SELECT * FROM subbilling.parse_avtalegiro_agreements(file) p ORDER BY p.line LOOP
        UPDATE subbilling.avtalegiro_agreements a
           SET status = CASE WHEN r.registration_type = 2 THEN 'deleted' ELSE 'active' END,
               notify = r.notify, changed_on = coalesce(r.nets_date, current_date), source = 'file'
         WHERE a.kid = r.kid;
        IF NOT FOUND THEN
            unknown := unknown + 1;
        ELSIF r.registration_type = 2 THEN
            deleted := deleted + 1;
        ELSE
            changed := changed + 1;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.import_avtalegiro_agreements(text) IS
    'read a Nets AvtaleGiro agreements file: each agreement of a registered KID takes the file''s notification flag and becomes active (registration type 0 or 1) or deleted (2); KIDs not registered are counted unknown (register them with register_avtalegiro_agreement); the same file again changes nothing (repeated); 22P02 invalid file';

CREATE FUNCTION subbilling.avtalegiro_claim_file(run_date date, data_transmitter text, agreement_id text,
                                                 assignment_account text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
    ids     bigint[];
    attempts integer[];
    accts   bigint[];
    kids    text[];
    notes   boolean[];
    dues    date[];
    amounts subbilling.price[];
    names   text[];
    specs   text[];
    locked  bigint[];
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    PERFORM subbilling_internal.lock_row('avtalegiro_claims');
    SELECT f.content INTO body FROM subbilling.avtalegiro_files f
     WHERE f.kind = 'claims' AND f.run_date = avtalegiro_claim_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same claims
    END IF;
    IF subbilling_internal.on_citus() THEN
        -- on Citus a query over every shard cannot lock: the candidates are locked one by one
        -- by (account_id, id), then read again (docs/citus.md)
        locked := subbilling_internal.lock_payment_requests_citus('avtalegiro');
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   AND r.id = ANY (locked)) d;
    ELSE
        SELECT coalesce(array_agg(d.id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.attempt ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.account_id ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.kid ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.notify ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.due ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.amount ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.name ORDER BY d.account_id, d.id), '{}'),
               coalesce(array_agg(d.spec ORDER BY d.account_id, d.id), '{}')
          INTO ids, attempts, accts, kids, notes, dues, amounts, names, specs
          FROM (SELECT r.id, r.attempt, r.account_id, g.kid, g.notify, greatest(i.due_date, run_date) AS due, r.amount,
                       left(ac.name, 10) AS name,
                       'Faktura ' || coalesce(i.number, i.id::text) AS spec
                  FROM subbilling.payment_requests r
                  JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
                  JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
                  JOIN subbilling.accounts ac ON ac.id = r.account_id
                  JOIN subbilling.avtalegiro_agreements g ON g.account_id = r.account_id AND g.status = 'active'
                 WHERE pm.kind = 'avtalegiro' AND r.status = 'requested' AND i.currency = 'NOK'
                   AND NOT EXISTS (SELECT 1 FROM subbilling.avtalegiro_claims c
                                    WHERE c.payment_request_id = r.id AND c.attempt = r.attempt)
                   FOR UPDATE OF r) d;
    END IF;
    INSERT INTO subbilling.avtalegiro_files AS f (kind, run_date, sha256, content)
    VALUES ('claims', run_date, '\x'::bytea, '')
    RETURNING f.id INTO fid;
    body := subbilling_internal.avtalegiro_claims_text(
        ARRAY[data_transmitter, lpad(fid::text, 7, '0'), '00008080', agreement_id, lpad(fid::text, 7, '0'),
              assignment_account],
        dues, (SELECT coalesce(array_agg(minor_units(a) ORDER BY k), '{}') FROM unnest(amounts) WITH ORDINALITY AS u(a, k)),
        kids, notes, names, specs);
    UPDATE subbilling.avtalegiro_files f SET sha256 = sha256(convert_to(body, 'LATIN1')), content = body WHERE f.id = fid;
    INSERT INTO subbilling.avtalegiro_claims (payment_request_id, attempt, account_id, file_id, kid, notify, due_date, amount)
    SELECT u.id, u.attempt, u.account_id, fid, u.kid, u.notify, u.due, u.amount
      FROM unnest(ids, attempts, accts, kids, notes, dues, amounts) AS u(id, attempt, account_id, kid, notify, due, amount);
    RETURN body;
END
$$;
COMMENT ON FUNCTION subbilling.avtalegiro_claim_file(date, text, text, text) IS
    'the AvtaleGiro payment-claim transmission of a run date (the payee''s data transmitter number, agreement ID and account at Nets): a claim for every requested payment of an account paying by AvtaleGiro with an active agreement, in NOK, not claimed before, with the agreement''s KID, type 21 if the bank notifies the payer else 02, due on the invoice''s due date (or the run date if later), the invoice number as specification; transmission and assignment number are the file''s id; the same run date again returns the same file';

-- the OCR giro settlement of a claim: the agreement's KID and the amount name the claim
CREATE FUNCTION subbilling_internal.avtalegiro_claim_of(kid text, amount subbilling.price)
    RETURNS subbilling.avtalegiro_claims
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT c FROM subbilling.avtalegiro_claims c
     WHERE c.kid = avtalegiro_claim_of.kid AND c.outcome = 'sent'
       AND c.amount::text = avtalegiro_claim_of.amount::text
     ORDER BY c.due_date, c.payment_request_id, c.attempt
     LIMIT 1
$$;
COMMENT ON FUNCTION subbilling_internal.avtalegiro_claim_of(text, subbilling.price) IS
    'the AvtaleGiro claim an OCR giro transaction of type 15 settles: the earliest one sent with that KID and amount, or NULL';

REVOKE ALL ON FUNCTION subbilling_internal.avtalegiro_claims_text(text[], date[], bigint[], text[], boolean[], text[], text[]),
    subbilling_internal.avtalegiro_claim_of(text, subbilling.price) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.register_avtalegiro_agreement(bigint, text, boolean, date),
    subbilling.import_avtalegiro_agreements(text), subbilling.avtalegiro_claim_file(date, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.register_avtalegiro_agreement(bigint, text, boolean, date),
    subbilling.import_avtalegiro_agreements(text), subbilling.avtalegiro_claim_file(date, text, text, text)
    TO subbilling_operator;
GRANT SELECT ON subbilling.avtalegiro_agreements, subbilling.avtalegiro_claims, subbilling.avtalegiro_files
    TO subbilling_operator;
