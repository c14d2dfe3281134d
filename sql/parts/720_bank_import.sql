
-- ---------------------------------------------------------------------------
-- bank files: import_bgmax, import_nets_ocr; the bank_files register
-- docs/bankfiles.md
--
-- An import checks the whole file first (parse_bgmax / parse_nets_ocr and the
-- summaries: 22P02 with line and reason), then records it in bank_files and
-- registers each payment with register_payment, all in the caller's
-- transaction: any error anywhere leaves nothing behind.  Idempotent per
-- file (the same content returns the first import's row, nothing new) and
-- per transaction (external_id = the bank's own identifiers, so a payment
-- that arrives again in another file is not registered twice).
-- ---------------------------------------------------------------------------

CREATE TABLE subbilling.bank_files (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    format              text NOT NULL
                        CONSTRAINT bank_files_format_check CHECK (format IN ('bgmax', 'nets_ocr')),
    sha256              bytea NOT NULL
                        CONSTRAINT bank_files_sha256_unique UNIQUE
                        CONSTRAINT bank_files_sha256_length CHECK (octet_length(sha256) = 32),
    received_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    received_by         name NOT NULL DEFAULT session_user,
    file_created_at     timestamp,
    transmission        text,
    test                boolean NOT NULL DEFAULT false,
    records             integer NOT NULL CONSTRAINT bank_files_records_check CHECK (records >= 0),
    sections            integer NOT NULL CONSTRAINT bank_files_sections_check CHECK (sections >= 0),
    payments            integer NOT NULL CONSTRAINT bank_files_payments_check CHECK (payments >= 0),
    imported            integer NOT NULL DEFAULT 0,
    already_imported    integer NOT NULL DEFAULT 0,
    unmatched           integer NOT NULL DEFAULT 0,
    skipped             integer NOT NULL DEFAULT 0,
    total               subbilling.price,
    content             text NOT NULL,
    warnings            text[] NOT NULL DEFAULT '{}',
    CONSTRAINT bank_files_outcomes CHECK (imported >= 0 AND already_imported >= 0 AND unmatched >= 0
                                          AND skipped >= 0
                                          AND imported + already_imported + unmatched + skipped <= payments)
);
SELECT pg_catalog.pg_extension_config_dump('subbilling.bank_files', '');
COMMENT ON TABLE subbilling.bank_files IS
    'bank files imported by import_bgmax / import_nets_ocr (global, operational: a file spans accounts): format, SHA-256 of the file''s ISO-8859-1 bytes (unique: the same file is imported once), who and when, the start records'' details, the outcome per payment (imported = matched to an invoice, unmatched = queued in unmatched_payments, already_imported = registered before by its bank identifiers, skipped = zero amount), the total and the file itself';
COMMENT ON COLUMN subbilling.bank_files.sha256 IS 'SHA-256 of the file as ISO-8859-1 bytes: for a file received from the bank, sha256sum of the file';
COMMENT ON COLUMN subbilling.bank_files.file_created_at IS 'BgMax: the start record''s timestamp (Bankgirot''s local time); NULL for Nets';
COMMENT ON COLUMN subbilling.bank_files.transmission IS 'Nets: data transmitter and transmission number, "00008080:0000123"; NULL for BgMax';
COMMENT ON COLUMN subbilling.bank_files.warnings IS 'what the file needed tolerated to be read, one element per kind: "line <first> (<n> lines): <what>" (bgmax_warnings, nets_ocr_warnings)';
COMMENT ON COLUMN subbilling.bank_files.total IS 'the sum of the file''s payments; NULL if the file has none or mixes currencies (old BgMax files with EUR deposits)';

-- The import's steps, internal helpers (schema subbilling_internal):
--   bank_file_read      parse and summarise the whole file (nothing written)
--   bank_file_check     refuse what is not to be imported (test file, money out,
--                       implausible dates), with the line
--   bank_file_record    the bank_files row: a new one, or the first import of the same content
--   bank_file_register  register each payment, idempotent on its bank identifiers
--   import_bank_file    the four in order

CREATE TYPE subbilling_internal.bank_payment AS (
    line        integer,
    amount      subbilling.price,
    reference   text,
    received_on date,
    external_id text,
    method      text
);
COMMENT ON TYPE subbilling_internal.bank_payment IS
    'one payment of a bank file as an import registers it: its line, amount, reference, date, bank identifiers (external_id) and payment method';

CREATE TYPE subbilling_internal.bank_file_head AS (
    created_at   timestamp,
    test         boolean,
    transmission text,
    records      integer,
    sections     integer,
    total        subbilling.price,
    warnings     text[]
);
COMMENT ON TYPE subbilling_internal.bank_file_head IS
    'what an import records of a bank file besides its payments: the start records, the checked counts, the Nets total, the tolerated irregularities';

CREATE FUNCTION subbilling_internal.bank_file_read(fmt text, file text,
                                                   OUT head subbilling_internal.bank_file_head,
                                                   OUT rows subbilling_internal.bank_payment[])
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF fmt = 'bgmax' THEN
        SELECT s.created_at, s.test, NULL, s.records, s.deposits, NULL
          INTO head.created_at, head.test, head.transmission, head.records, head.sections, head.total
          FROM subbilling.bgmax_summary(file) s;
        SELECT array_agg(ROW(p.line, p.amount, p.reference, p.received_on, p.bank_ref,
                             CASE WHEN p.channel = 4 THEN 'autogiro' ELSE 'bankgiro' END)::subbilling_internal.bank_payment
                         ORDER BY p.line)
          INTO rows
          FROM subbilling.parse_bgmax(file) p;
        SELECT array_agg(format('line %s (%s line%s): %s', w.line, w.lines,
                                CASE WHEN w.lines = 1 THEN '' ELSE 's' END, w.warning))
          INTO head.warnings
          FROM subbilling.bgmax_warnings(file) w;
    ELSIF fmt = 'nets_ocr' THEN
        SELECT false, s.data_transmitter || ':' || s.transmission_number, s.records, s.assignments, s.total
          INTO head.test, head.transmission, head.records, head.sections, head.total
          FROM subbilling.nets_ocr_summary(file) s;
        SELECT array_agg(ROW(p.line, p.amount, p.reference, p.received_on, p.bank_ref,
                             CASE WHEN p.transaction_type = 15 THEN 'avtalegiro' ELSE 'ocr_giro' END)::subbilling_internal.bank_payment
                         ORDER BY p.line)
          INTO rows
          FROM subbilling.parse_nets_ocr(file) p;
        SELECT array_agg(format('line %s (%s line%s): %s', w.line, w.lines,
                                CASE WHEN w.lines = 1 THEN '' ELSE 's' END, w.warning))
          INTO head.warnings
          FROM subbilling.nets_ocr_warnings(file) w;
    ELSE
        RAISE EXCEPTION 'unknown bank file format "%"', fmt
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    rows := coalesce(rows, '{}');
    head.warnings := coalesce(head.warnings, '{}');
    IF fmt = 'bgmax' THEN
        -- the sum when the file has one currency (old files mix SEK and EUR deposits)
        IF (SELECT count(DISTINCT subbilling.currency(r.amount)) FROM unnest(rows) r) = 1 THEN
            head.total := (SELECT sum(r.amount) FROM unnest(rows) r);
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bank_file_read(text, text) IS
    'import step 1: the whole bank file checked and parsed (22P02 with line and reason if not valid), nothing written: its head and its payments';

CREATE FUNCTION subbilling_internal.bank_file_check(fmt text, head subbilling_internal.bank_file_head,
                                                    rows subbilling_internal.bank_payment[],
                                                    allow_test boolean)
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r       subbilling_internal.bank_payment;
    what    text := CASE fmt WHEN 'bgmax' THEN 'BgMax' ELSE 'Nets OCR giro' END;
BEGIN
    IF head.test AND NOT coalesce(allow_test, false) THEN
        RAISE EXCEPTION 'BgMax test file refused'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The start record marks the file as a test file (T, position 45).',
                  HINT = 'Pass allow_test => true to import a test file, in a test database.';
    END IF;
    -- money that went out (BgMax deductions, Nets reversals) is not a payment
    SELECT * INTO r FROM unnest(rows) x WHERE minor_units(x.amount) < 0 ORDER BY x.line LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% file with a negative amount refused', what
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Line %s: %s of %s%s.', r.line,
                                  CASE fmt WHEN 'bgmax' THEN 'deduction' ELSE 'transaction' END,
                                  r.amount, coalesce(' with reference ' || r.reference, '')),
                  HINT = 'Deductions and reversals are not payments: register the file''s other payments with register_payment and settle these by hand.';
    END IF;
    -- a date as the file has it, but only a plausible one is booked
    SELECT * INTO r FROM unnest(rows) x
     WHERE minor_units(x.amount) <> 0
       AND (x.received_on < date '2000-01-01' OR x.received_on > (current_date + interval '10 years')::date)
     ORDER BY x.line LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% file with an implausible payment date refused', what
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Line %s: payment date %s; dates from 2000-01-01 to 10 years after today are booked.',
                                  r.line, r.received_on),
                  HINT = 'The file''s dates are as the bank wrote them (parse_bgmax, parse_nets_ocr show them): register these payments by hand with the right date.';
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bank_file_check(text, subbilling_internal.bank_file_head, subbilling_internal.bank_payment[], boolean) IS
    'import step 2: refuse a test file (22023) unless allowed, a negative amount (0A000) and an implausible payment date (22023), with the line';

CREATE FUNCTION subbilling_internal.bank_file_record(fmt text, file text, head subbilling_internal.bank_file_head,
                                                     npayments integer,
                                                     OUT f subbilling.bank_files, OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    digest  bytea;
BEGIN
    -- one import at a time; the same content returns the first import
    PERFORM subbilling_internal.lock_row('bank_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT * INTO f FROM subbilling.bank_files b WHERE b.sha256 = digest;
    IF FOUND THEN
        repeated := true;
        RETURN;
    END IF;
    repeated := false;
    INSERT INTO subbilling.bank_files AS b (format, sha256, file_created_at, transmission, test, records, sections,
                                            payments, total, content, warnings)
    VALUES (fmt, digest, head.created_at, head.transmission, head.test, head.records, head.sections,
            npayments, head.total, file, head.warnings)
    RETURNING * INTO f;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bank_file_record(text, text, subbilling_internal.bank_file_head, integer) IS
    'import step 3: under the bank_import lock, the bank_files row of the same content if there is one (repeated), else a new row';

CREATE FUNCTION subbilling_internal.bank_file_register(file_id bigint, rows subbilling_internal.bank_payment[])
    RETURNS subbilling.bank_files
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    r           subbilling_internal.bank_payment;
    claim_req   bigint;
    claim_try   integer;
    claim_acct  bigint;
    prior       boolean;
    pid         bigint;
    n_imp       integer := 0;
    n_already   integer := 0;
    n_unm       integer := 0;
    n_skip      integer := 0;
    f           subbilling.bank_files;
BEGIN
    FOREACH r IN ARRAY rows LOOP
        IF minor_units(r.amount) = 0 THEN
            n_skip := n_skip + 1;
            CONTINUE;
        END IF;
        prior := EXISTS (SELECT 1 FROM subbilling.unmatched_payments u WHERE u.external_id = r.external_id)
                 OR EXISTS (SELECT 1 FROM subbilling.payments p WHERE p.external_id = r.external_id);
        -- an AvtaleGiro settlement carries the agreement's KID: the claim names the invoice
        claim_req := NULL;
        IF r.method = 'avtalegiro' AND prior THEN
            -- registered before (under its invoice's reference, if a claim named it)
            r.reference := coalesce((SELECT p.reference FROM subbilling.payments p
                                      WHERE p.external_id = r.external_id LIMIT 1), r.reference);
        ELSIF r.method = 'avtalegiro' THEN
            SELECT c.payment_request_id, c.attempt, c.account_id INTO claim_req, claim_try, claim_acct
              FROM subbilling_internal.avtalegiro_claim_of(r.reference, r.amount) c;
            IF claim_req IS NOT NULL THEN
                r.reference := (SELECT i.reference FROM subbilling.payment_requests q
                                  JOIN subbilling.invoices i ON i.account_id = q.account_id AND i.id = q.invoice_id
                                 WHERE q.account_id = claim_acct AND q.id = claim_req);
            END IF;
        END IF;
        pid := subbilling.register_payment(r.amount, r.reference, r.received_on, r.method, r.external_id);
        IF claim_req IS NOT NULL THEN
            UPDATE subbilling.avtalegiro_claims c SET outcome = 'settled', payment_id = pid
             WHERE c.payment_request_id = claim_req AND c.attempt = claim_try;
        END IF;
        IF prior THEN
            n_already := n_already + 1;
        ELSIF EXISTS (SELECT 1 FROM subbilling.unmatched_payments u WHERE u.id = pid) THEN
            n_unm := n_unm + 1;
        ELSE
            n_imp := n_imp + 1;
        END IF;
    END LOOP;
    UPDATE subbilling.bank_files b
       SET imported = n_imp, already_imported = n_already, unmatched = n_unm, skipped = n_skip
     WHERE b.id = file_id
    RETURNING * INTO f;
    RETURN f;
END
$$;
COMMENT ON FUNCTION subbilling_internal.bank_file_register(bigint, subbilling_internal.bank_payment[]) IS
    'import step 4: register each non-zero payment with register_payment (idempotent on its bank identifiers; an AvtaleGiro settlement under the reference of the invoice its claim was for) and record the outcome counts on the bank_files row';

CREATE FUNCTION subbilling_internal.import_bank_file(fmt text, file text, allow_test boolean,
                                                     OUT f subbilling.bank_files, OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    rd  record;
    rc  record;
BEGIN
    IF file IS NULL THEN
        RAISE EXCEPTION 'no bank file'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    rd := subbilling_internal.bank_file_read(fmt, file);
    PERFORM subbilling_internal.bank_file_check(fmt, rd.head, rd.rows, allow_test);
    rc := subbilling_internal.bank_file_record(fmt, file, rd.head, cardinality(rd.rows));
    f := rc.f;
    repeated := rc.repeated;
    IF NOT repeated THEN
        f := subbilling_internal.bank_file_register((f).id, rd.rows);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling_internal.import_bank_file(text, text, boolean) IS
    'import a bank file of format bgmax or nets_ocr (see import_bgmax): read, check, record, register; returns the bank_files row and whether the same file had been imported before';

REVOKE ALL ON FUNCTION subbilling_internal.bank_file_read(text, text),
    subbilling_internal.bank_file_check(text, subbilling_internal.bank_file_head, subbilling_internal.bank_payment[], boolean),
    subbilling_internal.bank_file_record(text, text, subbilling_internal.bank_file_head, integer),
    subbilling_internal.bank_file_register(bigint, subbilling_internal.bank_payment[]),
    subbilling_internal.import_bank_file(text, text, boolean) FROM PUBLIC;

CREATE FUNCTION subbilling.import_bgmax(file text, allow_test boolean DEFAULT false,
                                        OUT file_id bigint, OUT format text, OUT payments integer,
                                        OUT imported integer, OUT already_imported integer,
                                        OUT unmatched integer, OUT skipped integer,
                                        OUT total subbilling.price, OUT received_at timestamptz,
                                        OUT repeated boolean)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT (r.f).id, (r.f).format, (r.f).payments, (r.f).imported, (r.f).already_imported,
           (r.f).unmatched, (r.f).skipped, (r.f).total, (r.f).received_at, r.repeated
      FROM subbilling_internal.import_bank_file('bgmax', $1, $2) r
$$;
COMMENT ON FUNCTION subbilling.import_bgmax(text, boolean) IS
    'import a Bankgirot BgMax file: refused whole (22P02, line and reason) unless every check passes; test files (T) only with allow_test; deductions refused (0A000); each payment registered with register_payment (method bankgiro, autogiro for channel 4; external_id bgmax:<receiver bankgiro>:<payment date>:<deposit serial>:<position in the deposit>); payment dates before 2000 or over 10 years ahead refused (22023, the line); tolerated irregularities recorded in bank_files.warnings; the same file again returns the first import (repeated = true); returns the bank_files id and the outcome counts';

CREATE FUNCTION subbilling.import_nets_ocr(file text,
                                           OUT file_id bigint, OUT format text, OUT payments integer,
                                           OUT imported integer, OUT already_imported integer,
                                           OUT unmatched integer, OUT skipped integer,
                                           OUT total subbilling.price, OUT received_at timestamptz,
                                           OUT repeated boolean)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT (r.f).id, (r.f).format, (r.f).payments, (r.f).imported, (r.f).already_imported,
           (r.f).unmatched, (r.f).skipped, (r.f).total, (r.f).received_at, r.repeated
      FROM subbilling_internal.import_bank_file('nets_ocr', $1, false) r
$$;
COMMENT ON FUNCTION subbilling.import_nets_ocr(text) IS
    'import a Nets OCR giro file: refused whole (22P02, line and reason) unless every check passes; negative transactions (reversals) refused (0A000); each transaction registered with register_payment (method ocr_giro, avtalegiro for type 15; external_id nets:<agreement ID>:<assignment number>:<transaction number>); the same file again returns the first import (repeated = true); returns the bank_files id and the outcome counts';

-- privileges: imports by the operator only; the register readable by the operator
REVOKE ALL ON FUNCTION subbilling_internal.import_bank_file(text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.import_bgmax(text, boolean), subbilling.import_nets_ocr(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.import_bgmax(text, boolean), subbilling.import_nets_ocr(text)
    TO subbilling_operator;
GRANT SELECT ON subbilling.bank_files TO subbilling_operator;
