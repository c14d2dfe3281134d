
-- Finnish references and FI-kort payment ids: C (src/core/checkdigit.c) instead of PL/pgSQL;
-- same signatures, results and errors.
CREATE OR REPLACE FUNCTION subbilling.fik_reference(base text) RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.fik_reference(text) IS 'Danish FI-kort type 71 payment id: base zero-padded to 14 digits and a mod 10 (Luhn) check digit, 15 digits';

CREATE OR REPLACE FUNCTION subbilling.fi_reference(base text) RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.fi_reference(text) IS 'Finnish reference number (viitenumero): base (3 to 19 digits) and a 7-3-1 check digit';
