
-- ---------------------------------------------------------------------------
-- billing_period: a billing cadence ('1 month', '3 months', '1 year', '2 weeks')
-- src/period.c, src/core/period.c; docs/billing_period.md
-- ---------------------------------------------------------------------------

CREATE TYPE subbilling.billing_period;

CREATE FUNCTION subbilling.billing_period_in(cstring) RETURNS subbilling.billing_period
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_out(subbilling.billing_period) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_recv(internal) RETURNS subbilling.billing_period
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_send(subbilling.billing_period) RETURNS bytea
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- 8 bytes, passed by value like bigint: (unit << 32) | count
CREATE TYPE subbilling.billing_period (
    INPUT = subbilling.billing_period_in,
    OUTPUT = subbilling.billing_period_out,
    RECEIVE = subbilling.billing_period_recv,
    SEND = subbilling.billing_period_send,
    LIKE = pg_catalog.int8
);

COMMENT ON TYPE subbilling.billing_period IS
    'billing cadence: a positive number of months (years) or days (weeks), e.g. ''1 month'', ''quarterly'', ''P2W''';
COMMENT ON FUNCTION subbilling.billing_period_in(cstring) IS 'billing_period text input';
COMMENT ON FUNCTION subbilling.billing_period_out(subbilling.billing_period) IS 'billing_period canonical text output';
COMMENT ON FUNCTION subbilling.billing_period_recv(internal) IS 'billing_period binary input';
COMMENT ON FUNCTION subbilling.billing_period_send(subbilling.billing_period) IS 'billing_period binary output';

-- comparison: equality is semantic ('12 months' = '1 year'); the order is by
-- average length (146097 days = 4800 months), months before days on a tie

CREATE FUNCTION subbilling.billing_period_eq(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_ne(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_lt(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_le(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_gt(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_ge(subbilling.billing_period, subbilling.billing_period) RETURNS boolean
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_cmp(subbilling.billing_period, subbilling.billing_period) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_hash(subbilling.billing_period) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.billing_period_hash_extended(subbilling.billing_period, bigint) RETURNS bigint
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION subbilling.billing_period_eq(subbilling.billing_period, subbilling.billing_period) IS 'equal';
COMMENT ON FUNCTION subbilling.billing_period_ne(subbilling.billing_period, subbilling.billing_period) IS 'not equal';
COMMENT ON FUNCTION subbilling.billing_period_lt(subbilling.billing_period, subbilling.billing_period) IS 'less than (shorter on average)';
COMMENT ON FUNCTION subbilling.billing_period_le(subbilling.billing_period, subbilling.billing_period) IS 'less than or equal';
COMMENT ON FUNCTION subbilling.billing_period_gt(subbilling.billing_period, subbilling.billing_period) IS 'greater than (longer on average)';
COMMENT ON FUNCTION subbilling.billing_period_ge(subbilling.billing_period, subbilling.billing_period) IS 'greater than or equal';
COMMENT ON FUNCTION subbilling.billing_period_cmp(subbilling.billing_period, subbilling.billing_period) IS 'btree comparison: -1, 0 or 1';
COMMENT ON FUNCTION subbilling.billing_period_hash(subbilling.billing_period) IS 'hash';
COMMENT ON FUNCTION subbilling.billing_period_hash_extended(subbilling.billing_period, bigint) IS 'hash with seed';

CREATE OPERATOR subbilling.= (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_eq,
    COMMUTATOR = OPERATOR(subbilling.=), NEGATOR = OPERATOR(subbilling.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR subbilling.<> (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_ne,
    COMMUTATOR = OPERATOR(subbilling.<>), NEGATOR = OPERATOR(subbilling.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR subbilling.< (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_lt,
    COMMUTATOR = OPERATOR(subbilling.>), NEGATOR = OPERATOR(subbilling.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR subbilling.<= (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_le,
    COMMUTATOR = OPERATOR(subbilling.>=), NEGATOR = OPERATOR(subbilling.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR subbilling.> (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_gt,
    COMMUTATOR = OPERATOR(subbilling.<), NEGATOR = OPERATOR(subbilling.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR subbilling.>= (
    LEFTARG = subbilling.billing_period, RIGHTARG = subbilling.billing_period,
    FUNCTION = subbilling.billing_period_ge,
    COMMUTATOR = OPERATOR(subbilling.<=), NEGATOR = OPERATOR(subbilling.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);

COMMENT ON OPERATOR subbilling.= (subbilling.billing_period, subbilling.billing_period) IS 'equal (''12 months'' = ''1 year'')';
COMMENT ON OPERATOR subbilling.<> (subbilling.billing_period, subbilling.billing_period) IS 'not equal';
COMMENT ON OPERATOR subbilling.< (subbilling.billing_period, subbilling.billing_period) IS 'less than (shorter on average)';
COMMENT ON OPERATOR subbilling.<= (subbilling.billing_period, subbilling.billing_period) IS 'less than or equal';
COMMENT ON OPERATOR subbilling.> (subbilling.billing_period, subbilling.billing_period) IS 'greater than (longer on average)';
COMMENT ON OPERATOR subbilling.>= (subbilling.billing_period, subbilling.billing_period) IS 'greater than or equal';

CREATE OPERATOR CLASS subbilling.billing_period_ops
    DEFAULT FOR TYPE subbilling.billing_period USING btree AS
        OPERATOR 1 subbilling.< ,
        OPERATOR 2 subbilling.<= ,
        OPERATOR 3 subbilling.= ,
        OPERATOR 4 subbilling.>= ,
        OPERATOR 5 subbilling.> ,
        FUNCTION 1 subbilling.billing_period_cmp(subbilling.billing_period, subbilling.billing_period);

CREATE OPERATOR CLASS subbilling.billing_period_hash_ops
    DEFAULT FOR TYPE subbilling.billing_period USING hash AS
        OPERATOR 1 subbilling.= ,
        FUNCTION 1 subbilling.billing_period_hash(subbilling.billing_period),
        FUNCTION 2 subbilling.billing_period_hash_extended(subbilling.billing_period, bigint);

COMMENT ON OPERATOR CLASS subbilling.billing_period_ops USING btree IS
    'billing_period order: by average length, months before days on a tie';
COMMENT ON OPERATOR CLASS subbilling.billing_period_hash_ops USING hash IS
    'billing_period hashing (GROUP BY, DISTINCT, hash joins)';

CREATE FUNCTION subbilling.billing_period_to_interval(subbilling.billing_period) RETURNS interval
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.billing_period_to_interval(subbilling.billing_period) IS
    'the period as an interval of months or days (use period_start for boundaries: adding intervals repeatedly drifts at month ends)';
CREATE CAST (subbilling.billing_period AS interval)
    WITH FUNCTION subbilling.billing_period_to_interval(subbilling.billing_period);
COMMENT ON CAST (subbilling.billing_period AS interval) IS 'months-based periods to months, days-based to days';

-- ---------------------------------------------------------------------------
-- period functions
-- ---------------------------------------------------------------------------

CREATE FUNCTION subbilling.period_start(anchor date, period subbilling.billing_period, n integer)
    RETURNS date
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.period_start(date, subbilling.billing_period, integer) IS
    'the n-th period boundary from the anchor (n may be negative), computed from the anchor itself: month-based periods keep the anchor''s day, clamped to the month''s end';

CREATE FUNCTION subbilling.period_of(anchor date, period subbilling.billing_period, d date)
    RETURNS daterange
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.period_of(date, subbilling.billing_period, date) IS
    'the half-open period [start, next start) holding d, also before the anchor';

CREATE FUNCTION subbilling.period_index(anchor date, period subbilling.billing_period, d date)
    RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.period_index(date, subbilling.billing_period, date) IS
    'the n for which period_start(anchor, period, n) <= d < period_start(anchor, period, n + 1)';

CREATE FUNCTION subbilling.periods_per_year(period subbilling.billing_period)
    RETURNS numeric
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.periods_per_year(subbilling.billing_period) IS
    'billing periods in a year: 12 / months, 52 / weeks, 365 / days';

CREATE FUNCTION subbilling.monthly(price subbilling.price, period subbilling.billing_period)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.monthly(subbilling.price, subbilling.billing_period) IS
    'the price per month (MRR normalisation): price * periods_per_year / 12 as one exact fraction, rounded half away from zero';
