
-- ---------------------------------------------------------------------------
-- payment references: Swedish OCR (Bankgirot), Norwegian KID, Danish FI-kort
-- (+71) payment ids, Finnish reference numbers and plain Luhn references
-- src/reference.c, src/core/checkdigit.c; docs/references.md
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.ocr_reference(base text, length_digit boolean DEFAULT true)
    RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.ocr_reference(text, boolean) IS
    'Swedish OCR reference: the digits of base, a length digit (total length mod 10, if length_digit) and a Luhn check digit; 2 to 25 digits';

CREATE FUNCTION subbilling.ocr_valid(reference text, length_digit boolean DEFAULT false)
    RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.ocr_valid(text, boolean) IS
    'true if reference is 2 to 25 digits ending in a valid Luhn check digit (and, if length_digit, a correct length digit); false otherwise';

CREATE FUNCTION subbilling.kid_reference(base text, method text DEFAULT 'mod10')
    RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.kid_reference(text, text) IS
    'Norwegian KID: the digits of base and a check character by method mod10 (Luhn) or mod11 (0-9 or -); 2 to 25 characters';

CREATE FUNCTION subbilling.kid_valid(reference text, method text DEFAULT 'mod10')
    RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.kid_valid(text, text) IS
    'true if reference is a valid KID (2 to 25 characters, digits and a correct mod10 or mod11 check character); false otherwise';

-- A Luhn (mod 10) reference: the digits of base and a check digit.
CREATE FUNCTION subbilling.luhn_reference(base text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN subbilling.ocr_reference(base, false);
COMMENT ON FUNCTION subbilling.luhn_reference(text) IS 'a payment reference: the digits of base (1 to 24) and a Luhn (mod 10) check digit';

-- Danish FI-kort (+71) payment id: 14 digits (base, zero-padded on the
-- left) and a mod 10 check digit with weights 2, 1, 2, ... from the right,
-- which is the Luhn digit.
CREATE FUNCTION subbilling.fik_reference(base text) RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.fik_reference(text) IS 'Danish FI-kort type 71 payment id: base zero-padded to 14 digits and a mod 10 (Luhn) check digit, 15 digits';

-- Finnish reference number (viitenumero): 3 to 19 digits of base, then a
-- check digit from weights 7, 3, 1 repeated from the right (4 to 20 digits
-- in all; banks drop leading zeros, so a base should not start with 0).
CREATE FUNCTION subbilling.fi_reference(base text) RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.fi_reference(text) IS 'Finnish reference number (viitenumero): base (3 to 19 digits) and a 7-3-1 check digit';
