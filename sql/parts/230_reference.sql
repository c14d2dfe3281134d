
-- ---------------------------------------------------------------------------
-- payment references: Swedish OCR (Bankgirot) and Norwegian KID
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
