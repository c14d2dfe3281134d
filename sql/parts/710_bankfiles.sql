-- ---------------------------------------------------------------------------
-- bank files: Bankgirot BgMax and Nets OCR giro, parsed into payments
-- src/bankfile.c, src/core/bankfile.c; docs/bankfiles.md
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.parse_bgmax(file text)
    RETURNS TABLE (line integer, amount subbilling.price, reference text, received_on date,
                   bank_ref text, payer text, kind text, reference_code integer, channel integer,
                   image boolean, deduction_code integer, bgc_serial text,
                   receiver_bankgiro text, deposit_serial integer, payer_name text,
                   payer_address text, payer_org_no text, information text,
                   extra_references text[])
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION subbilling.parse_bgmax(text) IS
    'the payments (20) and deductions (21, negative) of a Bankgirot BgMax file, one row each, after checking the whole file (record layout and order, dates, every deposit''s count and amount, the end record''s counts); 22P02 with the line and reason if it is not valid';

CREATE FUNCTION subbilling.parse_nets_ocr(file text)
    RETURNS TABLE (line integer, amount subbilling.price, reference text, received_on date,
                   bank_ref text, payer text, transaction_type integer,
                   transaction_number integer, bank_date date, form_number text,
                   archive_reference text, message text, agreement_id text,
                   assignment_number text, assignment_account text, centre_id text,
                   day_code integer, partial_settlement integer, settlement_serial text)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION subbilling.parse_nets_ocr(text) IS
    'the transactions of a Nets OCR giro file (amount items 1-3), one row each, after checking the whole file (record layout and order, dates, every assignment''s and the transmission''s counts and sums); 22P02 with the line and reason if it is not valid';

CREATE FUNCTION subbilling.bgmax_summary(file text,
                                         OUT created_at timestamp, OUT test boolean,
                                         OUT version integer, OUT deposits integer,
                                         OUT payments integer, OUT deductions integer,
                                         OUT extra_references integer, OUT records integer)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.bgmax_summary(text) IS
    'the start record (timestamp, test marker, layout version) and the checked counts of a BgMax file; 22P02 if it is not valid';

CREATE FUNCTION subbilling.nets_ocr_summary(file text,
                                            OUT data_transmitter text, OUT transmission_number text,
                                            OUT data_recipient text, OUT assignments integer,
                                            OUT transactions integer, OUT records integer,
                                            OUT total subbilling.price, OUT nets_date date)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.nets_ocr_summary(text) IS
    'the transmission records (transmitter, number, recipient, Nets date) and the checked counts and net total of a Nets OCR giro file; 22P02 if it is not valid';

CREATE FUNCTION subbilling.bgmax_warnings(file text)
    RETURNS TABLE (line integer, lines integer, warning text)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION subbilling.bgmax_warnings(text) IS
    'what a valid BgMax file needed tolerated (right-trimmed records padded back to 80, TABs expanded, blank BGC serial numbers or image markers, a wrong count of extra reference records), one row per kind: first line, number of lines, the warning; 22P02 if the file is not valid';

CREATE FUNCTION subbilling.nets_ocr_warnings(file text)
    RETURNS TABLE (line integer, lines integer, warning text)
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION subbilling.nets_ocr_warnings(text) IS
    'what a valid Nets OCR giro file needed tolerated (right-trimmed records padded back to 80, TABs expanded), one row per kind: first line, number of lines, the warning; 22P02 if the file is not valid';
