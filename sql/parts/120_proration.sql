
-- ---------------------------------------------------------------------------
-- proration: the share of a price for part of a period
-- src/proration.c; docs/proration.md
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.prorate(price subbilling.price, period daterange, part daterange)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME', 'prorate_daterange' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.prorate(subbilling.price, daterange, daterange) IS
    'price * days(part) / days(period), rounded half away from zero; part must lie within the period';

CREATE FUNCTION subbilling.prorate(price subbilling.price, period tstzrange, part tstzrange)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME', 'prorate_tstzrange' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.prorate(subbilling.price, tstzrange, tstzrange) IS
    'price * length(part) / length(period) by microseconds, rounded half away from zero; part must lie within the period';
