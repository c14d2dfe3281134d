
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
COMMENT ON COLUMN subbilling.bank_files.total IS 'the sum of the file''s payments; NULL if the file has none or mixes currencies (old BgMax files with EUR deposits)';

CREATE FUNCTION subbilling_internal.import_bank_file(fmt text, file text, allow_test boolean,
                                            OUT f subbilling.bank_files, OUT repeated boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    digest      bytea;
    created     timestamp;
    is_test     boolean := false;
    trans       text;
    nrec        integer;
    nsec        integer;
    nets_total  subbilling.price;
    lines       integer[];
    amounts     subbilling.price[];
    refs        text[];
    dates       date[];
    exts        text[];
    methods     text[];
    negative    integer;
    prior       boolean;
    pid         bigint;
    n_imp       integer := 0;
    n_already   integer := 0;
    n_unm       integer := 0;
    n_skip      integer := 0;
    i           integer;
BEGIN
    IF file IS NULL THEN
        RAISE EXCEPTION 'no bank file'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- 1. the whole file is checked and parsed before anything is written
    IF fmt = 'bgmax' THEN
        SELECT s.created_at, s.test, s.records, s.deposits INTO created, is_test, nrec, nsec
          FROM bgmax_summary(file) s;
        SELECT array_agg(p.line ORDER BY p.line), array_agg(p.amount ORDER BY p.line),
               array_agg(p.reference ORDER BY p.line), array_agg(p.received_on ORDER BY p.line),
               array_agg(p.bank_ref ORDER BY p.line),
               array_agg(CASE WHEN p.channel = 4 THEN 'autogiro' ELSE 'bankgiro' END ORDER BY p.line)
          INTO lines, amounts, refs, dates, exts, methods
          FROM parse_bgmax(file) p;
    ELSE
        SELECT s.data_transmitter || ':' || s.transmission_number, s.records, s.assignments, s.total
          INTO trans, nrec, nsec, nets_total
          FROM nets_ocr_summary(file) s;
        SELECT array_agg(p.line ORDER BY p.line), array_agg(p.amount ORDER BY p.line),
               array_agg(p.reference ORDER BY p.line), array_agg(p.received_on ORDER BY p.line),
               array_agg(p.bank_ref ORDER BY p.line),
               array_agg(CASE WHEN p.transaction_type = 15 THEN 'avtalegiro' ELSE 'ocr_giro' END ORDER BY p.line)
          INTO lines, amounts, refs, dates, exts, methods
          FROM parse_nets_ocr(file) p;
    END IF;
    lines := coalesce(lines, '{}');

    IF is_test AND NOT coalesce(allow_test, false) THEN
        RAISE EXCEPTION 'BgMax test file refused'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The start record marks the file as a test file (T, position 45).',
                  HINT = 'Pass allow_test => true to import a test file, in a test database.';
    END IF;
    -- money that went out (BgMax deductions, Nets reversals) is not a payment
    SELECT min(k) INTO negative FROM generate_subscripts(lines, 1) k WHERE minor_units(amounts[k]) < 0;
    IF negative IS NOT NULL THEN
        RAISE EXCEPTION '% file with a negative amount refused', CASE fmt WHEN 'bgmax' THEN 'BgMax' ELSE 'Nets OCR giro' END
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Line %s: %s of %s%s.', lines[negative],
                                  CASE fmt WHEN 'bgmax' THEN 'deduction' ELSE 'transaction' END,
                                  amounts[negative], coalesce(' with reference ' || refs[negative], '')),
                  HINT = 'Deductions and reversals are not payments: register the file''s other payments with register_payment and settle these by hand.';
    END IF;

    -- 2. one import at a time; the same content returns the first import
    PERFORM subbilling_internal.lock_row('bank_import');
    digest := sha256(convert_to(file, 'LATIN1'));
    SELECT * INTO f FROM bank_files b WHERE b.sha256 = digest;
    IF FOUND THEN
        repeated := true;
        RETURN;
    END IF;
    repeated := false;

    INSERT INTO bank_files AS b (format, sha256, file_created_at, transmission, test, records, sections,
                                 payments, total, content)
    VALUES (fmt, digest, created, trans, is_test, nrec, nsec, cardinality(lines),
            CASE WHEN fmt = 'nets_ocr' THEN nets_total
                 WHEN (SELECT count(DISTINCT currency(a)) FROM unnest(amounts) a) = 1
                 THEN (SELECT sum(a) FROM unnest(amounts) a) END,
            file)
    RETURNING * INTO f;

    -- 3. each payment, idempotent on the bank's identifiers
    FOR i IN 1 .. cardinality(lines) LOOP
        IF minor_units(amounts[i]) = 0 THEN
            n_skip := n_skip + 1;
            CONTINUE;
        END IF;
        prior := EXISTS (SELECT 1 FROM unmatched_payments u WHERE u.external_id = exts[i])
                 OR EXISTS (SELECT 1 FROM payments p WHERE p.external_id = exts[i]);
        pid := register_payment(amounts[i], refs[i], dates[i], methods[i], exts[i]);
        IF prior THEN
            n_already := n_already + 1;
        ELSIF EXISTS (SELECT 1 FROM unmatched_payments u WHERE u.id = pid) THEN
            n_unm := n_unm + 1;
        ELSE
            n_imp := n_imp + 1;
        END IF;
    END LOOP;

    UPDATE bank_files b
       SET imported = n_imp, already_imported = n_already, unmatched = n_unm, skipped = n_skip
     WHERE b.id = (f).id
    RETURNING * INTO f;
END
$$;
COMMENT ON FUNCTION subbilling_internal.import_bank_file(text, text, boolean) IS
    'internal: import a bank file of format bgmax or nets_ocr (see import_bgmax): check it whole, record it in bank_files, register its payments; returns the bank_files row and whether the same file had been imported before';

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
    'import a Bankgirot BgMax file: refused whole (22P02, line and reason) unless every check passes; test files (T) only with allow_test; deductions refused (0A000); each payment registered with register_payment (method bankgiro, autogiro for channel 4; external_id bgmax:<receiver bankgiro>:<payment date>:<BGC serial>); the same file again returns the first import (repeated = true); returns the bank_files id and the outcome counts';

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
