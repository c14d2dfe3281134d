-- ---------------------------------------------------------------------------
-- direct debit: Autogiro results and mandate requests (Bankgirot, Sweden)
-- docs/directdebit.md
--
-- The report of rejected payment orders (AVVISADE BET UPPDR) read back: a
-- claim Bankgirot refused before its payment date becomes payment_failed
-- with the reason (retries, then dunning).  Mandates requested by hand
-- (request_autogiro_mandate) and cancellations (cancel_autogiro_mandate)
-- go to Bankgirot in the mandate request file (autogiro_mandate_file: 04
-- new, 03 cancel; one file per run date, each request sent once); the
-- mandate advice (import_autogiro_mandates) answers them.
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling_internal.autogiro_rejection_reason(comment_code integer)
    RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE comment_code
        WHEN 1 THEN 'no mandate'
        WHEN 2 THEN 'account not approved or closed'
        WHEN 3 THEN 'mandate stopped'
        WHEN 4 THEN 'wrong payer bankgiro number'
        WHEN 5 THEN 'wrong payee bankgiro number'
        WHEN 6 THEN 'wrong period code'
        WHEN 7 THEN 'wrong number of repetitions'
        WHEN 8 THEN 'amount not numeric'
        WHEN 9 THEN 'outgoing payments barred'
        WHEN 10 THEN 'bankgiro number unknown to Bankgirot'
        WHEN 12 THEN 'wrong payment date'
        WHEN 13 THEN 'payment date passed'
        WHEN 15 THEN 'payee bankgiro differs between opening and payment record'
        WHEN 24 THEN 'amount over the maximum'
        ELSE 'comment code ' || lpad(comment_code::text, 2, '0') END
$$;
COMMENT ON FUNCTION subbilling_internal.autogiro_rejection_reason(integer) IS
    'the reason of a comment code of Bankgirot''s report of rejected payment orders, in English (01 no mandate, 02 account not approved or closed, ... 24 amount over the maximum)';

CREATE FUNCTION subbilling.import_autogiro_rejections(file text,
                                                      OUT file_id bigint, OUT refused integer,
                                                      OUT unknown integer, OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       record;
    c       subbilling.autogiro_claims;
    digest  bytea;
    pid     bigint;
BEGIN
    refused := 0; unknown := 0;
    IF EXISTS (SELECT 1 FROM subbilling.parse_autogiro(file) p WHERE p.kind <> 'rejections') THEN
        RAISE EXCEPTION 'not an Autogiro report of rejected payment orders'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A payment specification is read by import_autogiro_payments, a mandate advice by import_autogiro_mandates.';
    END IF;
    PERFORM subbilling_internal.lock_row('autogiro_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT f.id INTO file_id FROM subbilling.autogiro_files f WHERE f.kind = 'rejections' AND f.sha256 = digest;
    repeated := FOUND;
    IF repeated THEN
        RETURN;
    END IF;
    INSERT INTO subbilling.autogiro_files AS f (kind, sha256, content) VALUES ('rejections', digest, file)
    RETURNING f.id INTO file_id;
    FOR r IN SELECT * FROM subbilling.parse_autogiro(file) p ORDER BY p.line LOOP
        -- a claim of ours: payer number, payment date, amount (and reference when several fit)
        c := NULL;
        IF r.code = 82 THEN
            SELECT * INTO c FROM subbilling.autogiro_claims x
             WHERE x.payer_number = r.payer_number AND x.due_date = r.date
               AND minor_units(x.amount) = r.amount_minor AND x.outcome = 'sent'
             ORDER BY (x.reference = coalesce(r.reference, '')) DESC, x.payment_request_id, x.attempt
             LIMIT 1
               FOR UPDATE;
        END IF;
        IF r.code = 32 THEN
            -- an outgoing payment (a refund paid back) refused: the money did not leave
            pid := subbilling_internal.autogiro_payout_of(r.payer_number, r.date, r.amount_minor, r.reference);
            IF pid IS NULL THEN
                unknown := unknown + 1;
            ELSE
                PERFORM subbilling_internal.autogiro_payout_refused(pid, r.status, r.written_on);
                refused := refused + 1;
            END IF;
            CONTINUE;
        END IF;
        IF c.payment_request_id IS NULL THEN
            unknown := unknown + 1;     -- a claim not ours
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM subbilling.payment_requests q
                    WHERE q.account_id = c.account_id AND q.id = c.payment_request_id
                      AND q.status = 'requested' AND q.attempt = c.attempt) THEN
            PERFORM subbilling.payment_failed(c.payment_request_id,
                                              'autogiro: ' || subbilling_internal.autogiro_rejection_reason(r.status),
                                              r.written_on);
        END IF;
        UPDATE subbilling.autogiro_claims x SET outcome = 'refused', status_code = r.status
         WHERE x.payment_request_id = c.payment_request_id AND x.attempt = c.attempt;
        refused := refused + 1;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.import_autogiro_rejections(text) IS
    'read Bankgirot''s report of rejected payment orders (AVVISADE BET UPPDR): each claim of ours it names (payer number, payment date, amount, reference) is refused (autogiro_claims.outcome, status_code = the comment code) and reported with payment_failed on the report''s date, reason "autogiro: " and the comment code''s (retries, then dunning); each refused payout of ours (32, autogiro_refund) is refused and its money registered back; claims and payouts not ours counted unknown; the same file again changes nothing (repeated); 22P02 invalid file, 22023 another kind of Autogiro file';

CREATE FUNCTION subbilling.request_autogiro_mandate(account_id bigint, payer_number text, bank_account text,
                                                    id_number text, requested_on date DEFAULT current_date)
    RETURNS subbilling.autogiro_mandates
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    m       subbilling.autogiro_mandates;
    acct    text := regexp_replace(coalesce(bank_account, ''), '[ -]', '', 'g');
    idn     text := regexp_replace(coalesce(id_number, ''), '[ -]', '', 'g');
BEGIN
    PERFORM subbilling_internal.check_date('requested_on', requested_on);
    IF payer_number IS NULL OR payer_number !~ '^[1-9][0-9]{0,15}$' THEN
        RAISE EXCEPTION 'invalid Autogiro payer number "%"', coalesce(payer_number, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A payer number is 1 to 16 digits without leading zeros.';
    END IF;
    IF acct !~ '^[0-9]{5,16}$' THEN
        RAISE EXCEPTION 'invalid bank account "%"', coalesce(bank_account, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The payer''s account is its clearing number and account number, 5 to 16 digits.';
    END IF;
    IF idn !~ '^([0-9]{10}|[0-9]{12})$' THEN
        RAISE EXCEPTION 'invalid personal or organisation number "%"', coalesce(id_number, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A personal number has 12 digits (YYYYMMDDNNNN), an organisation number 10.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM subbilling.accounts a WHERE a.id = account_id) THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO subbilling.autogiro_mandates AS x (payer_number, account_id, status, bank_account, id_number,
                                                   changed_on, source, request)
    VALUES (payer_number, account_id, 'requested', acct, idn, requested_on, 'hand', 'new')
    ON CONFLICT ON CONSTRAINT autogiro_mandates_pkey DO UPDATE
       SET status = 'requested', bank_account = EXCLUDED.bank_account, id_number = EXCLUDED.id_number,
           status_code = NULL, changed_on = EXCLUDED.changed_on, source = 'hand', request = 'new',
           request_file_id = NULL
     WHERE x.account_id = EXCLUDED.account_id AND x.status <> 'active'
    RETURNING * INTO m;
    IF NOT FOUND THEN
        SELECT * INTO m FROM subbilling.autogiro_mandates x WHERE x.payer_number = request_autogiro_mandate.payer_number;
        IF m.account_id <> account_id THEN
            RAISE EXCEPTION 'Autogiro payer number % belongs to another account', payer_number
                USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN m;       -- an active mandate is left as it is
END
$$;
COMMENT ON FUNCTION subbilling.request_autogiro_mandate(bigint, text, text, text, date) IS
    'a new Autogiro mandate to ask Bankgirot for: the account''s payer number, the payer''s bank account (clearing and account number) and personal (12 digits) or organisation number (10); status requested (nothing is claimed on it) until the mandate advice approves it; sent in the next autogiro_mandate_file; an active mandate of that payer number is returned unchanged; 22023 bad value, 42704 no such account, 23505 the payer number is another account''s';

CREATE FUNCTION subbilling.cancel_autogiro_mandate(payer_number text, cancelled_on date DEFAULT current_date)
    RETURNS subbilling.autogiro_mandates
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    m   subbilling.autogiro_mandates;
BEGIN
    PERFORM subbilling_internal.check_date('cancelled_on', cancelled_on);
    SELECT * INTO m FROM subbilling.autogiro_mandates x WHERE x.payer_number = cancel_autogiro_mandate.payer_number
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no Autogiro mandate with payer number %', coalesce(payer_number, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF m.status IN ('cancelled', 'rejected') AND m.request IS DISTINCT FROM 'new' THEN
        RETURN m;
    END IF;
    -- Bankgirot knows the mandate (active, or its request sent): ask it to cancel; else nothing to send
    UPDATE subbilling.autogiro_mandates x
       SET status = 'cancelled', changed_on = cancelled_on, source = 'hand',
           request = CASE WHEN m.status = 'active' OR m.request_file_id IS NOT NULL THEN 'cancel' END,
           request_file_id = NULL
     WHERE x.payer_number = m.payer_number
    RETURNING * INTO m;
    RETURN m;
END
$$;
COMMENT ON FUNCTION subbilling.cancel_autogiro_mandate(text, date) IS
    'end an account''s Autogiro mandate: cancelled at once (nothing more is claimed on it); a mandate Bankgirot knows (active, or requested and sent) is cancelled there by the next autogiro_mandate_file (03); a request not yet sent is withdrawn; 42704 no such payer number';

CREATE FUNCTION subbilling.autogiro_mandate_file(run_date date, customer_number text, bankgiro text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    fid     bigint;
    body    text;
BEGIN
    PERFORM subbilling_internal.check_date('run_date', run_date);
    IF customer_number IS NULL OR customer_number !~ '^[0-9]{6}$' THEN
        RAISE EXCEPTION 'invalid Bankgirot customer number "%"', coalesce(customer_number, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The payee''s customer number at Bankgirot has 6 digits.';
    END IF;
    IF bankgiro IS NULL OR bankgiro !~ '^[0-9]{1,10}$' THEN
        RAISE EXCEPTION 'invalid bankgiro number "%"', coalesce(bankgiro, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A bankgiro number is 1 to 10 digits, without the hyphen.';
    END IF;
    PERFORM subbilling_internal.lock_row('autogiro_mandate_requests');
    SELECT f.content INTO body FROM subbilling.autogiro_files f
     WHERE f.kind = 'mandate_requests' AND f.run_date = autogiro_mandate_file.run_date;
    IF FOUND THEN
        RETURN body;        -- rebuilt for the same day: the same requests
    END IF;
    INSERT INTO subbilling.autogiro_files AS f (kind, run_date, sha256, content)
    VALUES ('mandate_requests', run_date, '\x'::bytea, '')
    RETURNING f.id INTO fid;
    UPDATE subbilling.autogiro_mandates m SET request_file_id = fid
     WHERE m.request IS NOT NULL AND m.request_file_id IS NULL;
    -- 01 opening; 03 cancel (bankgiro, payer number); 04 new (and the payer's account, personal number)
    SELECT string_agg(rpad(l, 80) || E'\r\n', '' ORDER BY k, pn)
      INTO body
      FROM (SELECT 0 AS k, '' AS pn,
                   '01' || to_char(run_date, 'YYYYMMDD') || 'AUTOGIRO' || repeat(' ', 44) || customer_number
                        || lpad(bankgiro, 10, '0') AS l
            UNION ALL
            SELECT CASE m.request WHEN 'cancel' THEN 1 ELSE 2 END, lpad(m.payer_number, 16, '0'),
                   CASE m.request
                       WHEN 'cancel' THEN '03' || lpad(bankgiro, 10, '0') || lpad(m.payer_number, 16, '0')
                       ELSE '04' || lpad(bankgiro, 10, '0') || lpad(m.payer_number, 16, '0')
                                 || lpad(m.bank_account, 16, '0') || lpad(m.id_number, 12, '0') END
              FROM subbilling.autogiro_mandates m
             WHERE m.request_file_id = fid) r(k, pn, l);
    UPDATE subbilling.autogiro_files f SET sha256 = sha256(convert_to(body, 'LATIN1')), content = body WHERE f.id = fid;
    RETURN body;
END
$$;
COMMENT ON FUNCTION subbilling.autogiro_mandate_file(date, text, text) IS
    'the Autogiro mandate request file of a run date (payee''s customer number at Bankgirot and bankgiro number): the opening record, a cancellation (03) for every mandate cancelled by cancel_autogiro_mandate and a new mandate (04: payer number, bank account, personal or organisation number) for every one asked for by request_autogiro_mandate, each request sent once (autogiro_mandates.request_file_id); 80-character records, CR LF; the same run date again returns the same file; 22023 bad customer or bankgiro number';

-- ---------------------------------------------------------------- refunds paid out by Autogiro

CREATE TABLE subbilling.autogiro_payouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    payment_id      bigint NOT NULL,
    refund_id       bigint NOT NULL,
    payer_number    text NOT NULL,
    pay_date        date NOT NULL,
    amount          subbilling.price NOT NULL,
    reference       text NOT NULL,
    file_id         bigint REFERENCES subbilling.autogiro_files (id),
    outcome         text NOT NULL DEFAULT 'sent'
                    CONSTRAINT autogiro_payouts_outcome_check CHECK (outcome IN ('sent', 'paid', 'refused')),
    status_code     integer,
    returned_payment_id bigint
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.autogiro_payouts', '');
COMMENT ON TABLE subbilling.autogiro_payouts IS 'refunds paid back to the payer by Autogiro (outgoing payments, record 32): the refund booked (refund_id), the payer number and date, the claim file that carries it (file_id; NULL: the next one), and Bankgirot''s answer (paid; refused: status_code, 1/2 from the payment specification or the rejection report''s comment code, and the money registered back as returned_payment_id)';

CREATE FUNCTION subbilling.autogiro_refund(payment_id bigint, amount subbilling.price, pay_on date DEFAULT current_date)
    RETURNS subbilling.autogiro_payouts
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    p       subbilling.payments;
    payer   text;
    rid     bigint;
    o       subbilling.autogiro_payouts;
BEGIN
    PERFORM subbilling_internal.check_date('pay_on', pay_on);
    SELECT * INTO p FROM subbilling.payments x WHERE x.id = payment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF p.method <> 'autogiro' OR amount IS NULL OR currency(amount) <> 'SEK' THEN
        RAISE EXCEPTION 'payment % cannot be paid back by Autogiro', payment_id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Autogiro pays back payments made by Autogiro, in SEK.',
                  HINT = 'Use refund() and pay the money back another way.';
    END IF;
    -- the payer number the money came from, while its mandate is active
    SELECT m.payer_number INTO payer
      FROM subbilling.autogiro_mandates m
     WHERE m.account_id = p.account_id AND m.status = 'active'
     ORDER BY (m.payer_number = (SELECT c.payer_number FROM subbilling.autogiro_claims c WHERE c.payment_id = p.id LIMIT 1))
              IS TRUE DESC
     LIMIT 1;
    IF payer IS NULL THEN
        RAISE EXCEPTION 'account % has no active Autogiro mandate to pay back to', p.account_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use refund() and pay the money back another way.';
    END IF;
    rid := subbilling.refund(payment_id, amount);       -- booked as any refund
    INSERT INTO subbilling.autogiro_payouts AS x (account_id, payment_id, refund_id, payer_number, pay_date, amount, reference)
    VALUES (p.account_id, p.id, rid, payer, pay_on, amount, coalesce(p.reference, ''))
    RETURNING * INTO o;
    RETURN o;
END
$$;
COMMENT ON FUNCTION subbilling.autogiro_refund(bigint, subbilling.price, date) IS
    'pay part or all of an Autogiro payment back to the payer by Autogiro: booked at once by refund() (customer credit first, then the invoice reopened), and paid out by an outgoing payment (32) in the next autogiro_claim_file, on pay_on or that file''s run date if later, to the payer number of the account''s active mandate; the payment specification confirms it (paid) or refuses it (refused: the money is registered back as a payment); 42704 no such payment, 22023 not an Autogiro payment in SEK, no active mandate, or what refund() refuses';

-- a payout Bankgirot did not make: the money did not leave, so it is registered back
CREATE FUNCTION subbilling_internal.autogiro_payout_refused(payout_id bigint, status_code integer, refused_on date)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    o       subbilling.autogiro_payouts;
    pid     bigint;
BEGIN
    SELECT * INTO o FROM subbilling.autogiro_payouts x WHERE x.id = payout_id FOR UPDATE;
    pid := subbilling.register_payment(o.amount, nullif(o.reference, ''), refused_on, 'autogiro',
                                       format('autogiro:payout:%s:refused', o.id));
    UPDATE subbilling.autogiro_payouts x
       SET outcome = 'refused', status_code = autogiro_payout_refused.status_code, returned_payment_id = pid
     WHERE x.id = o.id;
END
$$;
COMMENT ON FUNCTION subbilling_internal.autogiro_payout_refused(bigint, integer, date) IS
    'an Autogiro payout refused by Bankgirot: marked refused with its code, and its amount registered back (register_payment under the refunded payment''s reference, external_id autogiro:payout:<id>:refused), undoing the refund''s money movement';

-- the payout an answer (32) names: payer number, date, amount (and reference when several fit)
CREATE FUNCTION subbilling_internal.autogiro_payout_of(payer_number text, pay_date date, amount_minor bigint,
                                                       reference text)
    RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT x.id FROM subbilling.autogiro_payouts x
     WHERE x.payer_number = autogiro_payout_of.payer_number AND x.pay_date = autogiro_payout_of.pay_date
       AND minor_units(x.amount) = amount_minor AND x.outcome = 'sent' AND x.file_id IS NOT NULL
     ORDER BY (x.reference = coalesce(autogiro_payout_of.reference, '')) DESC, x.id
     LIMIT 1
$$;
COMMENT ON FUNCTION subbilling_internal.autogiro_payout_of(text, date, bigint, text) IS
    'the Autogiro payout sent that an outgoing payment (32) of a result file answers: the first with that payer number, date and amount, the same reference first; NULL if none';

REVOKE ALL ON FUNCTION subbilling_internal.autogiro_rejection_reason(integer),
    subbilling_internal.autogiro_payout_refused(bigint, integer, date),
    subbilling_internal.autogiro_payout_of(text, date, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.import_autogiro_rejections(text), subbilling.request_autogiro_mandate(bigint, text, text, text, date),
    subbilling.cancel_autogiro_mandate(text, date), subbilling.autogiro_mandate_file(date, text, text),
    subbilling.autogiro_refund(bigint, subbilling.price, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.import_autogiro_rejections(text), subbilling.request_autogiro_mandate(bigint, text, text, text, date),
    subbilling.cancel_autogiro_mandate(text, date), subbilling.autogiro_mandate_file(date, text, text),
    subbilling.autogiro_refund(bigint, subbilling.price, date) TO subbilling_operator;
GRANT SELECT ON subbilling.autogiro_payouts TO subbilling_operator;

-- ---------------------------------------------------------------------------
-- References of different countries can be equal: the Swedish OCR number of
-- one invoice (digits, length digit, Luhn digit) is the Norwegian KID of
-- another (digits, Luhn digit), e.g. OCR 638 of invoice 6 and KID 638 of
-- invoice 63.  When several invoices have a payment's reference,
-- register_payment keeps those whose reference is of the kind the payment
-- method carries (a Bankgirot payment: OCR; a Nets one: KID; Betalingsservice:
-- FIK), or, for other methods, those in the payment's currency.
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling_internal.reference_kind_of_method(method text)
    RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN method IN ('bankgiro', 'autogiro', 'bgmax') THEN 'ocr'
                WHEN method IN ('ocr_giro', 'avtalegiro', 'nets_ocr') THEN 'kid'
                WHEN method = 'betalingsservice' THEN 'fik' END
$$;
COMMENT ON FUNCTION subbilling_internal.reference_kind_of_method(text) IS
    'the kind of payment reference a payment method carries: ocr for Bankgirot''s (bankgiro, autogiro), kid for Nets Norway''s (ocr_giro, avtalegiro), fik for Betalingsservice; NULL for methods of no one country';

CREATE FUNCTION subbilling_internal.invoices_of_reference(ref text, method text, amount subbilling.price)
    RETURNS bigint[]
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT array_agg(x.id)
      FROM (SELECT i.id FROM subbilling.invoices i
             WHERE i.reference = ref AND i.status <> 'draft'
               AND CASE WHEN subbilling_internal.reference_kind_of_method(method) IS NOT NULL
                        THEN i.reference = subbilling.reference_of(subbilling_internal.reference_kind_of_method(method), i.id)
                        ELSE i.currency = subbilling.currency(amount) END
             LIMIT 2) x
$$;
COMMENT ON FUNCTION subbilling_internal.invoices_of_reference(text, text, subbilling.price) IS
    'register_payment, when several invoices have a payment''s reference: at most two of them whose reference is of the kind the method carries (reference_kind_of_method), or for other methods in the payment''s currency; NULL if none';

REVOKE ALL ON FUNCTION subbilling_internal.reference_kind_of_method(text),
    subbilling_internal.invoices_of_reference(text, text, subbilling.price) FROM PUBLIC;
