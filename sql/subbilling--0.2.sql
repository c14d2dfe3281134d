-- subbilling install script, assembled by the Makefile from sql/parts/*.sql in name order.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION subbilling" to load this file. \quit

-- The extension's objects all live in schema subbilling (created from the control file).
COMMENT ON SCHEMA subbilling IS 'subscription billing: types, catalog, subscriptions, invoices, ledger, KPIs';

-- ============================================================================
-- price: an exact amount of money in one ISO 4217 currency (src/price.c)
-- 64-bit count of minor units + currency code; 16 bytes, by reference.
-- One rounding rule everywhere: half away from zero to the minor unit.
-- ============================================================================

CREATE TYPE subbilling.price;

CREATE FUNCTION subbilling.price_in(cstring) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.price_out(subbilling.price) RETURNS cstring
	AS 'MODULE_PATHNAME', 'price_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.price_recv(internal) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subbilling.price_send(subbilling.price) RETURNS bytea
	AS 'MODULE_PATHNAME', 'price_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE subbilling.price (
	INTERNALLENGTH = 16,
	ALIGNMENT = double,
	STORAGE = plain,
	INPUT = subbilling.price_in,
	OUTPUT = subbilling.price_out,
	RECEIVE = subbilling.price_recv,
	SEND = subbilling.price_send
);

COMMENT ON TYPE subbilling.price IS 'exact amount of money in one ISO 4217 currency, e.g. ''1234.50 SEK''';
COMMENT ON FUNCTION subbilling.price_in(cstring) IS 'price text input: [sign]digits[.digits] CODE';
COMMENT ON FUNCTION subbilling.price_out(subbilling.price) IS 'price canonical text output';
COMMENT ON FUNCTION subbilling.price_recv(internal) IS 'price binary input';
COMMENT ON FUNCTION subbilling.price_send(subbilling.price) IS 'price binary output';

-- ---------------------------------------------------------------- constructors and accessors

CREATE FUNCTION subbilling.price(numeric, text) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_from_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price(numeric, text) IS 'price from an amount in major units and a currency code; the amount must be a whole number of minor units';

CREATE FUNCTION subbilling.price_minor(bigint, text) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_minor' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_minor(bigint, text) IS 'price from an amount in minor units and a currency code';

CREATE FUNCTION subbilling.minor_units(subbilling.price) RETURNS bigint
	AS 'MODULE_PATHNAME', 'price_minor_units' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.minor_units(subbilling.price) IS 'amount of a price in minor units of its currency';

CREATE FUNCTION subbilling.currency(subbilling.price) RETURNS text
	AS 'MODULE_PATHNAME', 'price_currency' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.currency(subbilling.price) IS 'ISO 4217 currency code of a price';

CREATE FUNCTION subbilling.amount(subbilling.price) RETURNS numeric
	AS 'MODULE_PATHNAME', 'price_amount' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.amount(subbilling.price) IS 'amount of a price in major units, with the currency''s number of decimals';

CREATE FUNCTION subbilling.currency_exponent(text) RETURNS integer
	AS 'MODULE_PATHNAME', 'price_currency_exponent' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.currency_exponent(text) IS 'number of minor-unit digits of an ISO 4217 currency (0, 2, 3 or 4)';

-- ---------------------------------------------------------------- arithmetic

CREATE FUNCTION subbilling.price_add(subbilling.price, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_add(subbilling.price, subbilling.price) IS 'implementation of + operator';
CREATE FUNCTION subbilling.price_sub(subbilling.price, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_sub(subbilling.price, subbilling.price) IS 'implementation of - operator';
CREATE FUNCTION subbilling.price_uminus(subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_uminus' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_uminus(subbilling.price) IS 'implementation of unary - operator';
CREATE FUNCTION subbilling.abs(subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_abs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.abs(subbilling.price) IS 'absolute value of a price';

CREATE FUNCTION subbilling.price_mul_numeric(subbilling.price, numeric) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_mul_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_mul_numeric(subbilling.price, numeric) IS 'implementation of * operator (rounded half away from zero)';
CREATE FUNCTION subbilling.numeric_mul_price(numeric, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'numeric_mul_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.numeric_mul_price(numeric, subbilling.price) IS 'implementation of * operator (rounded half away from zero)';
CREATE FUNCTION subbilling.price_mul_int4(subbilling.price, integer) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_mul_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_mul_int4(subbilling.price, integer) IS 'implementation of * operator';
CREATE FUNCTION subbilling.int4_mul_price(integer, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'int4_mul_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.int4_mul_price(integer, subbilling.price) IS 'implementation of * operator';
CREATE FUNCTION subbilling.price_mul_int8(subbilling.price, bigint) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_mul_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_mul_int8(subbilling.price, bigint) IS 'implementation of * operator';
CREATE FUNCTION subbilling.int8_mul_price(bigint, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'int8_mul_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.int8_mul_price(bigint, subbilling.price) IS 'implementation of * operator';

CREATE FUNCTION subbilling.price_div_numeric(subbilling.price, numeric) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_div_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_div_numeric(subbilling.price, numeric) IS 'implementation of / operator (rounded half away from zero)';
CREATE FUNCTION subbilling.price_div_int4(subbilling.price, integer) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_div_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_div_int4(subbilling.price, integer) IS 'implementation of / operator (rounded half away from zero)';
CREATE FUNCTION subbilling.price_div_int8(subbilling.price, bigint) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_div_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_div_int8(subbilling.price, bigint) IS 'implementation of / operator (rounded half away from zero)';
CREATE FUNCTION subbilling.price_div_price(subbilling.price, subbilling.price) RETURNS numeric
	AS 'MODULE_PATHNAME', 'price_div_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_div_price(subbilling.price, subbilling.price) IS 'implementation of / operator (ratio of two prices in one currency)';

CREATE OPERATOR subbilling.+ (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price,
	FUNCTION = subbilling.price_add, COMMUTATOR = OPERATOR(subbilling.+)
);
COMMENT ON OPERATOR subbilling.+ (subbilling.price, subbilling.price) IS 'add (same currency)';
CREATE OPERATOR subbilling.- (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price,
	FUNCTION = subbilling.price_sub
);
COMMENT ON OPERATOR subbilling.- (subbilling.price, subbilling.price) IS 'subtract (same currency)';
CREATE OPERATOR subbilling.- (
	RIGHTARG = subbilling.price, FUNCTION = subbilling.price_uminus
);
COMMENT ON OPERATOR subbilling.- (NONE, subbilling.price) IS 'negate';

CREATE OPERATOR subbilling.* (
	LEFTARG = subbilling.price, RIGHTARG = numeric,
	FUNCTION = subbilling.price_mul_numeric, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (subbilling.price, numeric) IS 'multiply (rounded half away from zero)';
CREATE OPERATOR subbilling.* (
	LEFTARG = numeric, RIGHTARG = subbilling.price,
	FUNCTION = subbilling.numeric_mul_price, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (numeric, subbilling.price) IS 'multiply (rounded half away from zero)';
CREATE OPERATOR subbilling.* (
	LEFTARG = subbilling.price, RIGHTARG = integer,
	FUNCTION = subbilling.price_mul_int4, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (subbilling.price, integer) IS 'multiply';
CREATE OPERATOR subbilling.* (
	LEFTARG = integer, RIGHTARG = subbilling.price,
	FUNCTION = subbilling.int4_mul_price, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (integer, subbilling.price) IS 'multiply';
CREATE OPERATOR subbilling.* (
	LEFTARG = subbilling.price, RIGHTARG = bigint,
	FUNCTION = subbilling.price_mul_int8, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (subbilling.price, bigint) IS 'multiply';
CREATE OPERATOR subbilling.* (
	LEFTARG = bigint, RIGHTARG = subbilling.price,
	FUNCTION = subbilling.int8_mul_price, COMMUTATOR = OPERATOR(subbilling.*)
);
COMMENT ON OPERATOR subbilling.* (bigint, subbilling.price) IS 'multiply';

CREATE OPERATOR subbilling./ (
	LEFTARG = subbilling.price, RIGHTARG = numeric, FUNCTION = subbilling.price_div_numeric
);
COMMENT ON OPERATOR subbilling./ (subbilling.price, numeric) IS 'divide (rounded half away from zero)';
CREATE OPERATOR subbilling./ (
	LEFTARG = subbilling.price, RIGHTARG = integer, FUNCTION = subbilling.price_div_int4
);
COMMENT ON OPERATOR subbilling./ (subbilling.price, integer) IS 'divide (rounded half away from zero)';
CREATE OPERATOR subbilling./ (
	LEFTARG = subbilling.price, RIGHTARG = bigint, FUNCTION = subbilling.price_div_int8
);
COMMENT ON OPERATOR subbilling./ (subbilling.price, bigint) IS 'divide (rounded half away from zero)';
CREATE OPERATOR subbilling./ (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_div_price
);
COMMENT ON OPERATOR subbilling./ (subbilling.price, subbilling.price) IS 'ratio of two prices in one currency';

-- ---------------------------------------------------------------- VAT

CREATE FUNCTION subbilling.tax(net subbilling.price, rate numeric) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_tax' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.tax(subbilling.price, numeric) IS 'VAT on a net amount at a percentage rate: round(net * rate / 100), half away from zero';

CREATE FUNCTION subbilling.net_of(gross subbilling.price, rate numeric) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_net_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.net_of(subbilling.price, numeric) IS 'net amount in a VAT-inclusive gross amount: gross - round(gross * rate / (100 + rate)), so net + VAT = gross exactly';

-- ---------------------------------------------------------------- comparison

CREATE FUNCTION subbilling.price_cmp(subbilling.price, subbilling.price) RETURNS integer
	AS 'MODULE_PATHNAME', 'price_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_cmp(subbilling.price, subbilling.price) IS 'btree support: -1, 0 or 1 in the total order (currency code, then amount)';
CREATE FUNCTION subbilling.price_lt(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_lt(subbilling.price, subbilling.price) IS 'implementation of < operator';
CREATE FUNCTION subbilling.price_le(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_le(subbilling.price, subbilling.price) IS 'implementation of <= operator';
CREATE FUNCTION subbilling.price_eq(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_eq(subbilling.price, subbilling.price) IS 'implementation of = operator';
CREATE FUNCTION subbilling.price_ne(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_ne(subbilling.price, subbilling.price) IS 'implementation of <> operator';
CREATE FUNCTION subbilling.price_ge(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_ge(subbilling.price, subbilling.price) IS 'implementation of >= operator';
CREATE FUNCTION subbilling.price_gt(subbilling.price, subbilling.price) RETURNS boolean
	AS 'MODULE_PATHNAME', 'price_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_gt(subbilling.price, subbilling.price) IS 'implementation of > operator';

CREATE OPERATOR subbilling.< (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_lt,
	COMMUTATOR = OPERATOR(subbilling.>), NEGATOR = OPERATOR(subbilling.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
COMMENT ON OPERATOR subbilling.< (subbilling.price, subbilling.price) IS 'less than (currency code, then amount)';
CREATE OPERATOR subbilling.<= (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_le,
	COMMUTATOR = OPERATOR(subbilling.>=), NEGATOR = OPERATOR(subbilling.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
COMMENT ON OPERATOR subbilling.<= (subbilling.price, subbilling.price) IS 'less than or equal (currency code, then amount)';
CREATE OPERATOR subbilling.= (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_eq,
	COMMUTATOR = OPERATOR(subbilling.=), NEGATOR = OPERATOR(subbilling.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
COMMENT ON OPERATOR subbilling.= (subbilling.price, subbilling.price) IS 'equal (same currency and amount)';
CREATE OPERATOR subbilling.<> (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_ne,
	COMMUTATOR = OPERATOR(subbilling.<>), NEGATOR = OPERATOR(subbilling.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR subbilling.<> (subbilling.price, subbilling.price) IS 'not equal';
CREATE OPERATOR subbilling.>= (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_ge,
	COMMUTATOR = OPERATOR(subbilling.<=), NEGATOR = OPERATOR(subbilling.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR subbilling.>= (subbilling.price, subbilling.price) IS 'greater than or equal (currency code, then amount)';
CREATE OPERATOR subbilling.> (
	LEFTARG = subbilling.price, RIGHTARG = subbilling.price, FUNCTION = subbilling.price_gt,
	COMMUTATOR = OPERATOR(subbilling.<), NEGATOR = OPERATOR(subbilling.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR subbilling.> (subbilling.price, subbilling.price) IS 'greater than (currency code, then amount)';

CREATE OPERATOR CLASS subbilling.price_ops
	DEFAULT FOR TYPE subbilling.price USING btree AS
		OPERATOR 1 subbilling.< ,
		OPERATOR 2 subbilling.<= ,
		OPERATOR 3 subbilling.= ,
		OPERATOR 4 subbilling.>= ,
		OPERATOR 5 subbilling.> ,
		FUNCTION 1 subbilling.price_cmp(subbilling.price, subbilling.price);
COMMENT ON OPERATOR CLASS subbilling.price_ops USING btree IS 'total order of prices: currency code, then amount';

CREATE FUNCTION subbilling.price_hash(subbilling.price) RETURNS integer
	AS 'MODULE_PATHNAME', 'price_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_hash(subbilling.price) IS 'hash support';
CREATE FUNCTION subbilling.price_hash_extended(subbilling.price, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'price_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_hash_extended(subbilling.price, bigint) IS 'extended (seeded 64-bit) hash support';

CREATE OPERATOR CLASS subbilling.price_hash_ops
	DEFAULT FOR TYPE subbilling.price USING hash AS
		OPERATOR 1 subbilling.= ,
		FUNCTION 1 subbilling.price_hash(subbilling.price),
		FUNCTION 2 subbilling.price_hash_extended(subbilling.price, bigint);
COMMENT ON OPERATOR CLASS subbilling.price_hash_ops USING hash IS 'hashing of prices (hash joins, hash aggregation, hash indexes)';

-- ---------------------------------------------------------------- aggregates

CREATE FUNCTION subbilling.price_accum(internal, subbilling.price) RETURNS internal
	AS 'MODULE_PATHNAME', 'price_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_accum(internal, subbilling.price) IS 'transition function of sum(price) and avg(price)';
CREATE FUNCTION subbilling.price_accum_inv(internal, subbilling.price) RETURNS internal
	AS 'MODULE_PATHNAME', 'price_accum_inv' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_accum_inv(internal, subbilling.price) IS 'inverse transition function of sum(price) and avg(price) (moving window frames)';
CREATE FUNCTION subbilling.price_accum_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'price_accum_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_accum_combine(internal, internal) IS 'combine function of sum(price) and avg(price)';
CREATE FUNCTION subbilling.price_accum_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'price_accum_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_accum_serialize(internal) IS 'serialization function of sum(price) and avg(price)';
CREATE FUNCTION subbilling.price_accum_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'price_accum_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_accum_deserialize(bytea, internal) IS 'deserialization function of sum(price) and avg(price)';
CREATE FUNCTION subbilling.price_sum_final(internal) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_sum_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_sum_final(internal) IS 'final function of sum(price)';
CREATE FUNCTION subbilling.price_avg_final(internal) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_avg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_avg_final(internal) IS 'final function of avg(price), rounded half away from zero';
CREATE FUNCTION subbilling.price_smaller(subbilling.price, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_smaller' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_smaller(subbilling.price, subbilling.price) IS 'smaller of two prices in the total order';
CREATE FUNCTION subbilling.price_larger(subbilling.price, subbilling.price) RETURNS subbilling.price
	AS 'MODULE_PATHNAME', 'price_larger' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.price_larger(subbilling.price, subbilling.price) IS 'larger of two prices in the total order';

CREATE AGGREGATE subbilling.sum(subbilling.price) (
	SFUNC = subbilling.price_accum,
	STYPE = internal,
	SSPACE = 32,
	FINALFUNC = subbilling.price_sum_final,
	MSFUNC = subbilling.price_accum,
	MINVFUNC = subbilling.price_accum_inv,
	MSTYPE = internal,
	MSSPACE = 32,
	MFINALFUNC = subbilling.price_sum_final,
	COMBINEFUNC = subbilling.price_accum_combine,
	SERIALFUNC = subbilling.price_accum_serialize,
	DESERIALFUNC = subbilling.price_accum_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE subbilling.sum(subbilling.price) IS 'sum of prices in one currency (mixed currencies are an error)';

CREATE AGGREGATE subbilling.avg(subbilling.price) (
	SFUNC = subbilling.price_accum,
	STYPE = internal,
	SSPACE = 32,
	FINALFUNC = subbilling.price_avg_final,
	MSFUNC = subbilling.price_accum,
	MINVFUNC = subbilling.price_accum_inv,
	MSTYPE = internal,
	MSSPACE = 32,
	MFINALFUNC = subbilling.price_avg_final,
	COMBINEFUNC = subbilling.price_accum_combine,
	SERIALFUNC = subbilling.price_accum_serialize,
	DESERIALFUNC = subbilling.price_accum_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE subbilling.avg(subbilling.price) IS 'average of prices in one currency, rounded half away from zero to the minor unit (mixed currencies are an error)';

CREATE AGGREGATE subbilling.min(subbilling.price) (
	SFUNC = subbilling.price_smaller,
	STYPE = subbilling.price,
	COMBINEFUNC = subbilling.price_smaller,
	SORTOP = OPERATOR(subbilling.<),
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE subbilling.min(subbilling.price) IS 'smallest price in the total order (currency code, then amount)';

CREATE AGGREGATE subbilling.max(subbilling.price) (
	SFUNC = subbilling.price_larger,
	STYPE = subbilling.price,
	COMBINEFUNC = subbilling.price_larger,
	SORTOP = OPERATOR(subbilling.>),
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE subbilling.max(subbilling.price) IS 'largest price in the total order (currency code, then amount)';

-- ---------------------------------------------------------------- allocation

CREATE FUNCTION subbilling.allocate(subbilling.price, weights numeric[]) RETURNS subbilling.price[]
	AS 'MODULE_PATHNAME', 'price_allocate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.allocate(subbilling.price, numeric[]) IS 'split a price into parts proportional to the weights by largest remainder; the parts sum exactly to the price';

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

-- ---------------------------------------------------------------------------
-- pricing models: tiers (graduated, volume) and packages
-- src/pricing.c; docs/pricing.md
-- ---------------------------------------------------------------------------

CREATE TYPE subbilling.tier AS (
    up_to numeric,
    unit_price subbilling.price,
    flat_price subbilling.price
);
COMMENT ON TYPE subbilling.tier IS
    'a price tier: quantities above the previous tier''s up_to up to and including up_to (NULL: no limit) cost unit_price each plus flat_price once (NULL prices count as zero)';

CREATE FUNCTION subbilling.tier(up_to numeric, unit_price subbilling.price, flat_price subbilling.price DEFAULT NULL)
    RETURNS subbilling.tier
    AS $$ SELECT ROW(up_to, unit_price, flat_price)::subbilling.tier $$
    LANGUAGE SQL IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.tier(numeric, subbilling.price, subbilling.price) IS
    'a tier value: tier(10, ''1.00 SEK''), tier(NULL, ''0.50 SEK'', ''100.00 SEK'')';

CREATE FUNCTION subbilling.tiered_price(quantity numeric, tiers subbilling.tier[], mode text)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.tiered_price(numeric, subbilling.tier[], text) IS
    'price of a quantity under tiers: mode graduated (each unit in its own tier, flat price of every tier reached) or volume (all units at the tier the quantity reaches, plus its flat price); exact, rounded once half away from zero';

CREATE FUNCTION subbilling.package_price(quantity numeric, package_size numeric, package subbilling.price)
    RETURNS subbilling.price
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.package_price(numeric, numeric, subbilling.price) IS
    'price of a quantity sold in packages: ceil(quantity / package_size) * package';

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

-- ============================================================================
-- Catalog (SPEC section 2): products, plans, campaigns and a minimal
-- dunning_policies table that the dunning issue extends.
--
-- Catalog tables are global (Citus reference tables later): nothing in them
-- points at a customer-owned table.  Customer tables point at them.
-- docs/catalog.md describes every column and rule.
-- ============================================================================

-- ---------------------------------------------------------------- dunning_policies

CREATE TABLE subbilling.dunning_policies (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.dunning_policies IS 'dunning policies (reminders, payment stop, collection); an account may name one';

-- ---------------------------------------------------------------- products

CREATE TABLE subbilling.products (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name        text NOT NULL,
    description text,
    tax_rate    numeric NOT NULL DEFAULT 25
                CONSTRAINT products_tax_rate_range CHECK (tax_rate >= 0 AND tax_rate < 100),
    active      boolean NOT NULL DEFAULT true,
    metadata    jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT products_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.products IS 'what is sold; tax_rate is the VAT percentage of its plans (25, 12, 6, 15, 0 ...)';

-- ---------------------------------------------------------------- plans

CREATE TABLE subbilling.plans (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    product_id      bigint NOT NULL REFERENCES subbilling.products (id),
    name            text NOT NULL,
    kind            text NOT NULL DEFAULT 'base'
                    CONSTRAINT plans_kind_check CHECK (kind IN ('base', 'addon')),
    currency        text NOT NULL
                    CONSTRAINT plans_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    billing_period  subbilling.billing_period NOT NULL,
    pricing_model   text NOT NULL DEFAULT 'flat'
                    CONSTRAINT plans_pricing_model_check
                    CHECK (pricing_model IN ('flat', 'per_unit', 'graduated', 'volume', 'package', 'usage')),
    price           subbilling.price,
    tiers           subbilling.tier[],
    package_size    numeric
                    CONSTRAINT plans_package_size_positive CHECK (package_size > 0),
    billing_timing  text NOT NULL DEFAULT 'in_advance'
                    CONSTRAINT plans_billing_timing_check CHECK (billing_timing IN ('in_advance', 'in_arrears')),
    trial_days      integer NOT NULL DEFAULT 0
                    CONSTRAINT plans_trial_days_range CHECK (trial_days >= 0 AND trial_days <= 3650),
    setup_fee       subbilling.price,
    included_units  numeric NOT NULL DEFAULT 0
                    CONSTRAINT plans_included_units_nonnegative CHECK (included_units >= 0),
    active          boolean NOT NULL DEFAULT true,
    description     text,
    metadata        jsonb NOT NULL DEFAULT '{}'
                    CONSTRAINT plans_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX plans_product_id_idx ON subbilling.plans (product_id);
COMMENT ON TABLE subbilling.plans IS 'price plans; the price fields of a plan that a subscription uses are immutable (create a new plan and migrate_subscriptions)';

-- Fills plans.currency from the prices if it was left out, then checks the
-- pricing model's requirements and that every price is in the plan's currency.
CREATE FUNCTION subbilling.plans_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    t       subbilling.tier;
    prev    numeric;
    n       integer;
    i       integer := 0;
BEGIN
    IF NEW.currency IS NULL THEN
        NEW.currency := coalesce(currency(NEW.price), currency(NEW.setup_fee),
                                 currency((NEW.tiers[1]).unit_price), currency((NEW.tiers[1]).flat_price));
        IF NEW.currency IS NULL THEN
            RAISE EXCEPTION 'plan "%" has no currency', NEW.code
                USING ERRCODE = 'not_null_violation',
                      DETAIL = 'Give currency, or a price, setup_fee or tiers to take it from.';
        END IF;
    END IF;
    NEW.currency := upper(NEW.currency);
    PERFORM currency_exponent(NEW.currency);    -- unknown currency: 22023

    IF NEW.price IS NOT NULL AND currency(NEW.price) <> NEW.currency THEN
        RAISE EXCEPTION 'price % of plan "%" is not in the plan''s currency %', NEW.price, NEW.code, NEW.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF NEW.setup_fee IS NOT NULL AND currency(NEW.setup_fee) <> NEW.currency THEN
        RAISE EXCEPTION 'setup fee % of plan "%" is not in the plan''s currency %', NEW.setup_fee, NEW.code, NEW.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF NEW.price < price_minor(0, NEW.currency) OR NEW.setup_fee < price_minor(0, NEW.currency) THEN
        RAISE EXCEPTION 'plan "%" has a negative price or setup fee', NEW.code
            USING ERRCODE = 'check_violation',
                  DETAIL = 'Discounts are campaigns, not plans.';
    END IF;

    IF NEW.tiers IS NOT NULL THEN
        n := coalesce(array_length(NEW.tiers, 1), 0);
        IF n = 0 THEN
            RAISE EXCEPTION 'plan "%" has an empty tiers array', NEW.code
                USING ERRCODE = 'check_violation', HINT = 'Leave tiers NULL for a model without tiers.';
        END IF;
        FOREACH t IN ARRAY NEW.tiers LOOP
            i := i + 1;
            IF t IS NULL OR (t.unit_price IS NULL AND t.flat_price IS NULL) THEN
                RAISE EXCEPTION 'tier % of plan "%" has neither a unit price nor a flat price', i, NEW.code
                    USING ERRCODE = 'check_violation';
            END IF;
            IF currency(t.unit_price) <> NEW.currency OR currency(t.flat_price) <> NEW.currency THEN
                RAISE EXCEPTION 'tier % of plan "%" is not in the plan''s currency %', i, NEW.code, NEW.currency
                    USING ERRCODE = 'data_exception';
            END IF;
            IF t.unit_price < price_minor(0, NEW.currency) OR t.flat_price < price_minor(0, NEW.currency) THEN
                RAISE EXCEPTION 'tier % of plan "%" has a negative price', i, NEW.code
                    USING ERRCODE = 'check_violation';
            END IF;
            IF t.up_to IS NULL AND i < n THEN
                RAISE EXCEPTION 'tier % of plan "%" has no upper limit but is not the last tier', i, NEW.code
                    USING ERRCODE = 'check_violation';
            END IF;
            IF t.up_to IS NOT NULL AND (t.up_to <= coalesce(prev, 0)) THEN
                RAISE EXCEPTION 'tier limits of plan "%" must be positive and strictly increasing', NEW.code
                    USING ERRCODE = 'check_violation',
                          DETAIL = format('Tier %s goes up to %s after %s.', i, t.up_to, coalesce(prev, 0));
            END IF;
            prev := t.up_to;
        END LOOP;
        IF NEW.tiers[n].up_to IS NOT NULL THEN
            RAISE EXCEPTION 'the last tier of plan "%" must have no upper limit (up_to NULL)', NEW.code
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;

    CASE NEW.pricing_model
    WHEN 'flat', 'per_unit' THEN
        IF NEW.price IS NULL OR NEW.tiers IS NOT NULL OR NEW.package_size IS NOT NULL THEN
            RAISE EXCEPTION 'a % plan needs a price and no tiers or package size', NEW.pricing_model
                USING ERRCODE = 'check_violation', DETAIL = format('Plan "%s".', NEW.code);
        END IF;
    WHEN 'graduated', 'volume' THEN
        IF NEW.tiers IS NULL OR NEW.price IS NOT NULL OR NEW.package_size IS NOT NULL THEN
            RAISE EXCEPTION 'a % plan needs tiers and no price or package size', NEW.pricing_model
                USING ERRCODE = 'check_violation', DETAIL = format('Plan "%s".', NEW.code);
        END IF;
    WHEN 'package' THEN
        IF NEW.price IS NULL OR NEW.package_size IS NULL OR NEW.tiers IS NOT NULL THEN
            RAISE EXCEPTION 'a package plan needs a price per package and a package size, and no tiers'
                USING ERRCODE = 'check_violation', DETAIL = format('Plan "%s".', NEW.code);
        END IF;
    WHEN 'usage' THEN
        IF (NEW.price IS NULL) = (NEW.tiers IS NULL) OR NEW.package_size IS NOT NULL THEN
            RAISE EXCEPTION 'a usage plan needs either a unit price or graduated tiers, not both'
                USING ERRCODE = 'check_violation', DETAIL = format('Plan "%s".', NEW.code);
        END IF;
        IF NEW.billing_timing <> 'in_arrears' THEN
            RAISE EXCEPTION 'a usage plan is billed in arrears'
                USING ERRCODE = 'check_violation', DETAIL = format('Plan "%s" says %s.', NEW.code, NEW.billing_timing),
                      HINT = 'Set billing_timing = ''in_arrears''.';
        END IF;
    ELSE
        NULL;   -- an unknown model: the CHECK constraint plans_pricing_model_check refuses it
    END CASE;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.plans_validate() IS 'trigger: a plan''s currency, pricing model requirements and tiers are consistent';

CREATE TRIGGER plans_validate
    BEFORE INSERT OR UPDATE ON subbilling.plans
    FOR EACH ROW EXECUTE FUNCTION subbilling.plans_validate();

-- A plan that a subscription item refers to keeps its price fields for ever:
-- existing subscribers keep what they bought until migrate_subscriptions.
CREATE FUNCTION subbilling.plans_guard_in_use() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    changed text[] := '{}';
BEGIN
    IF NEW.code IS DISTINCT FROM OLD.code THEN changed := changed || 'code'::text; END IF;
    IF NEW.product_id IS DISTINCT FROM OLD.product_id THEN changed := changed || 'product_id'::text; END IF;
    IF NEW.kind IS DISTINCT FROM OLD.kind THEN changed := changed || 'kind'::text; END IF;
    IF NEW.currency IS DISTINCT FROM OLD.currency THEN changed := changed || 'currency'::text; END IF;
    IF NEW.billing_period::text IS DISTINCT FROM OLD.billing_period::text THEN changed := changed || 'billing_period'::text; END IF;
    IF NEW.pricing_model IS DISTINCT FROM OLD.pricing_model THEN changed := changed || 'pricing_model'::text; END IF;
    IF NEW.price::text IS DISTINCT FROM OLD.price::text THEN changed := changed || 'price'::text; END IF;
    IF NEW.tiers::text IS DISTINCT FROM OLD.tiers::text THEN changed := changed || 'tiers'::text; END IF;
    IF NEW.package_size IS DISTINCT FROM OLD.package_size THEN changed := changed || 'package_size'::text; END IF;
    IF NEW.billing_timing IS DISTINCT FROM OLD.billing_timing THEN changed := changed || 'billing_timing'::text; END IF;
    IF NEW.setup_fee::text IS DISTINCT FROM OLD.setup_fee::text THEN changed := changed || 'setup_fee'::text; END IF;
    IF NEW.included_units IS DISTINCT FROM OLD.included_units THEN changed := changed || 'included_units'::text; END IF;
    IF cardinality(changed) > 0
       AND EXISTS (SELECT 1 FROM subbilling.subscription_items WHERE plan_id = OLD.id) THEN
        RAISE EXCEPTION 'plan "%" is in use and its price fields cannot change', OLD.code
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Changed: %s.', array_to_string(changed, ', ')),
                  HINT = 'Create a new plan and move subscribers with migrate_subscriptions(); name, description, active, trial_days and metadata stay editable.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.plans_guard_in_use() IS 'trigger: the price fields of a plan that a subscription uses are immutable';

CREATE TRIGGER plans_guard_in_use
    BEFORE UPDATE ON subbilling.plans
    FOR EACH ROW EXECUTE FUNCTION subbilling.plans_guard_in_use();

-- ---------------------------------------------------------------- campaigns

CREATE TABLE subbilling.campaigns (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code             text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name             text NOT NULL,
    percent_off      numeric
                     CONSTRAINT campaigns_percent_off_range CHECK (percent_off > 0 AND percent_off <= 100),
    amount_off       subbilling.price,
    duration         text NOT NULL DEFAULT 'once'
                     CONSTRAINT campaigns_duration_check CHECK (duration IN ('once', 'repeating', 'forever')),
    duration_periods integer
                     CONSTRAINT campaigns_duration_periods_check
                     CHECK ((duration = 'repeating') = (duration_periods IS NOT NULL) AND duration_periods > 0),
    valid            daterange NOT NULL DEFAULT '(,)'
                     CONSTRAINT campaigns_valid_nonempty CHECK (NOT isempty(valid)),
    max_redemptions  integer
                     CONSTRAINT campaigns_max_redemptions_positive CHECK (max_redemptions > 0),
    times_redeemed   integer NOT NULL DEFAULT 0
                     CONSTRAINT campaigns_times_redeemed_range
                     CHECK (times_redeemed >= 0 AND times_redeemed <= coalesce(max_redemptions, times_redeemed)),
    plan_codes       text[],
    active           boolean NOT NULL DEFAULT true,
    description      text,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT campaigns_one_discount CHECK ((percent_off IS NULL) <> (amount_off IS NULL))
);
COMMENT ON TABLE subbilling.campaigns IS 'discount campaigns: percent_off or amount_off, once / repeating (duration_periods) / forever, valid dates, redemption limit, plans';

CREATE FUNCTION subbilling.campaigns_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text;
BEGIN
    IF NEW.amount_off IS NOT NULL AND NEW.amount_off <= price_minor(0, currency(NEW.amount_off)) THEN
        RAISE EXCEPTION 'amount_off of campaign "%" must be positive', NEW.code
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.plan_codes IS NOT NULL THEN
        IF cardinality(NEW.plan_codes) = 0 THEN
            RAISE EXCEPTION 'campaign "%" has an empty plan_codes array', NEW.code
                USING ERRCODE = 'check_violation', HINT = 'NULL means every plan.';
        END IF;
        FOREACH c IN ARRAY NEW.plan_codes LOOP
            IF NOT EXISTS (SELECT 1 FROM subbilling.plans WHERE code = c) THEN
                RAISE EXCEPTION 'campaign "%" names unknown plan code "%"', NEW.code, c
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
        END LOOP;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.campaigns_validate() IS 'trigger: a campaign''s amount is positive and its plan codes exist';

CREATE TRIGGER campaigns_validate
    BEFORE INSERT OR UPDATE ON subbilling.campaigns
    FOR EACH ROW EXECUTE FUNCTION subbilling.campaigns_validate();

-- ============================================================================
-- Accounts and payment methods (SPEC section 2).
--
-- accounts.id is the account id, the distribution column of every
-- customer-owned table (SPEC section 7).  external_id is the one global
-- UNIQUE on a customer table; distribute() will have to handle it.
-- docs/catalog.md describes every column and rule.
-- ============================================================================

-- ISO 3166-1 alpha-2: the 249 officially assigned codes.
CREATE FUNCTION subbilling.is_country_code(code text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN code = ANY ('{AD,AE,AF,AG,AI,AL,AM,AO,AQ,AR,AS,AT,AU,AW,AX,AZ,'
                    'BA,BB,BD,BE,BF,BG,BH,BI,BJ,BL,BM,BN,BO,BQ,BR,BS,BT,BV,BW,BY,BZ,'
                    'CA,CC,CD,CF,CG,CH,CI,CK,CL,CM,CN,CO,CR,CU,CV,CW,CX,CY,CZ,'
                    'DE,DJ,DK,DM,DO,DZ,EC,EE,EG,EH,ER,ES,ET,FI,FJ,FK,FM,FO,FR,'
                    'GA,GB,GD,GE,GF,GG,GH,GI,GL,GM,GN,GP,GQ,GR,GS,GT,GU,GW,GY,'
                    'HK,HM,HN,HR,HT,HU,ID,IE,IL,IM,IN,IO,IQ,IR,IS,IT,JE,JM,JO,JP,'
                    'KE,KG,KH,KI,KM,KN,KP,KR,KW,KY,KZ,LA,LB,LC,LI,LK,LR,LS,LT,LU,LV,LY,'
                    'MA,MC,MD,ME,MF,MG,MH,MK,ML,MM,MN,MO,MP,MQ,MR,MS,MT,MU,MV,MW,MX,MY,MZ,'
                    'NA,NC,NE,NF,NG,NI,NL,NO,NP,NR,NU,NZ,OM,'
                    'PA,PE,PF,PG,PH,PK,PL,PM,PN,PR,PS,PT,PW,PY,QA,RE,RO,RS,RU,RW,'
                    'SA,SB,SC,SD,SE,SG,SH,SI,SJ,SK,SL,SM,SN,SO,SR,SS,ST,SV,SX,SY,SZ,'
                    'TC,TD,TF,TG,TH,TJ,TK,TL,TM,TN,TO,TR,TT,TV,TW,TZ,UA,UG,UM,US,UY,UZ,'
                    'VA,VC,VE,VG,VI,VN,VU,WF,WS,YE,YT,ZA,ZM,ZW}'::text[]);
COMMENT ON FUNCTION subbilling.is_country_code(text) IS 'true for an officially assigned ISO 3166-1 alpha-2 country code (upper case)';

-- ---------------------------------------------------------------- accounts

CREATE TABLE subbilling.accounts (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    external_id         text UNIQUE,
    name                text NOT NULL,
    email               text
                        CONSTRAINT accounts_email_format CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    country             text NOT NULL
                        CONSTRAINT accounts_country_iso3166 CHECK (subbilling.is_country_code(country)),
    currency            text NOT NULL
                        CONSTRAINT accounts_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    time_zone           text NOT NULL DEFAULT 'UTC'
                        CONSTRAINT accounts_time_zone_format
                        CHECK (time_zone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$'),
    payment_terms_days  integer NOT NULL DEFAULT 30
                        CONSTRAINT accounts_payment_terms_range CHECK (payment_terms_days BETWEEN 0 AND 365),
    tax_exempt          boolean NOT NULL DEFAULT false,
    tax_id              text,
    dunning_policy_id   bigint REFERENCES subbilling.dunning_policies (id),
    metadata            jsonb NOT NULL DEFAULT '{}'
                        CONSTRAINT accounts_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX accounts_dunning_policy_id_idx ON subbilling.accounts (dunning_policy_id);
COMMENT ON TABLE subbilling.accounts IS 'customers: id is the account id that every customer-owned table carries; currency and time zone of all their billing';

-- Validation that a CHECK cannot express immutably: the currency is one the
-- price type knows, the time zone one the server knows; and an account's
-- currency is fixed once it has subscriptions.
CREATE FUNCTION subbilling.accounts_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.currency IS DISTINCT FROM OLD.currency THEN
        PERFORM currency_exponent(NEW.currency);        -- unknown currency: 22023
    END IF;
    IF TG_OP = 'INSERT' OR NEW.time_zone IS DISTINCT FROM OLD.time_zone THEN
        PERFORM pg_catalog.timezone(NEW.time_zone, pg_catalog.now());  -- unknown zone: 22023
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id <> OLD.id THEN
            RAISE EXCEPTION 'the id of account % cannot change', OLD.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF NEW.currency <> OLD.currency
           AND EXISTS (SELECT 1 FROM subbilling.subscriptions WHERE account_id = OLD.id) THEN
            RAISE EXCEPTION 'account % has subscriptions in %; its currency cannot change', OLD.id, OLD.currency
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Open a new account for billing in another currency.';
        END IF;
        NEW.updated_at := pg_catalog.now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.accounts_validate() IS 'trigger: an account''s currency and time zone are known, and its currency is fixed once it has subscriptions';

CREATE TRIGGER accounts_validate
    BEFORE INSERT OR UPDATE ON subbilling.accounts
    FOR EACH ROW EXECUTE FUNCTION subbilling.accounts_validate();

-- ---------------------------------------------------------------- payment_methods

CREATE TABLE subbilling.payment_methods (
    account_id  bigint NOT NULL REFERENCES subbilling.accounts (id),
    id          bigint GENERATED BY DEFAULT AS IDENTITY,
    kind        text NOT NULL
                CONSTRAINT payment_methods_kind_check
                CHECK (kind IN ('card', 'autogiro', 'avtalegiro', 'betalingsservice', 'sepa_debit',
                                'invoice', 'e_invoice', 'swish', 'vipps', 'mobilepay', 'bank_transfer')),
    automatic   boolean NOT NULL
                GENERATED ALWAYS AS (kind IN ('card', 'autogiro', 'avtalegiro', 'betalingsservice', 'sepa_debit')) STORED,
    is_default  boolean NOT NULL DEFAULT false,
    active      boolean NOT NULL DEFAULT true,
    details     jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT payment_methods_details_object CHECK (pg_catalog.jsonb_typeof(details) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT payment_methods_default_is_active CHECK (active OR NOT is_default)
);
CREATE INDEX payment_methods_id_idx ON subbilling.payment_methods (id);
CREATE UNIQUE INDEX payment_methods_one_default ON subbilling.payment_methods (account_id) WHERE is_default;
COMMENT ON TABLE subbilling.payment_methods IS 'how an account pays; automatic (card, direct debit) methods get a payment request at invoice finalisation; at most one default per account';

-- ============================================================================
-- Events (SPEC section 4): the outbox table, NOTIFY at commit, catch-up.
--
-- Every business event is a row in subbilling.events written in the same
-- transaction as the change, and (unless subbilling.notify = off) a
-- pg_notify('subbilling', json) that PostgreSQL delivers at commit and drops
-- on rollback.  events_after() hands out committed events in id order
-- without ever skipping one that commits late (see docs/events.md).
-- ============================================================================

CREATE TABLE subbilling.events (
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    type            text NOT NULL
                    CONSTRAINT events_type_format CHECK (type ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    subscription_id bigint,
    invoice_id      bigint,
    payload         jsonb NOT NULL DEFAULT '{}'
                    CONSTRAINT events_payload_object CHECK (pg_catalog.jsonb_typeof(payload) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id)
);
CREATE INDEX events_id_idx ON subbilling.events (id);
CREATE INDEX events_subscription_idx ON subbilling.events (account_id, subscription_id, id)
    WHERE subscription_id IS NOT NULL;
COMMENT ON TABLE subbilling.events IS 'the event outbox: one row per business event, written in the transaction of the change; NOTIFY channel subbilling';

-- The outbox watermark.  A writer transaction takes, once, before its first
-- event id is drawn, a shared transaction-level advisory lock whose key
-- encodes a lower bound of that id (the sequence's last value).  The lock
-- lives exactly as long as the transaction, so a reader sees in pg_locks the
-- smallest event id that an unfinished transaction may still commit.
-- Keys: classid = 1396834304 ("SB" << 16) + (bound >> 31), objid = bound's
-- low 31 bits, objsubid = 2 (two-key form); ids up to 2^47.
CREATE FUNCTION subbilling.outbox_lock_key1(bound bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (1396834304 + (bound >> 31))::integer;
COMMENT ON FUNCTION subbilling.outbox_lock_key1(bigint) IS 'internal: first advisory lock key of the outbox watermark for an event id bound';

CREATE FUNCTION subbilling.outbox_lock_key2(bound bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (bound & 2147483647)::integer;
COMMENT ON FUNCTION subbilling.outbox_lock_key2(bigint) IS 'internal: second advisory lock key of the outbox watermark for an event id bound';

-- Writes one event and announces it.  Internal: the lifecycle functions (and
-- the invoicing, payment and dunning functions of later issues) call it.
CREATE FUNCTION subbilling.emit_event(account_id bigint, type text, subscription_id bigint,
                                      payload jsonb, invoice_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    xact    text := pg_current_xact_id()::text;
    bound   bigint;
    ev      subbilling.events;
    note    jsonb;
    msg     text;
BEGIN
    IF current_setting('subbilling_internal.outbox_xact', true) IS DISTINCT FROM xact THEN
        SELECT last_value INTO bound FROM subbilling.events_id_seq;
        PERFORM pg_advisory_xact_lock_shared(outbox_lock_key1(bound), outbox_lock_key2(bound));
        PERFORM set_config('subbilling_internal.outbox_xact', xact, true);
    END IF;

    INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
    VALUES (emit_event.account_id, emit_event.type, emit_event.subscription_id,
            emit_event.invoice_id, coalesce(emit_event.payload, '{}'))
    RETURNING e.* INTO ev;

    IF lower(coalesce(current_setting('subbilling.notify', true), '')) NOT IN ('off', 'false', 'no', '0') THEN
        note := jsonb_build_object('id', ev.id, 'type', ev.type, 'account_id', ev.account_id)
             || CASE WHEN ev.subscription_id IS NULL THEN '{}'::jsonb
                     ELSE jsonb_build_object('subscription_id', ev.subscription_id) END
             || CASE WHEN ev.invoice_id IS NULL THEN '{}'::jsonb
                     ELSE jsonb_build_object('invoice_id', ev.invoice_id) END
             || jsonb_build_object('created_at', ev.created_at, 'payload', ev.payload);
        msg := note::text;
        IF octet_length(msg) > 7000 THEN
            msg := (note - 'payload' || jsonb_build_object('truncated', true))::text;
        END IF;
        PERFORM pg_notify('subbilling', msg);
    END IF;
    RETURN ev.id;
END
$$;
COMMENT ON FUNCTION subbilling.emit_event(bigint, text, bigint, jsonb, bigint) IS 'internal: write an event row and pg_notify(''subbilling'') it in the current transaction';

-- Committed events after last_id, in id order, at most max of them.  Only
-- events below the watermark are handed out: no event with a smaller id can
-- commit later, so a reader that continues from the last id it got never
-- skips one.  Needs READ COMMITTED (each statement its own snapshot).
CREATE FUNCTION subbilling.events_after(last_id bigint, max integer DEFAULT 1000)
    RETURNS SETOF subbilling.events
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    allocated   bigint;
    inflight    bigint;
BEGIN
    IF max IS NULL OR max < 1 THEN
        RAISE EXCEPTION 'max must be a positive number of events'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(max::text, 'NULL'));
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'events_after needs READ COMMITTED isolation'
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = format('The transaction runs at %s; a snapshot taken before the call could hide an event that commits while it runs.',
                                  upper(current_setting('transaction_isolation'))),
                  HINT = 'Call it in its own statement at the default isolation level.';
    END IF;
    -- 1. every id drawn so far (non-transactional read of the sequence)
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO allocated FROM subbilling.events_id_seq;
    -- 2. the smallest id bound that an unfinished writer still holds
    SELECT min((((l.classid::bigint - 1396834304) << 31) | l.objid::bigint))
      INTO inflight
      FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'advisory'
       AND l.objsubid = 2
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
       AND l.classid::bigint BETWEEN 1396834304 AND 1396834304 + 65535
       AND l.pid IS DISTINCT FROM pg_backend_pid();     -- a transaction sees its own events
    -- 3. a new snapshot: what committed before it, below both limits
    RETURN QUERY
        SELECT e.*
          FROM subbilling.events e
         WHERE e.id > coalesce(last_id, 0)
           AND e.id <= allocated
           AND (inflight IS NULL OR e.id < inflight)
         ORDER BY e.id
         LIMIT max;
END
$$;
COMMENT ON FUNCTION subbilling.events_after(bigint, integer) IS 'committed events with id > last_id in id order (at most max); never skips an event that commits late; for a listener catching up after a reconnect';

-- ============================================================================
-- Subscriptions (SPEC section 3): the subscription, its item history, pauses
-- and discounts; the lifecycle functions; statuses and their transitions.
--
-- History is data, never overwritten: a change closes the current item's
-- validity at the effective date and inserts the next item.  The invoicing
-- engine derives the charges a subscription should have had from item
-- validity, trial_end, pauses, cancel_at, billing_anchor and each plan's
-- billing period, and invoices the difference.  docs/subscriptions.md has
-- the lifecycle diagram, every function and every SQLSTATE.
-- ============================================================================

-- ---------------------------------------------------------------- statuses

CREATE TABLE subbilling.subscription_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
COMMENT ON TABLE subbilling.subscription_transitions IS 'the legal changes of a subscription''s status; anything else is refused with SQLSTATE 55000';

INSERT INTO subbilling.subscription_transitions (from_status, to_status) VALUES
    ('trialing',  'active'),
    ('trialing',  'paused'),
    ('trialing',  'canceled'),
    ('active',    'paused'),
    ('active',    'past_due'),
    ('active',    'suspended'),
    ('active',    'canceled'),
    ('paused',    'active'),
    ('paused',    'trialing'),
    ('paused',    'canceled'),
    ('past_due',  'active'),
    ('past_due',  'suspended'),
    ('past_due',  'canceled'),
    ('suspended', 'active'),
    ('suspended', 'canceled');

-- ---------------------------------------------------------------- tables

CREATE TABLE subbilling.subscriptions (
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    status          text NOT NULL
                    CONSTRAINT subscriptions_status_check
                    CHECK (status IN ('trialing', 'active', 'paused', 'past_due', 'suspended', 'canceled')),
    currency        text NOT NULL,
    start_date      date NOT NULL
                    CONSTRAINT subscriptions_start_date_finite CHECK (isfinite(start_date)),
    trial_end       date
                    CONSTRAINT subscriptions_trial_after_start CHECK (trial_end > start_date),
    billing_anchor  date NOT NULL,
    cancel_at       date
                    CONSTRAINT subscriptions_cancel_not_before_start CHECK (cancel_at >= start_date),
    canceled_at     timestamptz,
    credit_unused   boolean NOT NULL DEFAULT false,
    metadata        jsonb NOT NULL DEFAULT '{}'
                    CONSTRAINT subscriptions_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT subscriptions_anchor_check CHECK (billing_anchor >= coalesce(trial_end, start_date)),
    CONSTRAINT subscriptions_canceled_has_date CHECK (status <> 'canceled' OR cancel_at IS NOT NULL),
    CONSTRAINT subscriptions_cancel_request CHECK ((cancel_at IS NULL) = (canceled_at IS NULL))
);
CREATE INDEX subscriptions_id_idx ON subbilling.subscriptions (id);
CREATE INDEX subscriptions_trial_end_idx ON subbilling.subscriptions (trial_end) WHERE status = 'trialing';
CREATE INDEX subscriptions_cancel_at_idx ON subbilling.subscriptions (cancel_at)
    WHERE cancel_at IS NOT NULL AND status <> 'canceled';
CREATE INDEX subscriptions_paused_idx ON subbilling.subscriptions (account_id, id) WHERE status = 'paused';
COMMENT ON TABLE subbilling.subscriptions IS 'subscriptions: status (kept current by the lifecycle functions and advance_subscriptions), start, trial end, billing anchor, scheduled end';

CREATE TABLE subbilling.subscription_items (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id bigint NOT NULL,
    plan_id         bigint NOT NULL REFERENCES subbilling.plans (id),
    kind            text NOT NULL
                    CONSTRAINT subscription_items_kind_check CHECK (kind IN ('base', 'addon')),
    quantity        integer NOT NULL
                    CONSTRAINT subscription_items_quantity_positive CHECK (quantity > 0),
    validity        daterange NOT NULL
                    CONSTRAINT subscription_items_validity_check
                    CHECK (NOT isempty(validity) AND NOT lower_inf(validity)),
    reason          text NOT NULL
                    CONSTRAINT subscription_items_reason_check
                    CHECK (reason IN ('subscribe', 'change_plan', 'change_quantity', 'add_addon', 'migrate')),
    replaces_id     bigint,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    voided_at       timestamptz,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    FOREIGN KEY (account_id, replaces_id) REFERENCES subbilling.subscription_items (account_id, id),
    CONSTRAINT subscription_items_one_base
        EXCLUDE USING gist (account_id WITH =, subscription_id WITH =, validity WITH &&)
        WHERE (kind = 'base' AND voided_at IS NULL),
    CONSTRAINT subscription_items_one_per_addon
        EXCLUDE USING gist (account_id WITH =, subscription_id WITH =, plan_id WITH =, validity WITH &&)
        WHERE (kind = 'addon' AND voided_at IS NULL)
);
CREATE INDEX subscription_items_subscription_idx ON subbilling.subscription_items (account_id, subscription_id);
CREATE INDEX subscription_items_plan_idx ON subbilling.subscription_items (plan_id);
COMMENT ON TABLE subbilling.subscription_items IS 'item history: which plan and quantity held over which dates (validity [from, until)); closed, never overwritten; voided items never took effect';

CREATE TABLE subbilling.subscription_pauses (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id bigint NOT NULL,
    during          daterange NOT NULL
                    CONSTRAINT subscription_pauses_during_check CHECK (NOT isempty(during) AND NOT lower_inf(during)),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    resumed_at      timestamptz,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    CONSTRAINT subscription_pauses_no_overlap
        EXCLUDE USING gist (account_id WITH =, subscription_id WITH =, during WITH &&)
);
CREATE INDEX subscription_pauses_during_idx ON subbilling.subscription_pauses USING gist (during);
COMMENT ON TABLE subbilling.subscription_pauses IS 'pauses (uppehåll): no recurring charges for the dates in during [from, until); an open upper bound pauses until resume()';

CREATE TABLE subbilling.subscription_discounts (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id bigint NOT NULL,
    campaign_id     bigint NOT NULL REFERENCES subbilling.campaigns (id),
    percent_off     numeric,
    amount_off      subbilling.price,
    periods         integer
                    CONSTRAINT subscription_discounts_periods_positive CHECK (periods > 0),
    starts_on       date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    CONSTRAINT subscription_discounts_one_kind CHECK ((percent_off IS NULL) <> (amount_off IS NULL))
);
CREATE INDEX subscription_discounts_subscription_idx ON subbilling.subscription_discounts (account_id, subscription_id);
COMMENT ON TABLE subbilling.subscription_discounts IS 'a campaign redeemed by a subscription: its terms as redeemed, for periods billing periods (NULL = forever) from starts_on';

ALTER TABLE subbilling.events
    ADD CONSTRAINT events_subscription_fkey FOREIGN KEY (account_id, subscription_id)
        REFERENCES subbilling.subscriptions (account_id, id);

-- ---------------------------------------------------------------- history guards

-- Items are history: only the upper bound of validity may shrink (a change
-- closes the item) and voided_at may be set once (a scheduled item that a
-- later change superseded before it took effect).  Nothing is deleted.
CREATE FUNCTION subbilling.subscription_items_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'subscription items are history and are never deleted'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Item %s of subscription %s.', OLD.id, OLD.subscription_id);
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM subbilling.plans p
                        WHERE p.id = NEW.plan_id AND p.kind = NEW.kind
                          AND p.currency = (SELECT s.currency FROM subbilling.subscriptions s
                                             WHERE s.account_id = NEW.account_id AND s.id = NEW.subscription_id)) THEN
            RAISE EXCEPTION 'plan % does not fit subscription % as an item of kind %', NEW.plan_id, NEW.subscription_id, NEW.kind
                USING ERRCODE = 'data_exception',
                      DETAIL = 'An item''s plan has the item''s kind and the subscription''s currency.';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.id <> OLD.id OR NEW.subscription_id <> OLD.subscription_id
       OR NEW.plan_id <> OLD.plan_id OR NEW.kind <> OLD.kind OR NEW.quantity <> OLD.quantity
       OR lower(NEW.validity) <> lower(OLD.validity) OR NEW.reason <> OLD.reason
       OR NEW.replaces_id IS DISTINCT FROM OLD.replaces_id OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'subscription item history is never overwritten'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Item %s: only the end of its validity may move earlier, and voided_at may be set once.', OLD.id),
                  HINT = 'Use change_plan, change_quantity, add_addon, remove_addon or cancel.';
    END IF;
    IF OLD.voided_at IS NOT NULL AND (NEW.voided_at IS DISTINCT FROM OLD.voided_at OR NEW.validity <> OLD.validity) THEN
        RAISE EXCEPTION 'subscription item % is void and cannot change', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NEW.voided_at IS NULL AND OLD.voided_at IS NULL AND NEW.validity <> OLD.validity
       AND (upper_inf(NEW.validity) OR (NOT upper_inf(OLD.validity) AND upper(NEW.validity) > upper(OLD.validity))) THEN
        RAISE EXCEPTION 'the validity of subscription item % can only end earlier', OLD.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('From %s to %s.', OLD.validity, NEW.validity);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.subscription_items_guard() IS 'trigger: subscription items fit their subscription and are never deleted or overwritten, only closed or voided';

CREATE TRIGGER subscription_items_guard
    BEFORE INSERT OR UPDATE OR DELETE ON subbilling.subscription_items
    FOR EACH ROW EXECUTE FUNCTION subbilling.subscription_items_guard();

CREATE FUNCTION subbilling.subscription_pauses_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'subscription pauses are history and are never deleted'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Pause %s of subscription %s.', OLD.id, OLD.subscription_id);
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.id <> OLD.id OR NEW.subscription_id <> OLD.subscription_id
       OR lower(NEW.during) <> lower(OLD.during) OR NEW.created_at <> OLD.created_at
       OR (NEW.during <> OLD.during
           AND (upper_inf(NEW.during) OR (NOT upper_inf(OLD.during) AND upper(NEW.during) > upper(OLD.during)))) THEN
        RAISE EXCEPTION 'subscription pause history is never overwritten'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Pause %s: only its end may move earlier (resume).', OLD.id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.subscription_pauses_guard() IS 'trigger: pauses are never deleted; only their end moves earlier (resume)';

CREATE TRIGGER subscription_pauses_guard
    BEFORE UPDATE OR DELETE ON subbilling.subscription_pauses
    FOR EACH ROW EXECUTE FUNCTION subbilling.subscription_pauses_guard();

-- ---------------------------------------------------------------- history views

CREATE VIEW subbilling.subscription_item_history AS
SELECT i.account_id,
       i.subscription_id,
       i.id AS item_id,
       i.kind,
       p.code AS plan_code,
       p.name AS plan_name,
       i.quantity,
       p.pricing_model,
       p.price,
       p.billing_period,
       lower(i.validity) AS valid_from,
       upper(i.validity) AS valid_until,
       i.validity,
       i.reason,
       i.replaces_id,
       i.created_at,
       i.voided_at
  FROM subbilling.subscription_items i
  JOIN subbilling.plans p ON p.id = i.plan_id;
COMMENT ON VIEW subbilling.subscription_item_history IS 'every subscription item with its plan: which plan and quantity held over which dates (valid_until NULL = open); voided items never took effect';

-- ---------------------------------------------------------------- internal helpers

-- Raises 22023 unless d is a finite date.
CREATE FUNCTION subbilling.check_date(name text, d date) RETURNS date
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF d IS NULL OR NOT isfinite(d) THEN
        RAISE EXCEPTION '% must be a finite date', name
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(d::text, 'NULL'));
    END IF;
    RETURN d;
END
$$;
COMMENT ON FUNCTION subbilling.check_date(text, date) IS 'internal: the date itself, or SQLSTATE 22023 if it is NULL or infinite';

-- Raises 22023 unless q is a positive quantity.
CREATE FUNCTION subbilling.check_quantity(q numeric) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF q IS NULL OR q <= 0 THEN
        RAISE EXCEPTION 'quantity must be positive'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(q::text, 'NULL'));
    END IF;
    RETURN q;
END
$$;
COMMENT ON FUNCTION subbilling.check_quantity(numeric) IS 'internal: the quantity itself, or SQLSTATE 22023 unless it is positive';

-- The subscription, locked for the change; 42704 if there is none.
CREATE FUNCTION subbilling.subscription_for_update(subscription_id bigint) RETURNS subbilling.subscriptions
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    s   subbilling.subscriptions;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = subscription_for_update.subscription_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION subbilling.subscription_for_update(bigint) IS 'internal: the subscription row locked FOR UPDATE, or SQLSTATE 42704';

-- The plan with this code; 42704 if there is none.
CREATE FUNCTION subbilling.plan_by_code(code text) RETURNS subbilling.plans
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    p   subbilling.plans;
BEGIN
    SELECT * INTO p FROM subbilling.plans x WHERE x.code = plan_by_code.code;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown plan code "%"', coalesce(code, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION subbilling.plan_by_code(text) IS 'internal: the plan with this code, or SQLSTATE 42704';

-- A plan may go onto a subscription: active (55000), of the wanted kind
-- (22023), in the subscription's currency (22000).
CREATE FUNCTION subbilling.check_plan_fits(s subbilling.subscriptions, p subbilling.plans, want_kind text) RETURNS void
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF p.kind <> want_kind THEN
        RAISE EXCEPTION '%', CASE p.kind WHEN 'addon' THEN format('plan "%s" is an add-on plan, not a base plan', p.code)
                                          ELSE format('plan "%s" is a base plan, not an add-on plan', p.code) END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE p.kind WHEN 'addon' THEN 'Add-ons go on with add_addon().'
                                    ELSE 'A base plan is chosen with subscribe() or change_plan().' END;
    END IF;
    IF NOT p.active THEN
        RAISE EXCEPTION 'plan "%" is not active', p.code
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Inactive plans keep their subscribers but take no new ones.';
    END IF;
    IF p.currency <> s.currency THEN
        RAISE EXCEPTION 'plan "%" is priced in %, but the account bills in %', p.code, p.currency, s.currency
            USING ERRCODE = 'data_exception';
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.check_plan_fits(subbilling.subscriptions, subbilling.plans, text) IS 'internal: SQLSTATE 22023, 55000 or 22000 unless the plan may go onto the subscription';

-- The status that the dated data give on as_of (NULL before the start).
-- past_due and suspended come from dunning, not from dates: they hold until
-- set_subscription_status() lifts them.
CREATE FUNCTION subbilling.status_on(s subbilling.subscriptions, as_of date) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN as_of < s.start_date THEN NULL
        WHEN s.cancel_at <= as_of THEN 'canceled'
        WHEN s.status IN ('past_due', 'suspended') THEN s.status
        WHEN EXISTS (SELECT 1 FROM subbilling.subscription_pauses p
                      WHERE p.account_id = s.account_id AND p.subscription_id = s.id
                        AND p.during @> as_of) THEN 'paused'
        WHEN s.trial_end > as_of THEN 'trialing'
        ELSE 'active'
    END
$$;
COMMENT ON FUNCTION subbilling.status_on(subbilling.subscriptions, date) IS 'internal: the status of a subscription row on a date, from its dates, pauses and dunning state';

-- Sets the stored status; 55000 if the transition is not legal.
CREATE FUNCTION subbilling.transition(s subbilling.subscriptions, to_status text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF to_status IS NULL OR to_status = s.status THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM subbilling.subscription_transitions t
                    WHERE t.from_status = s.status AND t.to_status = transition.to_status) THEN
        RAISE EXCEPTION 'subscription % cannot go from % to %', s.id, s.status, to_status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The legal transitions are in subbilling.subscription_transitions.';
    END IF;
    UPDATE subbilling.subscriptions x SET status = to_status, updated_at = now()
     WHERE x.account_id = s.account_id AND x.id = s.id;
END
$$;
COMMENT ON FUNCTION subbilling.transition(subbilling.subscriptions, text) IS 'internal: set a subscription''s status, or SQLSTATE 55000 if the transition is not legal';

-- 55000 if the subscription is canceled or ends on or before d.
CREATE FUNCTION subbilling.check_not_ended(s subbilling.subscriptions, d date) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF s.status = 'canceled' THEN
        RAISE EXCEPTION 'subscription % is canceled', s.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It ended on %s.', s.cancel_at);
    END IF;
    IF s.cancel_at <= d THEN
        RAISE EXCEPTION 'subscription % ends on %', s.id, s.cancel_at
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Nothing can change on %s, after its end.', d);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.check_not_ended(subbilling.subscriptions, date) IS 'internal: SQLSTATE 55000 if the subscription is canceled or has ended by the date';

-- The base item in effect on d; if none (before the start, after the end),
-- the latest base item that took effect.
CREATE FUNCTION subbilling.base_item_on(s subbilling.subscriptions, d date) RETURNS subbilling.subscription_items
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT i.*
      FROM subbilling.subscription_items i
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id
       AND i.kind = 'base' AND i.voided_at IS NULL
     ORDER BY i.validity @> d DESC, lower(i.validity) DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION subbilling.base_item_on(subbilling.subscriptions, date) IS 'internal: the base item in effect on a date (else the latest one)';

-- The end of the period that holds d: the start date before the start, the
-- trial end during the trial, else the next boundary of the base plan's
-- billing period counted from the billing anchor.
CREATE FUNCTION subbilling.subscription_period_end(s subbilling.subscriptions, d date) RETURNS date
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bp  subbilling.billing_period;
BEGIN
    IF d < s.start_date THEN
        RETURN s.start_date;
    END IF;
    IF s.trial_end > d THEN
        RETURN s.trial_end;
    END IF;
    SELECT p.billing_period INTO bp
      FROM subbilling.plans p
     WHERE p.id = (subbilling.base_item_on(s, d)).plan_id;
    RETURN upper(period_of(s.billing_anchor, bp, d));
END
$$;
COMMENT ON FUNCTION subbilling.subscription_period_end(subbilling.subscriptions, date) IS 'internal: the end (exclusive) of the billing period, or trial, that holds a date';

-- The item change at the heart of every lifecycle function.  In the chain of
-- items of one kind (the base chain, or one add-on plan's chain) it
--   * refuses to reach back past a change that already took effect (22023),
--   * voids the items that start on or after effective (scheduled changes
--     that this change supersedes, or a same-day item it replaces),
--   * closes the item in effect at effective,
--   * and, unless new_plan_id is NULL (removal), opens the new item from
--     effective until the subscription's cancel_at (or open).
-- Returns the item that was in effect on effective (old), the new item and
-- the voided items' ids.
CREATE FUNCTION subbilling.replace_item(s subbilling.subscriptions, item_kind text, chain_plan_id bigint,
                                        effective date, new_plan_id bigint, new_quantity integer,
                                        why text,
                                        OUT old_item subbilling.subscription_items,
                                        OUT new_item subbilling.subscription_items,
                                        OUT voided_ids bigint[])
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    taken   date;
BEGIN
    SELECT * INTO old_item
      FROM subbilling.subscription_items i
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
       AND i.kind = item_kind AND (item_kind = 'base' OR i.plan_id = chain_plan_id)
       AND i.validity @> effective;

    SELECT max(lower(i.validity)) INTO taken
      FROM subbilling.subscription_items i
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
       AND i.kind = item_kind AND (item_kind = 'base' OR i.plan_id = chain_plan_id)
       AND lower(i.validity) > effective AND lower(i.validity) <= current_date;
    IF taken IS NOT NULL THEN
        RAISE EXCEPTION 'effective date % is before a change that took effect on %', effective, taken
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'History that has taken effect is not rewritten.',
                  HINT = format('Use an effective date on or after %s.', taken);
    END IF;

    WITH v AS (
        UPDATE subbilling.subscription_items i SET voided_at = now()
         WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
           AND i.kind = item_kind AND (item_kind = 'base' OR i.plan_id = chain_plan_id)
           AND lower(i.validity) >= effective
        RETURNING i.id)
    SELECT coalesce(array_agg(v.id ORDER BY v.id), '{}') INTO voided_ids FROM v;

    UPDATE subbilling.subscription_items i SET validity = daterange(lower(i.validity), effective)
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
       AND i.kind = item_kind AND (item_kind = 'base' OR i.plan_id = chain_plan_id)
       AND lower(i.validity) < effective AND (upper_inf(i.validity) OR upper(i.validity) > effective);

    IF new_plan_id IS NOT NULL THEN
        INSERT INTO subbilling.subscription_items AS i
               (account_id, subscription_id, plan_id, kind, quantity, validity, reason, replaces_id)
        VALUES (s.account_id, s.id, new_plan_id, item_kind, new_quantity,
                daterange(effective, s.cancel_at), why, old_item.id)
        RETURNING i.* INTO new_item;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.replace_item(subbilling.subscriptions, text, bigint, date, bigint, integer, text) IS 'internal: close the item in effect at a date, void superseded scheduled items, open the next item';

-- The JSON of an item for event payloads: plan, quantity, price, item id.
CREATE FUNCTION subbilling.item_json(i subbilling.subscription_items) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN i.id IS NOT NULL THEN
        (SELECT jsonb_build_object('item_id', i.id, 'plan', p.code, 'quantity', i.quantity,
                                   'price', p.price::text, 'pricing_model', p.pricing_model,
                                   'billing_period', p.billing_period::text)
           FROM subbilling.plans p WHERE p.id = i.plan_id)
    END
$$;
COMMENT ON FUNCTION subbilling.item_json(subbilling.subscription_items) IS 'internal: an item as an event payload object (plan code, quantity, price)';

-- After a change: the stored status follows the dated data as of today.
CREATE FUNCTION subbilling.refresh_status(subscription_id bigint, account_id bigint) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    s   subbilling.subscriptions;
    st  text;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions x
     WHERE x.account_id = refresh_status.account_id AND x.id = refresh_status.subscription_id;
    st := coalesce(status_on(s, current_date), s.status);
    PERFORM transition(s, st);
    UPDATE subbilling.subscriptions x SET updated_at = now()
     WHERE x.account_id = s.account_id AND x.id = s.id;
    RETURN st;
END
$$;
COMMENT ON FUNCTION subbilling.refresh_status(bigint, bigint) IS 'internal: bring the stored status in line with the dated data as of today; returns it';

-- ---------------------------------------------------------------- subscribe

CREATE FUNCTION subbilling.subscribe(account_id bigint, plan_code text, quantity integer DEFAULT 1,
                                     start_date date DEFAULT CURRENT_DATE, campaign_code text DEFAULT NULL,
                                     trial_days integer DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a       subbilling.accounts;
    p       subbilling.plans;
    c       subbilling.campaigns;
    s       subbilling.subscriptions;
    item    subbilling.subscription_items;
    ndays   integer;
    t_end   date;
BEGIN
    PERFORM check_quantity(subscribe.quantity);
    PERFORM check_date('start_date', subscribe.start_date);
    IF subscribe.trial_days < 0 OR subscribe.trial_days > 3650 THEN
        RAISE EXCEPTION 'trial_days must be between 0 and 3650'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', subscribe.trial_days);
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = subscribe.account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', coalesce(subscribe.account_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    p := plan_by_code(subscribe.plan_code);
    s.id := NULL;
    s.currency := a.currency;
    PERFORM check_plan_fits(s, p, 'base');

    IF subscribe.campaign_code IS NOT NULL THEN
        SELECT * INTO c FROM subbilling.campaigns x WHERE x.code = subscribe.campaign_code FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown campaign code "%"', subscribe.campaign_code
                USING ERRCODE = 'undefined_object';
        END IF;
        IF NOT c.active OR NOT c.valid @> subscribe.start_date THEN
            RAISE EXCEPTION 'campaign "%" is not valid on %', c.code, subscribe.start_date
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = CASE WHEN c.active THEN format('It is valid %s.', c.valid) ELSE 'It is not active.' END;
        END IF;
        IF c.plan_codes IS NOT NULL AND NOT p.code = ANY (c.plan_codes) THEN
            RAISE EXCEPTION 'campaign "%" does not apply to plan "%"', c.code, p.code
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('It applies to %s.', array_to_string(c.plan_codes, ', '));
        END IF;
        IF c.amount_off IS NOT NULL AND currency(c.amount_off) <> a.currency THEN
            RAISE EXCEPTION 'campaign "%" takes off %, but the account bills in %', c.code, c.amount_off, a.currency
                USING ERRCODE = 'data_exception';
        END IF;
        IF c.times_redeemed >= c.max_redemptions THEN
            RAISE EXCEPTION 'campaign "%" has been redeemed all % times', c.code, c.max_redemptions
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;

    ndays := coalesce(subscribe.trial_days, p.trial_days);
    IF ndays > 0 THEN
        t_end := subscribe.start_date + ndays;
    END IF;

    INSERT INTO subbilling.subscriptions AS x
           (account_id, status, currency, start_date, trial_end, billing_anchor)
    VALUES (a.id, CASE WHEN t_end > current_date THEN 'trialing' ELSE 'active' END,
            a.currency, subscribe.start_date, t_end, coalesce(t_end, subscribe.start_date))
    RETURNING x.* INTO s;

    INSERT INTO subbilling.subscription_items AS i
           (account_id, subscription_id, plan_id, kind, quantity, validity, reason)
    VALUES (a.id, s.id, p.id, 'base', subscribe.quantity, daterange(subscribe.start_date, NULL), 'subscribe')
    RETURNING i.* INTO item;

    IF c.id IS NOT NULL THEN
        UPDATE subbilling.campaigns x SET times_redeemed = x.times_redeemed + 1 WHERE x.id = c.id;
        INSERT INTO subbilling.subscription_discounts
               (account_id, subscription_id, campaign_id, percent_off, amount_off, periods, starts_on)
        VALUES (a.id, s.id, c.id, c.percent_off, c.amount_off,
                CASE c.duration WHEN 'once' THEN 1 WHEN 'repeating' THEN c.duration_periods END,
                s.billing_anchor);
    END IF;

    PERFORM emit_event(a.id, 'subscription.created', s.id,
        jsonb_build_object('status', s.status, 'currency', s.currency,
                           'start_date', s.start_date, 'trial_end', s.trial_end,
                           'billing_anchor', s.billing_anchor, 'campaign', c.code)
        || jsonb_build_object('item', item_json(item), 'setup_fee', p.setup_fee::text));
    RETURN s.id;
END
$$;
COMMENT ON FUNCTION subbilling.subscribe(bigint, text, integer, date, text, integer) IS 'start a subscription of an account on a base plan (optionally a campaign and a trial); returns its id; event subscription.created';

-- ---------------------------------------------------------------- add-ons

CREATE FUNCTION subbilling.add_addon(subscription_id bigint, plan_code text, quantity integer DEFAULT 1,
                                     effective date DEFAULT CURRENT_DATE)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
    p   subbilling.plans;
    r   record;
BEGIN
    PERFORM check_quantity(add_addon.quantity);
    PERFORM check_date('effective', add_addon.effective);
    s := subscription_for_update(add_addon.subscription_id);
    p := plan_by_code(add_addon.plan_code);
    PERFORM check_plan_fits(s, p, 'addon');
    PERFORM check_not_ended(s, add_addon.effective);
    IF add_addon.effective < s.start_date THEN
        RAISE EXCEPTION 'effective date % is before the subscription''s start on %', add_addon.effective, s.start_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM subbilling.subscription_items i
                WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
                  AND i.plan_id = p.id AND i.validity @> add_addon.effective) THEN
        RAISE EXCEPTION 'subscription % already has add-on "%" on %', s.id, p.code, add_addon.effective
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'To change its quantity, remove_addon() and add_addon() on the same date.';
    END IF;
    r := replace_item(s, 'addon', p.id, add_addon.effective, p.id, add_addon.quantity, 'add_addon');
    PERFORM emit_event(s.account_id, 'subscription.changed', s.id,
        jsonb_build_object('change', 'addon_added', 'effective', add_addon.effective,
                           'status', s.status, 'old', NULL, 'new', item_json(r.new_item),
                           'voided_item_ids', to_jsonb(r.voided_ids)));
    PERFORM refresh_status(s.id, s.account_id);
    RETURN (r.new_item).id;
END
$$;
COMMENT ON FUNCTION subbilling.add_addon(bigint, text, integer, date) IS 'add an add-on plan to a subscription from a date; returns the new item id; event subscription.changed';

CREATE FUNCTION subbilling.remove_addon(subscription_id bigint, plan_code text,
                                        effective date DEFAULT CURRENT_DATE)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
    p   subbilling.plans;
    r   record;
BEGIN
    PERFORM check_date('effective', remove_addon.effective);
    s := subscription_for_update(remove_addon.subscription_id);
    p := plan_by_code(remove_addon.plan_code);
    IF p.kind <> 'addon' THEN
        RAISE EXCEPTION 'plan "%" is a base plan, not an add-on plan', p.code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A base plan is ended with cancel() or replaced with change_plan().';
    END IF;
    PERFORM check_not_ended(s, remove_addon.effective);
    IF NOT EXISTS (SELECT 1 FROM subbilling.subscription_items i
                    WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
                      AND i.plan_id = p.id AND i.validity @> remove_addon.effective) THEN
        RAISE EXCEPTION 'subscription % has no add-on "%" on %', s.id, p.code, remove_addon.effective
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    r := replace_item(s, 'addon', p.id, remove_addon.effective, NULL, NULL, NULL);
    PERFORM emit_event(s.account_id, 'subscription.changed', s.id,
        jsonb_build_object('change', 'addon_removed', 'effective', remove_addon.effective,
                           'status', s.status, 'old', item_json(r.old_item), 'new', NULL,
                           'voided_item_ids', to_jsonb(r.voided_ids)));
    PERFORM refresh_status(s.id, s.account_id);
    RETURN (r.old_item).id;
END
$$;
COMMENT ON FUNCTION subbilling.remove_addon(bigint, text, date) IS 'end an add-on of a subscription at a date; returns the closed item id; event subscription.changed';

-- ---------------------------------------------------------------- plan and quantity

CREATE FUNCTION subbilling.change_plan(subscription_id bigint, plan_code text,
                                       effective date DEFAULT CURRENT_DATE, timing text DEFAULT 'immediate')
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    p       subbilling.plans;
    cur     subbilling.subscription_items;
    switch  date;
    r       record;
BEGIN
    PERFORM check_date('effective', change_plan.effective);
    IF change_plan.timing IS NULL OR change_plan.timing NOT IN ('immediate', 'end_of_period') THEN
        RAISE EXCEPTION 'unknown timing "%"', coalesce(change_plan.timing, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''immediate'' or ''end_of_period''.';
    END IF;
    s := subscription_for_update(change_plan.subscription_id);
    p := plan_by_code(change_plan.plan_code);
    PERFORM check_plan_fits(s, p, 'base');
    PERFORM check_not_ended(s, change_plan.effective);
    IF change_plan.effective < s.start_date THEN
        RAISE EXCEPTION 'effective date % is before the subscription''s start on %', change_plan.effective, s.start_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    switch := CASE change_plan.timing WHEN 'immediate' THEN change_plan.effective
                                      ELSE subscription_period_end(s, change_plan.effective) END;
    PERFORM check_not_ended(s, switch);
    cur := base_item_on(s, switch);
    IF cur.plan_id = p.id THEN
        RAISE EXCEPTION 'subscription % is already on plan "%" on %', s.id, p.code, switch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    r := replace_item(s, 'base', NULL, switch, p.id, cur.quantity, 'change_plan');
    PERFORM emit_event(s.account_id, 'subscription.changed', s.id,
        jsonb_build_object('change', 'plan', 'timing', change_plan.timing,
                           'requested', change_plan.effective, 'effective', switch,
                           'status', s.status, 'old', item_json(r.old_item), 'new', item_json(r.new_item),
                           'voided_item_ids', to_jsonb(r.voided_ids)));
    PERFORM refresh_status(s.id, s.account_id);
    RETURN (r.new_item).id;
END
$$;
COMMENT ON FUNCTION subbilling.change_plan(bigint, text, date, text) IS 'move a subscription to another base plan, immediately (prorated by the invoicing engine) or at the end of the period; returns the new item id; event subscription.changed';

CREATE FUNCTION subbilling.change_quantity(subscription_id bigint, quantity integer,
                                           effective date DEFAULT CURRENT_DATE)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    cur     subbilling.subscription_items;
    r       record;
BEGIN
    PERFORM check_quantity(change_quantity.quantity);
    PERFORM check_date('effective', change_quantity.effective);
    s := subscription_for_update(change_quantity.subscription_id);
    PERFORM check_not_ended(s, change_quantity.effective);
    IF change_quantity.effective < s.start_date THEN
        RAISE EXCEPTION 'effective date % is before the subscription''s start on %', change_quantity.effective, s.start_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cur := base_item_on(s, change_quantity.effective);
    IF cur.quantity = change_quantity.quantity THEN
        RAISE EXCEPTION 'subscription % already has quantity % on %', s.id, cur.quantity, change_quantity.effective
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    r := replace_item(s, 'base', NULL, change_quantity.effective, cur.plan_id, change_quantity.quantity, 'change_quantity');
    PERFORM emit_event(s.account_id, 'subscription.changed', s.id,
        jsonb_build_object('change', 'quantity', 'effective', change_quantity.effective,
                           'status', s.status, 'old', item_json(r.old_item), 'new', item_json(r.new_item),
                           'voided_item_ids', to_jsonb(r.voided_ids)));
    PERFORM refresh_status(s.id, s.account_id);
    RETURN (r.new_item).id;
END
$$;
COMMENT ON FUNCTION subbilling.change_quantity(bigint, integer, date) IS 'change the quantity of a subscription''s base plan from a date; returns the new item id; event subscription.changed';

-- ---------------------------------------------------------------- pause and resume

CREATE FUNCTION subbilling.pause(subscription_id bigint, from_date date, until_date date DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    other   subbilling.subscription_pauses;
    pid     bigint;
    st      text;
BEGIN
    PERFORM check_date('from_date', pause.from_date);
    IF pause.until_date IS NOT NULL THEN
        PERFORM check_date('until_date', pause.until_date);
        IF pause.until_date <= pause.from_date THEN
            RAISE EXCEPTION 'until_date % is not after from_date %', pause.until_date, pause.from_date
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A pause covers [from_date, until_date): it ends before until_date.';
        END IF;
    END IF;
    s := subscription_for_update(pause.subscription_id);
    PERFORM check_not_ended(s, pause.from_date);
    IF pause.from_date < s.start_date THEN
        RAISE EXCEPTION 'from_date % is before the subscription''s start on %', pause.from_date, s.start_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF s.status IN ('past_due', 'suspended') THEN
        RAISE EXCEPTION 'subscription % is % and cannot be paused', s.id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Settle the open invoices first.';
    END IF;
    SELECT * INTO other FROM subbilling.subscription_pauses x
     WHERE x.account_id = s.account_id AND x.subscription_id = s.id
       AND x.during && daterange(pause.from_date, pause.until_date)
     ORDER BY lower(x.during) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'subscription % is already paused %', s.id,
                        CASE WHEN upper_inf(other.during) THEN format('from %s', lower(other.during))
                             ELSE format('from %s until %s', lower(other.during), upper(other.during)) END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Pause %s covers %s.', other.id, other.during),
                  HINT = 'resume() ends a pause; pauses cannot overlap.';
    END IF;
    INSERT INTO subbilling.subscription_pauses AS x (account_id, subscription_id, during)
    VALUES (s.account_id, s.id, daterange(pause.from_date, pause.until_date))
    RETURNING x.id INTO pid;
    st := refresh_status(s.id, s.account_id);
    PERFORM emit_event(s.account_id, 'subscription.paused', s.id,
        jsonb_build_object('pause_id', pid, 'from', pause.from_date, 'until', pause.until_date,
                           'previous_status', s.status, 'status', st));
    RETURN pid;
END
$$;
COMMENT ON FUNCTION subbilling.pause(bigint, date, date) IS 'pause a subscription from a date until a date (or until resume()); no recurring charges while paused; returns the pause id; event subscription.paused';

CREATE FUNCTION subbilling.resume(subscription_id bigint, on_date date)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
    pz  subbilling.subscription_pauses;
    st  text;
BEGIN
    PERFORM check_date('on_date', resume.on_date);
    s := subscription_for_update(resume.subscription_id);
    PERFORM check_not_ended(s, resume.on_date);
    SELECT * INTO pz FROM subbilling.subscription_pauses x
     WHERE x.account_id = s.account_id AND x.subscription_id = s.id AND x.during @> resume.on_date;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % is not paused on %', s.id, resume.on_date
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF lower(pz.during) = resume.on_date THEN
        RAISE EXCEPTION 'on_date % is the first day of the pause', resume.on_date
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Pause %s covers %s; a resume ends it on a later day.', pz.id, pz.during);
    END IF;
    UPDATE subbilling.subscription_pauses x
       SET during = daterange(lower(x.during), resume.on_date), resumed_at = now()
     WHERE x.account_id = pz.account_id AND x.id = pz.id;
    st := refresh_status(s.id, s.account_id);
    PERFORM emit_event(s.account_id, 'subscription.resumed', s.id,
        jsonb_build_object('pause_id', pz.id, 'paused_from', lower(pz.during), 'on', resume.on_date,
                           'previous_status', s.status, 'status', st));
    RETURN pz.id;
END
$$;
COMMENT ON FUNCTION subbilling.resume(bigint, date) IS 'end the pause in effect on a date, from that date; returns the pause id; event subscription.resumed';

-- ---------------------------------------------------------------- cancel

CREATE FUNCTION subbilling.cancel(subscription_id bigint, effective date DEFAULT NULL,
                                  credit_unused boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    ends    date;
    voided  bigint[];
    st      text;
BEGIN
    IF cancel.effective IS NOT NULL THEN
        PERFORM check_date('effective', cancel.effective);
    END IF;
    s := subscription_for_update(cancel.subscription_id);
    IF s.status = 'canceled' THEN
        PERFORM check_not_ended(s, s.cancel_at);
    END IF;
    IF s.cancel_at IS NOT NULL THEN
        RAISE EXCEPTION 'subscription % is already canceled from %', s.id, s.cancel_at
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    ends := coalesce(cancel.effective, subscription_period_end(s, current_date));
    IF ends < s.start_date THEN
        RAISE EXCEPTION 'effective date % is before the subscription''s start on %', ends, s.start_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH v AS (
        UPDATE subbilling.subscription_items i SET voided_at = now()
         WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
           AND lower(i.validity) >= ends
        RETURNING i.id)
    SELECT coalesce(array_agg(v.id ORDER BY v.id), '{}') INTO voided FROM v;
    UPDATE subbilling.subscription_items i SET validity = daterange(lower(i.validity), ends)
     WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.voided_at IS NULL
       AND (upper_inf(i.validity) OR upper(i.validity) > ends);
    UPDATE subbilling.subscriptions x
       SET cancel_at = ends, canceled_at = now(), credit_unused = coalesce(cancel.credit_unused, false)
     WHERE x.account_id = s.account_id AND x.id = s.id;
    st := refresh_status(s.id, s.account_id);
    PERFORM emit_event(s.account_id, 'subscription.canceled', s.id,
        jsonb_build_object('effective', ends, 'requested', cancel.effective,
                           'at_period_end', cancel.effective IS NULL,
                           'credit_unused', coalesce(cancel.credit_unused, false),
                           'previous_status', s.status, 'status', st,
                           'voided_item_ids', to_jsonb(voided)));
    RETURN s.id;
END
$$;
COMMENT ON FUNCTION subbilling.cancel(bigint, date, boolean) IS 'end a subscription at a date (NULL: at the end of the current period or trial), optionally crediting the unused prepaid part; returns the subscription id; event subscription.canceled';

-- ---------------------------------------------------------------- migrate

CREATE FUNCTION subbilling.migrate_subscriptions(from_plan text, to_plan text, effective date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    pf      subbilling.plans;
    pt      subbilling.plans;
    s       subbilling.subscriptions;
    target  record;
    r       record;
    newitem subbilling.subscription_items;
    n       integer := 0;
BEGIN
    PERFORM check_date('effective', migrate_subscriptions.effective);
    pf := plan_by_code(from_plan);
    pt := plan_by_code(to_plan);
    IF pf.id = pt.id THEN
        RAISE EXCEPTION 'from_plan and to_plan are the same plan "%"', pf.code
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pf.kind <> pt.kind THEN
        RAISE EXCEPTION 'plan "%" is % plan but plan "%" is %', pf.code,
                        CASE pf.kind WHEN 'base' THEN 'a base' ELSE 'an add-on' END, pt.code,
                        CASE pt.kind WHEN 'base' THEN 'a base plan' ELSE 'an add-on plan' END
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Subscribers move between plans of one kind.';
    END IF;
    IF pf.currency <> pt.currency THEN
        RAISE EXCEPTION 'plan "%" is priced in % and plan "%" in %', pf.code, pf.currency, pt.code, pt.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF NOT pt.active THEN
        RAISE EXCEPTION 'plan "%" is not active', pt.code
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    FOR target IN
        SELECT DISTINCT i.account_id, i.subscription_id
          FROM subbilling.subscription_items i
         WHERE i.plan_id = pf.id AND i.voided_at IS NULL AND i.validity @> migrate_subscriptions.effective
         ORDER BY i.account_id, i.subscription_id
    LOOP
        SELECT * INTO s FROM subbilling.subscriptions x
         WHERE x.account_id = target.account_id AND x.id = target.subscription_id FOR UPDATE;
        -- skip what a concurrent change moved meanwhile
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM subbilling.subscription_items i
             WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.plan_id = pf.id
               AND i.voided_at IS NULL AND i.validity @> migrate_subscriptions.effective);
        IF pf.kind = 'base' THEN
            r := replace_item(s, 'base', NULL, migrate_subscriptions.effective, pt.id,
                              (base_item_on(s, migrate_subscriptions.effective)).quantity, 'migrate');
            newitem := r.new_item;
        ELSE
            -- the add-on chain of from_plan ends; to_plan's chain begins
            IF EXISTS (SELECT 1 FROM subbilling.subscription_items i
                        WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.plan_id = pt.id
                          AND i.voided_at IS NULL AND i.validity && daterange(migrate_subscriptions.effective, NULL)) THEN
                RAISE EXCEPTION 'subscription % already has add-on "%" from %', s.id, pt.code, migrate_subscriptions.effective
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            r := replace_item(s, 'addon', pf.id, migrate_subscriptions.effective, NULL, NULL, NULL);
            INSERT INTO subbilling.subscription_items AS i
                   (account_id, subscription_id, plan_id, kind, quantity, validity, reason, replaces_id)
            VALUES (s.account_id, s.id, pt.id, 'addon', (r.old_item).quantity,
                    daterange(migrate_subscriptions.effective, s.cancel_at), 'migrate', (r.old_item).id)
            RETURNING i.* INTO newitem;
        END IF;
        -- like every lifecycle change: the stored status and updated_at follow, and billing
        -- sees the subscription as changed (a mid-period migration is prorated)
        PERFORM refresh_status(s.id, s.account_id);
        PERFORM emit_event(s.account_id, 'subscription.changed', s.id,
            jsonb_build_object('change', 'migrated', 'effective', migrate_subscriptions.effective,
                               'status', s.status, 'old', item_json(r.old_item), 'new', item_json(newitem),
                               'voided_item_ids', to_jsonb(r.voided_ids)));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.migrate_subscriptions(text, text, date) IS 'move every subscription that holds from_plan on the effective date to to_plan from that date (same quantity); returns how many; event subscription.changed per subscription';

-- ---------------------------------------------------------------- status

CREATE FUNCTION subbilling.subscription_status(subscription_id bigint, as_of date DEFAULT CURRENT_DATE)
    RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    s   subbilling.subscriptions;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = subscription_status.subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN status_on(s, check_date('as_of', as_of));
END
$$;
COMMENT ON FUNCTION subbilling.subscription_status(bigint, date) IS 'the status of a subscription on a date, computed from its dates, pauses and dunning state (NULL before its start)';

-- past_due, suspended, and back to active: set by dunning and payments.
CREATE FUNCTION subbilling.set_subscription_status(subscription_id bigint, status text, reason text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
    st  text;
BEGIN
    IF set_subscription_status.status IS NULL
       OR set_subscription_status.status NOT IN ('past_due', 'suspended', 'active') THEN
        RAISE EXCEPTION 'set_subscription_status sets past_due, suspended or active, not %',
                        coalesce(set_subscription_status.status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Trials, pauses and cancellations follow from subscribe, pause, resume and cancel.';
    END IF;
    s := subscription_for_update(set_subscription_status.subscription_id);
    IF set_subscription_status.status = 'active' AND s.status NOT IN ('past_due', 'suspended') THEN
        RAISE EXCEPTION 'subscription % is %, not past_due or suspended', s.id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF set_subscription_status.status = s.status THEN
        RAISE EXCEPTION 'subscription % is already %', s.id, s.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM transition(s, set_subscription_status.status);
    IF set_subscription_status.status = 'active' THEN
        -- back from a payment state to what the dates say (active, or canceled)
        st := refresh_status(s.id, s.account_id);
    ELSE
        st := set_subscription_status.status;
    END IF;
    PERFORM emit_event(s.account_id,
                       CASE set_subscription_status.status WHEN 'active' THEN 'subscription.reactivated'
                            ELSE 'subscription.' || set_subscription_status.status END,
                       s.id,
                       jsonb_build_object('previous_status', s.status, 'status', st, 'reason', reason));
    RETURN st;
END
$$;
COMMENT ON FUNCTION subbilling.set_subscription_status(bigint, text, text) IS 'set past_due or suspended (payment stop), or lift them back to active; for dunning and payments; events subscription.past_due, subscription.suspended, subscription.reactivated';

-- Applies the transitions that dates bring: trial ended, pause started or
-- ended, scheduled cancellation reached.  The worker calls it; so can cron.
CREATE FUNCTION subbilling.advance_subscriptions(as_of date DEFAULT CURRENT_DATE)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cand    record;
    s       subbilling.subscriptions;
    st      text;
    n       integer := 0;
BEGIN
    PERFORM check_date('as_of', as_of);
    FOR cand IN
        SELECT account_id, id FROM subbilling.subscriptions
         WHERE cancel_at <= as_of AND status <> 'canceled'
        UNION
        SELECT account_id, id FROM subbilling.subscriptions
         WHERE status = 'trialing' AND trial_end <= as_of
        UNION
        SELECT x.account_id, x.id
          FROM subbilling.subscription_pauses p
          JOIN subbilling.subscriptions x ON x.account_id = p.account_id AND x.id = p.subscription_id
         WHERE p.during @> as_of AND x.status IN ('active', 'trialing')
        UNION
        SELECT account_id, id FROM subbilling.subscriptions WHERE status = 'paused'
        ORDER BY 1, 2
    LOOP
        SELECT * INTO s FROM subbilling.subscriptions x
         WHERE x.account_id = cand.account_id AND x.id = cand.id FOR UPDATE;
        st := status_on(s, as_of);
        CONTINUE WHEN st IS NULL OR st = s.status
            OR NOT EXISTS (SELECT 1 FROM subbilling.subscription_transitions t
                            WHERE t.from_status = s.status AND t.to_status = st);
        PERFORM transition(s, st);
        PERFORM emit_event(s.account_id, 'subscription.status_changed', s.id,
            jsonb_build_object('previous_status', s.status, 'status', st, 'as_of', as_of,
                               'reason', CASE WHEN st = 'canceled' THEN 'canceled'
                                              WHEN st = 'paused' THEN 'pause_started'
                                              WHEN s.status = 'paused' THEN 'pause_ended'
                                              ELSE 'trial_ended' END));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.advance_subscriptions(date) IS 'apply the status changes that dates bring (trial end, pause start and end, scheduled cancellation) as of a date; returns how many subscriptions changed; event subscription.status_changed each';

-- ---------------------------------------------------------------- history

CREATE FUNCTION subbilling.subscription_history(subscription_id bigint)
    RETURNS SETOF subbilling.subscription_item_history
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT h.* FROM subbilling.subscription_item_history h
     WHERE h.subscription_id = subscription_history.subscription_id
     ORDER BY h.kind, h.valid_from, h.item_id
$$;
COMMENT ON FUNCTION subbilling.subscription_history(bigint) IS 'the whole item history of a subscription, base then add-ons, by date (voided items included, marked)';

CREATE FUNCTION subbilling.subscription_items_on(subscription_id bigint, on_date date DEFAULT CURRENT_DATE)
    RETURNS SETOF subbilling.subscription_item_history
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT h.* FROM subbilling.subscription_item_history h
     WHERE h.subscription_id = subscription_items_on.subscription_id
       AND h.voided_at IS NULL AND h.validity @> on_date
     ORDER BY h.kind DESC, h.plan_code
$$;
COMMENT ON FUNCTION subbilling.subscription_items_on(bigint, date) IS 'what a subscription held on a date: its base plan and add-ons with quantities';

-- ============================================================================
-- Usage (SPEC section 3): metered quantities recorded against an item of a
-- subscription, idempotent on the caller's key.
--
-- Usage belongs to the subscription item whose plan it names and which is in
-- effect on the usage date (the account's local date of `at`).  Items of
-- pricing model 'usage' are billed from it in arrears; for other models it is
-- kept for insight (included units, upsell candidates).  No event per usage
-- row: usage arrives in volume and would flood the outbox; the invoice that
-- bills it is the event.  See docs/subscriptions.md.
-- ============================================================================

CREATE TABLE subbilling.usage (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id bigint NOT NULL,
    item_id         bigint NOT NULL,
    plan_id         bigint NOT NULL REFERENCES subbilling.plans (id),
    quantity        numeric NOT NULL
                    CONSTRAINT usage_quantity_positive CHECK (quantity > 0),
    at              timestamptz NOT NULL,
    usage_date      date NOT NULL,
    idempotency_key text NOT NULL
                    CONSTRAINT usage_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    recorded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    FOREIGN KEY (account_id, item_id) REFERENCES subbilling.subscription_items (account_id, id),
    CONSTRAINT usage_idempotency_key UNIQUE (account_id, subscription_id, idempotency_key)
);
CREATE INDEX usage_item_date_idx ON subbilling.usage (account_id, item_id, usage_date);
COMMENT ON TABLE subbilling.usage IS 'metered usage per subscription item; usage_date is the account''s local date of at; unique per (account, subscription, idempotency_key)';

CREATE FUNCTION subbilling.record_usage(subscription_id bigint, plan_code text, quantity numeric,
                                        at timestamptz, idempotency_key text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       subbilling.subscriptions;
    p       subbilling.plans;
    prior   subbilling.usage;
    tz      text;
    d       date;
    iid     bigint;
    uid     bigint;
BEGIN
    PERFORM check_quantity(record_usage.quantity);
    IF record_usage.at IS NULL OR NOT isfinite(record_usage.at) THEN
        RAISE EXCEPTION 'at must be a finite timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF record_usage.idempotency_key IS NULL OR length(record_usage.idempotency_key) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'idempotency_key must be a text of 1 to 255 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = record_usage.subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(record_usage.subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    p := plan_by_code(record_usage.plan_code);

    -- a repeat: the same key with the same values is the same usage
    SELECT * INTO prior FROM subbilling.usage u
     WHERE u.account_id = s.account_id AND u.subscription_id = s.id
       AND u.idempotency_key = record_usage.idempotency_key;
    IF NOT FOUND THEN
        SELECT a.time_zone INTO tz FROM subbilling.accounts a WHERE a.id = s.account_id;
        d := (record_usage.at AT TIME ZONE tz)::date;
        SELECT i.id INTO iid FROM subbilling.subscription_items i
         WHERE i.account_id = s.account_id AND i.subscription_id = s.id AND i.plan_id = p.id
           AND i.voided_at IS NULL AND i.validity @> d;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'subscription % has no item of plan "%" on %', s.id, p.code, d
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Usage at %s is dated %s in the account''s time zone %s.', record_usage.at, d, tz);
        END IF;
        INSERT INTO subbilling.usage AS u
               (account_id, subscription_id, item_id, plan_id, quantity, at, usage_date, idempotency_key)
        VALUES (s.account_id, s.id, iid, p.id, record_usage.quantity, record_usage.at, d,
                record_usage.idempotency_key)
        ON CONFLICT (account_id, subscription_id, idempotency_key) DO NOTHING
        RETURNING u.id INTO uid;
        IF uid IS NOT NULL THEN
            RETURN uid;
        END IF;
        -- a concurrent call with the same key committed first
        SELECT * INTO prior FROM subbilling.usage u
         WHERE u.account_id = s.account_id AND u.subscription_id = s.id
           AND u.idempotency_key = record_usage.idempotency_key;
    END IF;
    IF prior.plan_id <> p.id OR prior.quantity <> record_usage.quantity OR prior.at <> record_usage.at THEN
        RAISE EXCEPTION 'idempotency key "%" was used with other values', record_usage.idempotency_key
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('Usage %s recorded %s of plan "%s" at %s.', prior.id, prior.quantity,
                                  (SELECT x.code FROM subbilling.plans x WHERE x.id = prior.plan_id), prior.at),
                  HINT = 'A retry sends the same values; new usage takes a new key.';
    END IF;
    RETURN prior.id;
END
$$;
COMMENT ON FUNCTION subbilling.record_usage(bigint, text, numeric, timestamptz, text) IS 'record metered usage of a subscription''s plan item at a time; idempotent on idempotency_key (a repeat returns the same id, the key with other values is an error); returns the usage id';

-- ============================================================================
-- Privileges (SPEC section 6): roles subbilling_operator and subbilling_reader.
--
-- Roles are cluster-wide: they are created here if missing and outlive
-- DROP EXTENSION (and serve every database of the cluster that installs
-- subbilling).  Functions that change data are SECURITY DEFINER with a pinned
-- search_path; none of them is executable by PUBLIC.  See docs/privileges.md.
-- Later parts grant their own objects the same way.
-- ============================================================================

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_operator') THEN
        CREATE ROLE subbilling_operator NOLOGIN;
        COMMENT ON ROLE subbilling_operator IS 'subbilling: runs the lifecycle functions and maintains catalog and accounts';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_reader') THEN
        CREATE ROLE subbilling_reader NOLOGIN;
        COMMENT ON ROLE subbilling_reader IS 'subbilling: reads the reporting views and nothing else';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA subbilling TO subbilling_operator, subbilling_reader;

-- The types (price, billing_period, tier) and their pure functions are for everyone, as
-- with any type extension: PUBLIC may look names up in the schema.  That reads no table
-- and executes nothing that writes: tables grant nothing to PUBLIC and every mutating
-- function is revoked from PUBLIC below.
GRANT USAGE ON SCHEMA subbilling TO PUBLIC;

-- ---------------------------------------------------------------- tables

GRANT SELECT ON subbilling.dunning_policies, subbilling.products, subbilling.plans, subbilling.campaigns,
                subbilling.accounts, subbilling.payment_methods, subbilling.events,
                subbilling.subscription_transitions, subbilling.subscriptions, subbilling.subscription_items,
                subbilling.subscription_pauses, subbilling.subscription_discounts, subbilling.usage,
                subbilling.subscription_item_history
    TO subbilling_operator;
-- catalog and customer master data are maintained with plain SQL
GRANT INSERT, UPDATE ON subbilling.dunning_policies, subbilling.products, subbilling.plans,
                        subbilling.campaigns, subbilling.accounts, subbilling.payment_methods
    TO subbilling_operator;
-- subscriptions, items, pauses, discounts, usage and events change only through functions

GRANT SELECT ON subbilling.subscription_item_history TO subbilling_reader;

-- ---------------------------------------------------------------- functions

-- the lifecycle: operator only
REVOKE ALL ON FUNCTION
    subbilling.subscribe(bigint, text, integer, date, text, integer),
    subbilling.add_addon(bigint, text, integer, date),
    subbilling.remove_addon(bigint, text, date),
    subbilling.change_plan(bigint, text, date, text),
    subbilling.change_quantity(bigint, integer, date),
    subbilling.pause(bigint, date, date),
    subbilling.resume(bigint, date),
    subbilling.cancel(bigint, date, boolean),
    subbilling.record_usage(bigint, text, numeric, timestamptz, text),
    subbilling.migrate_subscriptions(text, text, date),
    subbilling.set_subscription_status(bigint, text, text),
    subbilling.advance_subscriptions(date),
    subbilling.events_after(bigint, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.subscribe(bigint, text, integer, date, text, integer),
    subbilling.add_addon(bigint, text, integer, date),
    subbilling.remove_addon(bigint, text, date),
    subbilling.change_plan(bigint, text, date, text),
    subbilling.change_quantity(bigint, integer, date),
    subbilling.pause(bigint, date, date),
    subbilling.resume(bigint, date),
    subbilling.cancel(bigint, date, boolean),
    subbilling.record_usage(bigint, text, numeric, timestamptz, text),
    subbilling.migrate_subscriptions(text, text, date),
    subbilling.set_subscription_status(bigint, text, text),
    subbilling.advance_subscriptions(date),
    subbilling.events_after(bigint, integer)
    TO subbilling_operator;

-- read-only questions about one subscription: operator and reader
REVOKE ALL ON FUNCTION
    subbilling.subscription_status(bigint, date),
    subbilling.subscription_history(bigint),
    subbilling.subscription_items_on(bigint, date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.subscription_status(bigint, date),
    subbilling.subscription_history(bigint),
    subbilling.subscription_items_on(bigint, date)
    TO subbilling_operator, subbilling_reader;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling.emit_event(bigint, text, bigint, jsonb, bigint),
    subbilling.subscription_for_update(bigint),
    subbilling.plan_by_code(text),
    subbilling.check_plan_fits(subbilling.subscriptions, subbilling.plans, text),
    subbilling.status_on(subbilling.subscriptions, date),
    subbilling.transition(subbilling.subscriptions, text),
    subbilling.check_not_ended(subbilling.subscriptions, date),
    subbilling.base_item_on(subbilling.subscriptions, date),
    subbilling.subscription_period_end(subbilling.subscriptions, date),
    subbilling.replace_item(subbilling.subscriptions, text, bigint, date, bigint, integer, text),
    subbilling.item_json(subbilling.subscription_items),
    subbilling.refresh_status(bigint, bigint),
    subbilling.plans_validate(),
    subbilling.plans_guard_in_use(),
    subbilling.campaigns_validate(),
    subbilling.accounts_validate(),
    subbilling.subscription_items_guard(),
    subbilling.subscription_pauses_guard()
    FROM PUBLIC;

-- ============================================================================
-- Invoices (SPEC section 4): settings (number series, country settings,
-- payment references), invoices and their lines, the billing bookkeeping of
-- subscriptions, and the guards that keep issued invoices unchanged.
--
-- invoices and invoice_lines are customer-owned (SPEC 7): account_id leads
-- every key, foreign keys are composite.  invoice_series and
-- country_settings are small global settings tables.  docs/invoicing.md
-- describes every column and rule.
-- ============================================================================

-- ---------------------------------------------------------------- payment references

-- A Luhn (mod 10) reference: the digits of base and a check digit.
CREATE FUNCTION subbilling.luhn_reference(base text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN subbilling.ocr_reference(base, false);
COMMENT ON FUNCTION subbilling.luhn_reference(text) IS 'a payment reference: the digits of base (1 to 24) and a Luhn (mod 10) check digit';

-- Danish FI-kort (+71) payment id: 14 digits (base, zero-padded on the
-- left) and a mod 10 check digit with weights 2, 1, 2, ... from the right,
-- which is the Luhn digit.
CREATE FUNCTION subbilling.fik_reference(base text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF base !~ '^[0-9]{1,14}$' THEN
        RAISE EXCEPTION 'invalid FIK payment id base "%"', base
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A FI-kort (+71) payment id has 14 digits before its check digit.';
    END IF;
    RETURN ocr_reference(lpad(base, 14, '0'), false);
END
$$;
COMMENT ON FUNCTION subbilling.fik_reference(text) IS 'Danish FI-kort type 71 payment id: base zero-padded to 14 digits and a mod 10 (Luhn) check digit, 15 digits';

-- Finnish reference number (viitenumero): 3 to 19 digits of base, then a
-- check digit from weights 7, 3, 1 repeated from the right (4 to 20 digits
-- in all; banks drop leading zeros, so a base should not start with 0).
CREATE FUNCTION subbilling.fi_reference(base text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    b   text := base;
    s   integer := 0;
    n   integer;
BEGIN
    IF b !~ '^[0-9]{3,19}$' THEN
        RAISE EXCEPTION 'invalid Finnish reference base "%"', base
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A Finnish reference has 3 to 19 digits before its check digit.';
    END IF;
    n := length(b);
    FOR i IN 0 .. n - 1 LOOP
        s := s + substr(b, n - i, 1)::integer * (ARRAY[7, 3, 1])[i % 3 + 1];
    END LOOP;
    RETURN b || ((10 - s % 10) % 10)::text;
END
$$;
COMMENT ON FUNCTION subbilling.fi_reference(text) IS 'Finnish reference number (viitenumero): base (3 to 19 digits) and a 7-3-1 check digit';

-- ---------------------------------------------------------------- settings

CREATE TABLE subbilling.country_settings (
    country         text PRIMARY KEY
                    CONSTRAINT country_settings_country_iso3166 CHECK (subbilling.is_country_code(country)),
    reference_kind  text NOT NULL
                    CONSTRAINT country_settings_reference_kind_check
                    CHECK (reference_kind IN ('ocr', 'kid', 'fik', 'fi', 'luhn')),
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.country_settings IS 'per-country invoicing settings: the kind of payment reference (ocr SE, kid NO, fik DK, fi FI, luhn elsewhere); countries without a row get luhn';

INSERT INTO subbilling.country_settings (country, reference_kind, description) VALUES
    ('SE', 'ocr',  'Bankgirot OCR: Luhn check digit and length digit'),
    ('NO', 'kid',  'KID, mod 10'),
    ('DK', 'fik',  'FI-kort +71 payment id, 15 digits'),
    ('FI', 'fi',   'Finnish reference number (viitenumero), 7-3-1'),
    ('IS', 'luhn', 'Luhn reference');

-- The payment reference of an invoice: built from its id (unique, so the
-- reference is too) by a reference kind; a Finnish reference is built from
-- id + 100 (at least 3 digits, no leading zero).
CREATE FUNCTION subbilling.reference_of(kind text, invoice_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE kind
       WHEN 'ocr' THEN subbilling.ocr_reference(invoice_id::text, true)
       WHEN 'kid' THEN subbilling.kid_reference(invoice_id::text, 'mod10')
       WHEN 'fik' THEN subbilling.fik_reference(invoice_id::text)
       WHEN 'fi'  THEN subbilling.fi_reference((invoice_id + 100)::text)
       ELSE subbilling.luhn_reference(invoice_id::text)
       END;
COMMENT ON FUNCTION subbilling.reference_of(text, bigint) IS 'the payment reference of kind ocr, kid, fik, fi or luhn (anything else) for an invoice id';

-- ... by the kind that the country's settings name.
CREATE FUNCTION subbilling.payment_reference(country text, invoice_id bigint) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT reference_of(coalesce((SELECT c.reference_kind FROM subbilling.country_settings c
                                   WHERE c.country = payment_reference.country), 'luhn'), invoice_id)
$$;
COMMENT ON FUNCTION subbilling.payment_reference(text, bigint) IS 'the payment reference for an invoice id in a country: OCR (SE), KID (NO), FIK (DK), Finnish (FI), else Luhn; see country_settings';

-- Gapless numbering: one counter row per series, locked (UPDATE) when a
-- batch of invoices is numbered, held until commit.  No sequences: a
-- rolled-back batch returns its numbers.  The counter lives in its own
-- table: the series row that every invoice references stays unchanged, so
-- the foreign-key check of each new invoice finds one row version, not one
-- per batch numbered so far in the transaction.
CREATE TABLE subbilling.invoice_series (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    prefix      text NOT NULL DEFAULT '',
    digits      integer NOT NULL DEFAULT 6
                CONSTRAINT invoice_series_digits_range CHECK (digits BETWEEN 1 AND 18),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.invoice_series IS 'invoice number series: invoices and credit notes issued in a calendar year are numbered in series code YYYY (created on first use: prefix ''YYYY-'', 6 digits); the counter is in invoice_counters';

CREATE TABLE subbilling.invoice_counters (
    series_id   bigint PRIMARY KEY REFERENCES subbilling.invoice_series (id),
    next_number bigint NOT NULL DEFAULT 1
                CONSTRAINT invoice_counters_next_number_positive CHECK (next_number > 0)
);
COMMENT ON TABLE subbilling.invoice_counters IS 'the gapless counter of each invoice series: next_number is the number the next invoice of the series gets; moved only by numbering, under its row lock';

-- Every series gets its counter when it is created.
CREATE FUNCTION subbilling.invoice_series_counter() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO subbilling.invoice_counters (series_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_series_counter() IS 'trigger: a new invoice series gets its counter row (next_number 1)';
CREATE TRIGGER invoice_series_counter
    AFTER INSERT ON subbilling.invoice_series
    FOR EACH ROW EXECUTE FUNCTION subbilling.invoice_series_counter();

-- The series of an issue date's year, created on first use.
CREATE FUNCTION subbilling.series_for(issue_date date) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c   text := to_char(issue_date, 'FMYYYY');
    sid bigint;
BEGIN
    SELECT s.id INTO sid FROM subbilling.invoice_series s WHERE s.code = c;
    IF NOT FOUND THEN
        INSERT INTO subbilling.invoice_series AS s (code, prefix, description)
        VALUES (c, c || '-', format('invoices and credit notes issued in %s', c))
        ON CONFLICT (code) DO NOTHING;
        SELECT s.id INTO sid FROM subbilling.invoice_series s WHERE s.code = c;
    END IF;
    RETURN sid;
END
$$;
COMMENT ON FUNCTION subbilling.series_for(date) IS 'internal: the id of the number series of an issue date''s year (code YYYY), created if missing';

-- The text form of number n in a series.
CREATE FUNCTION subbilling.format_invoice_number(prefix text, digits integer, n bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN prefix || lpad(n::text, greatest(digits, length(n::text)), '0');
COMMENT ON FUNCTION subbilling.format_invoice_number(text, integer, bigint) IS 'internal: prefix followed by n zero-padded to digits';

-- ---------------------------------------------------------------- invoices

CREATE TABLE subbilling.invoices (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    subscription_id     bigint,
    kind                text NOT NULL DEFAULT 'invoice'
                        CONSTRAINT invoices_kind_check CHECK (kind IN ('invoice', 'credit_note')),
    status              text NOT NULL DEFAULT 'draft'
                        CONSTRAINT invoices_status_check
                        CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    series_id           bigint REFERENCES subbilling.invoice_series (id),
    number_seq          bigint,
    number              text,
    currency            text NOT NULL,
    net                 subbilling.price NOT NULL,
    tax                 subbilling.price NOT NULL,
    total               subbilling.price NOT NULL,
    issue_date          date,
    due_date            date,
    reference           text,
    credits_invoice_id  bigint,
    reason              text,
    as_of               timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finalized_at        timestamptz,
    paid_at             timestamptz,
    voided_at           timestamptz,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    FOREIGN KEY (account_id, credits_invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT invoices_number_unique UNIQUE (account_id, series_id, number),
    CONSTRAINT invoices_total_is_net_plus_tax CHECK (total = net + tax),
    CONSTRAINT invoices_currency_matches CHECK (subbilling.currency(total) = currency AND subbilling.currency(net) = currency),
    CONSTRAINT invoices_issued_numbered
        CHECK (status = 'draft' OR (series_id IS NOT NULL AND number_seq IS NOT NULL AND number IS NOT NULL
                                    AND issue_date IS NOT NULL AND due_date IS NOT NULL
                                    AND reference IS NOT NULL AND finalized_at IS NOT NULL)),
    CONSTRAINT invoices_draft_unnumbered CHECK (status <> 'draft' OR (number IS NULL AND number_seq IS NULL)),
    CONSTRAINT invoices_credit_note_reference CHECK (credits_invoice_id IS NULL OR kind = 'credit_note'),
    CONSTRAINT invoices_paid_at CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CONSTRAINT invoices_voided_at CHECK ((status = 'void') = (voided_at IS NOT NULL))
);
CREATE INDEX invoices_id_idx ON subbilling.invoices (id);
CREATE INDEX invoices_subscription_idx ON subbilling.invoices (account_id, subscription_id);
CREATE INDEX invoices_reference_idx ON subbilling.invoices (reference);
CREATE INDEX invoices_credits_idx ON subbilling.invoices (account_id, credits_invoice_id) WHERE credits_invoice_id IS NOT NULL;
CREATE INDEX invoices_open_due_idx ON subbilling.invoices (due_date) WHERE status = 'open';
COMMENT ON TABLE subbilling.invoices IS 'invoices and credit notes: draft -> open (numbered, gapless per series) -> paid | void | uncollectible; an issued invoice is never deleted or altered';

CREATE TABLE subbilling.invoice_lines (
    account_id      bigint NOT NULL,
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    invoice_id      bigint NOT NULL,
    subscription_id bigint,
    plan_id         bigint REFERENCES subbilling.plans (id),
    kind            text NOT NULL
                    CONSTRAINT invoice_lines_kind_check
                    CHECK (kind IN ('recurring', 'proration', 'usage', 'addon', 'discount', 'setup', 'fee', 'credit')),
    charge_type     text
                    CONSTRAINT invoice_lines_charge_type_check
                    CHECK (charge_type IN ('recurring', 'usage', 'setup', 'discount')),
    key_start       date,
    description     text NOT NULL,
    period          daterange,
    quantity        numeric,
    unit_price      subbilling.price,
    net             subbilling.price NOT NULL,
    tax_rate        numeric NOT NULL
                    CONSTRAINT invoice_lines_tax_rate_range CHECK (tax_rate >= 0 AND tax_rate < 100),
    tax             subbilling.price NOT NULL,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT invoice_lines_charge_key
        CHECK ((charge_type IS NULL) = (key_start IS NULL)
               AND (charge_type IS NULL OR (subscription_id IS NOT NULL AND plan_id IS NOT NULL))),
    CONSTRAINT invoice_lines_currency_matches CHECK (subbilling.currency(tax) = subbilling.currency(net))
);
CREATE INDEX invoice_lines_invoice_idx ON subbilling.invoice_lines (account_id, invoice_id);
CREATE INDEX invoice_lines_charge_key_idx ON subbilling.invoice_lines (account_id, subscription_id, key_start)
    WHERE charge_type IS NOT NULL;
COMMENT ON TABLE subbilling.invoice_lines IS 'invoice lines: kind, period, quantity, unit price, net, VAT rate and VAT; engine lines carry the charge key (subscription, plan, charge_type, key_start) they settle';

-- ---------------------------------------------------------------- billing bookkeeping

ALTER TABLE subbilling.subscriptions
    ADD COLUMN next_bill_on date DEFAULT '-infinity',
    ADD COLUMN bill_from date,
    ADD COLUMN billed_as_of date,
    ADD COLUMN billed_at timestamptz;
CREATE INDEX subscriptions_next_bill_on_idx ON subbilling.subscriptions (next_bill_on, account_id, id)
    WHERE next_bill_on IS NOT NULL;
COMMENT ON COLUMN subbilling.subscriptions.next_bill_on IS 'billing: the next (account-local) date on which a charge of the subscription falls due; -infinity = changed since it was last billed; NULL = nothing more to bill';
COMMENT ON COLUMN subbilling.subscriptions.bill_from IS 'billing: charges whose period starts before this date are settled; NULL = recompute the whole history';
COMMENT ON COLUMN subbilling.subscriptions.billed_as_of IS 'billing: the latest (account-local) date the subscription was billed as of';
COMMENT ON COLUMN subbilling.subscriptions.billed_at IS 'billing: when the subscription was last billed';

-- A change to a subscription makes it due at once and recomputed from its
-- whole history.  Every lifecycle function updates the subscription row
-- (updated_at, status, dates) and none touches the billing columns, while
-- the billing engine always changes them (billed_at to the statement's
-- clock, or next_bill_on): an update that leaves all three alone is a
-- change.  (Within one transaction updated_at does not move, so it cannot
-- tell by itself.)
CREATE FUNCTION subbilling.subscriptions_billing_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    NEW.next_bill_on := '-infinity';
    NEW.bill_from := NULL;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.subscriptions_billing_changed() IS 'trigger: a changed subscription is due for billing at once, recomputed from its whole history';

CREATE TRIGGER subscriptions_billing_changed
    BEFORE UPDATE ON subbilling.subscriptions
    FOR EACH ROW
    WHEN (OLD.next_bill_on IS NOT DISTINCT FROM NEW.next_bill_on
          AND OLD.bill_from IS NOT DISTINCT FROM NEW.bill_from
          AND OLD.billed_at IS NOT DISTINCT FROM NEW.billed_at)
    EXECUTE FUNCTION subbilling.subscriptions_billing_changed();

-- ---------------------------------------------------------------- guards

-- Issued invoices are never deleted, and only their status (open -> paid |
-- void | uncollectible, uncollectible -> paid) and its timestamps change;
-- columns added by later issues (payment bookkeeping) stay writable.
CREATE FUNCTION subbilling.invoices_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted', coalesce(OLD.number, OLD.id::text)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('Invoice %s has status %s.', OLD.id, OLD.status),
                      HINT = 'Issue a credit note with credit_invoice(), or void_invoice() an open invoice.';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'draft' THEN
        RETURN NEW;
    END IF;
    IF NEW.account_id <> OLD.account_id OR NEW.id <> OLD.id
       OR NEW.subscription_id IS DISTINCT FROM OLD.subscription_id OR NEW.kind <> OLD.kind
       OR NEW.series_id IS DISTINCT FROM OLD.series_id OR NEW.number_seq IS DISTINCT FROM OLD.number_seq
       OR NEW.number IS DISTINCT FROM OLD.number OR NEW.currency <> OLD.currency
       OR NEW.net <> OLD.net OR NEW.tax <> OLD.tax OR NEW.total <> OLD.total
       OR NEW.issue_date IS DISTINCT FROM OLD.issue_date OR NEW.due_date IS DISTINCT FROM OLD.due_date
       OR NEW.reference IS DISTINCT FROM OLD.reference
       OR NEW.credits_invoice_id IS DISTINCT FROM OLD.credits_invoice_id
       OR NEW.reason IS DISTINCT FROM OLD.reason OR NEW.as_of IS DISTINCT FROM OLD.as_of
       OR NEW.created_at <> OLD.created_at OR NEW.finalized_at IS DISTINCT FROM OLD.finalized_at THEN
        RAISE EXCEPTION 'invoice % is issued and cannot be altered', OLD.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'An issued invoice keeps its number, dates, amounts and reference for ever.',
                  HINT = 'Issue a credit note with credit_invoice().';
    END IF;
    IF NEW.status <> OLD.status
       AND NOT (OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
       AND NOT (OLD.status = 'uncollectible' AND NEW.status = 'paid') THEN
        RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.number, OLD.status, NEW.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Issued invoices go open -> paid, void or uncollectible, and uncollectible -> paid.';
    END IF;
    IF (OLD.paid_at IS NOT NULL AND NEW.paid_at IS DISTINCT FROM OLD.paid_at)
       OR (OLD.voided_at IS NOT NULL AND NEW.voided_at IS DISTINCT FROM OLD.voided_at) THEN
        RAISE EXCEPTION 'invoice % keeps its paid_at and voided_at once set', OLD.number
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.invoices_guard() IS 'trigger: issued invoices are never deleted, and only their status moves forward (open -> paid | void | uncollectible)';

CREATE TRIGGER invoices_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoices
    FOR EACH ROW EXECUTE FUNCTION subbilling.invoices_guard();

-- Lines of an issued invoice are never changed or deleted.
CREATE FUNCTION subbilling.invoice_lines_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    st  text;
    num text;
BEGIN
    SELECT i.status, i.number INTO st, num FROM subbilling.invoices i
     WHERE i.account_id = OLD.account_id AND i.id = OLD.invoice_id;
    IF st IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION 'the lines of invoice % are issued and cannot be %', num,
                        CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'altered' END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Line %s of invoice %s (status %s).', OLD.id, OLD.invoice_id, st),
                  HINT = 'Issue a credit note with credit_invoice().';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_lines_guard() IS 'trigger: the lines of an issued invoice are never altered or deleted';

CREATE TRIGGER invoice_lines_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoice_lines
    FOR EACH ROW EXECUTE FUNCTION subbilling.invoice_lines_guard();

-- Totals equal the sum of the lines, checked once per statement for every
-- issued invoice that the statement gave lines (set-based: one query per
-- batch, not one per line).
CREATE FUNCTION subbilling.invoice_lines_check_totals() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT i.id, i.number, i.net, i.tax, t.net AS lines_net, t.tax AS lines_tax INTO bad
      FROM (SELECT DISTINCT n.account_id, n.invoice_id FROM new_lines n) k
      -- one primary-key lookup per invoice (LIMIT 1 keeps the planner from
      -- hashing the whole table when its statistics predate a large run)
      CROSS JOIN LATERAL (SELECT i.* FROM subbilling.invoices i
                           WHERE i.account_id = k.account_id AND i.id = k.invoice_id LIMIT 1) i
      CROSS JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.tax) AS tax
                            FROM subbilling.invoice_lines l
                           WHERE l.account_id = i.account_id AND l.invoice_id = i.id) t
     WHERE i.status <> 'draft' AND (t.net <> i.net OR t.tax <> i.tax)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the totals of invoice % are not the sum of its lines', coalesce(bad.number, bad.id::text)
            USING ERRCODE = 'integrity_constraint_violation',
                  DETAIL = format('Invoice net %s, VAT %s; lines net %s, VAT %s.', bad.net, bad.tax, bad.lines_net, bad.lines_tax),
                  HINT = 'Issued invoices get no new lines; a credit note corrects them.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_lines_check_totals() IS 'trigger: after each insert of lines, every issued invoice that got lines has net and VAT equal to the sums of its lines';

CREATE TRIGGER invoice_lines_check_totals
    AFTER INSERT ON subbilling.invoice_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling.invoice_lines_check_totals();

-- ============================================================================
-- The billing engine (SPEC section 4): expected minus invoiced.
--
-- billing_charges() derives, for a set of subscriptions, every charge key
-- (subscription, plan, charge_type, key_start) that they should have had up
-- to a horizon, from the item history, trial, pauses, cancellation,
-- discounts and usage; subtracts what engine lines of non-void invoices
-- already invoiced per key; and says which differences are due.  It is one
-- set-based query: the billing batch, preview_invoice and the tests all use
-- it.  docs/invoicing.md explains every rule with worked examples.
--
-- Amounts: the expected amount of a key is computed once and rounded once:
--     recurring: sum_i(full_price(quantity_i) * days_i) / days_of_period
-- where full_price is the plan's price for a whole period (price * quantity,
-- the flat price, tiered_price or package_price), days_i are the charged
-- days of segment i (item validity inside the period, from the end of the
-- trial or else the start, minus paused days); price * integer is exact, and
-- the one division rounds half away from zero.  Periods are counted from the
-- billing anchor; an anchor after the paid start gives a prorated stub.
-- ============================================================================

CREATE FUNCTION subbilling.billing_charges(account_ids bigint[], subscription_ids bigint[], as_of_dates date[])
    RETURNS TABLE (account_id bigint, subscription_id bigint, plan_id bigint, charge_type text, key_start date,
                   period daterange, due_date date, pending boolean, emit boolean,
                   expected subbilling.price, invoiced subbilling.price,
                   kind text, description text, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, currency text)
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
WITH b AS (
    SELECT x.account_id, x.subscription_id, x.as_of
      FROM unnest(account_ids, subscription_ids, as_of_dates) AS x(account_id, subscription_id, as_of)
),
s AS MATERIALIZED (
    SELECT s.account_id, s.id AS subscription_id, s.currency, s.billing_anchor AS anchor,
           coalesce(s.trial_end, s.start_date) AS paid_from,
           s.cancel_at, s.credit_unused, b.as_of, s.bill_from AS from_d,
           greatest(b.as_of, s.billed_as_of) AS horizon, a.tax_exempt,
           price_minor(0, s.currency) AS zero,
           -- the lowest key floor (usage plans look one period back)
           CASE WHEN s.bill_from IS NULL THEN '-infinity'::date
                ELSE least(s.bill_from,
                           (SELECT min(period_start(s.billing_anchor, p.billing_period,
                                                    period_index(s.billing_anchor, p.billing_period, s.bill_from) - 1))
                              FROM subbilling.subscription_items i
                              JOIN subbilling.plans p ON p.id = i.plan_id
                             WHERE i.account_id = s.account_id AND i.subscription_id = s.id
                               AND p.pricing_model = 'usage'))
           END AS kfloor
      FROM b
      JOIN subbilling.subscriptions s ON s.account_id = b.account_id AND s.id = b.subscription_id
      JOIN subbilling.accounts a ON a.id = s.account_id
),
-- items with their plan; v_hi is where charging ends: a cancellation
-- without credit_unused keeps the period holding it charged in full
it AS MATERIALIZED (
    SELECT s.account_id, s.subscription_id, s.anchor, s.as_of, s.from_d, s.horizon, s.cancel_at, s.zero,
           s.tax_exempt, s.currency, i.id AS item_id, i.kind AS item_kind, i.quantity AS qty,
           greatest(lower(i.validity), s.paid_from) AS lo,
           CASE WHEN NOT s.credit_unused AND p.billing_timing = 'in_advance' AND p.pricing_model <> 'usage'
                     AND upper(i.validity) = s.cancel_at
                THEN greatest(upper(period_of(s.anchor, p.billing_period, s.cancel_at - 1)), s.cancel_at)
                ELSE upper(i.validity) END AS v_hi,
           p.id AS plan_id, p.code AS plan_code, p.name AS plan_name, p.billing_period AS bp,
           p.pricing_model AS model, p.price, p.tiers, p.package_size, p.billing_timing AS timing,
           p.setup_fee, p.included_units,
           CASE WHEN s.from_d IS NULL THEN NULL
                WHEN p.pricing_model = 'usage'
                THEN period_start(s.anchor, p.billing_period, period_index(s.anchor, p.billing_period, s.from_d) - 1)
                ELSE s.from_d END AS kfrom
      FROM s
      JOIN subbilling.subscription_items i
        ON i.account_id = s.account_id AND i.subscription_id = s.subscription_id AND i.voided_at IS NULL
      JOIN subbilling.plans p ON p.id = i.plan_id
),
-- the periods of each item from its key floor up to one period past the horizon
seg AS MATERIALIZED (
    SELECT it.*, per.ps, per.pe,
           greatest(it.lo, per.ps) AS seg_lo, least(it.v_hi, per.pe) AS seg_hi
      FROM it
      CROSS JOIN LATERAL (
          SELECT period_index(it.anchor, it.bp, greatest(it.lo, it.kfrom)) AS i0) f
      CROSS JOIN LATERAL generate_series(
          f.i0,
          least(period_index(it.anchor, it.bp, it.v_hi - 1),
                greatest(f.i0, period_index(it.anchor, it.bp, it.horizon) + 1))) AS k(idx)
      CROSS JOIN LATERAL (
          SELECT period_start(it.anchor, it.bp, k.idx) AS ps, period_start(it.anchor, it.bp, k.idx + 1) AS pe) per
     WHERE (it.v_hi IS NULL OR it.v_hi > it.lo)
       AND per.ps >= coalesce(it.kfrom, '-infinity'::date)
       AND least(it.v_hi, per.pe) > greatest(it.lo, per.ps)
),
-- recurring segments with their paused days and the pause boundaries inside
segp AS (
    SELECT seg.*, seg.seg_hi - seg.seg_lo AS days, coalesce(z.paused, 0) AS paused, z.bound
      FROM seg
      LEFT JOIN LATERAL (
          SELECT sum(least(seg.seg_hi, coalesce(upper(pz.during), seg.seg_hi))
                     - greatest(seg.seg_lo, lower(pz.during)))::integer AS paused,
                 max(greatest(CASE WHEN lower(pz.during) > seg.seg_lo THEN lower(pz.during) END,
                              CASE WHEN upper(pz.during) < seg.seg_hi THEN upper(pz.during) END)) AS bound
            FROM subbilling.subscription_pauses pz
           WHERE pz.account_id = seg.account_id AND pz.subscription_id = seg.subscription_id
             AND pz.during && daterange(seg.seg_lo, seg.seg_hi)) z ON true
     WHERE seg.model <> 'usage'
),
rec AS MATERIALIZED (
    SELECT g.account_id, g.subscription_id, g.plan_id, 'recurring'::text AS charge_type, g.ps AS key_start,
           daterange(g.ps, g.pe) AS period,
           CASE WHEN g.timing = 'in_advance' THEN min(g.seg_lo) ELSE least(g.pe, min(g.cancel_at)) END AS due_on,
           CASE WHEN g.timing = 'in_advance'
                THEN greatest(min(g.seg_lo), max(CASE WHEN g.seg_lo > g.ps THEN g.seg_lo END),
                              max(CASE WHEN g.seg_hi < g.pe THEN g.seg_hi END), max(g.bound))
                ELSE least(g.pe, min(g.cancel_at)) END AS corr_due,
           sum(CASE g.model
                   WHEN 'flat' THEN g.price
                   WHEN 'per_unit' THEN g.price * g.qty
                   WHEN 'package' THEN package_price(g.qty, g.package_size, g.price)
                   ELSE tiered_price(g.qty, g.tiers, g.model) END
               * (g.days - g.paused)) / (g.pe - g.ps) AS expected,
           count(*) = 1 AND min(g.seg_lo) = g.ps AND max(g.seg_hi) = g.pe AS whole,
           sum(g.paused) AS paused, max(g.qty) AS qty,
           -- the charged quantity-days of a partial period, for its description
           string_agg(CASE WHEN g.model = 'flat' THEN '' ELSE g.qty || ' × ' END || (g.days - g.paused) || ' d', ' + '
                      ORDER BY g.seg_lo) FILTER (WHERE g.seg_lo > g.ps OR g.seg_hi < g.pe) AS segs,
           g.item_kind, g.model, g.price, g.plan_name, g.plan_code, g.anchor, g.bp,
           g.as_of, g.zero, g.tax_exempt, g.currency
      FROM segp g
     GROUP BY g.account_id, g.subscription_id, g.plan_id, g.ps, g.pe, g.timing, g.item_kind, g.model,
              g.price, g.plan_name, g.plan_code, g.anchor, g.bp, g.as_of, g.zero, g.tax_exempt, g.currency
),
-- discounts: percent_off of every qualifying recurring key, amount_off of
-- the base plan's keys, for `periods` periods of the key's plan from
-- starts_on; never more than the key's charge.  The discounts of the
-- batch's subscriptions are looked up through the subscriptions (an index
-- probe each), never by scanning all discounts.
dsc AS MATERIALIZED (
    SELECT d.account_id, d.subscription_id, d.id, d.starts_on, d.periods, d.percent_off, d.amount_off,
           c.name, c.plan_codes
      FROM s
      JOIN subbilling.subscription_discounts d ON d.account_id = s.account_id AND d.subscription_id = s.subscription_id
      JOIN subbilling.campaigns c ON c.id = d.campaign_id
),
disc AS (
    SELECT r.account_id, r.subscription_id, r.plan_id, 'discount'::text AS charge_type, r.key_start, r.period,
           r.due_on, r.corr_due,
           -least(r.expected,
                  sum(CASE WHEN d.percent_off IS NOT NULL THEN r.expected * (d.percent_off / 100)
                           ELSE d.amount_off END)) AS expected,
           string_agg(d.name || CASE WHEN d.percent_off IS NOT NULL THEN ' (' || trim_scale(d.percent_off) || ' % off)'
                                     ELSE ' (' || d.amount_off::text || ' off)' END, ', ' ORDER BY d.id) AS what,
           r.plan_name, r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
      FROM rec r
      JOIN dsc d ON d.account_id = r.account_id AND d.subscription_id = r.subscription_id
     WHERE d.starts_on <= r.key_start
       AND (d.periods IS NULL
            OR period_index(r.anchor, r.bp, r.key_start) - period_index(r.anchor, r.bp, d.starts_on) < d.periods)
       AND (d.plan_codes IS NULL OR r.plan_code = ANY (d.plan_codes))
       AND (d.percent_off IS NOT NULL OR r.item_kind = 'base')
     GROUP BY r.account_id, r.subscription_id, r.plan_id, r.key_start, r.period, r.due_on, r.corr_due,
              r.expected, r.plan_name, r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
),
-- usage in arrears: sum per plan and period, less the included units
usg AS (
    SELECT g.account_id, g.subscription_id, g.plan_id, 'usage'::text AS charge_type, g.ps AS key_start,
           daterange(g.ps, g.pe) AS period, least(g.pe, min(g.cancel_at)) AS due_on,
           greatest(coalesce(sum(u.total), 0) - g.included_units, 0) AS billable,
           g.price, g.tiers, g.plan_name, g.anchor, g.as_of, g.zero, g.tax_exempt, g.currency
      FROM seg g
      LEFT JOIN LATERAL (
          SELECT sum(x.quantity) AS total FROM subbilling.usage x
           WHERE x.account_id = g.account_id AND x.item_id = g.item_id
             AND x.usage_date >= g.seg_lo AND x.usage_date < g.seg_hi) u ON true
     WHERE g.model = 'usage'
     GROUP BY g.account_id, g.subscription_id, g.plan_id, g.ps, g.pe, g.included_units, g.price, g.tiers, g.plan_name,
              g.anchor, g.as_of, g.zero, g.tax_exempt, g.currency
),
-- setup fees: once per subscription and plan, on the first day charged
stp AS (
    SELECT it.account_id, it.subscription_id, it.plan_id, 'setup'::text AS charge_type, min(it.lo) AS key_start,
           it.setup_fee, it.plan_name, it.from_d, it.anchor, it.as_of, it.zero, it.tax_exempt, it.currency
      FROM it
     WHERE it.setup_fee IS NOT NULL AND (it.v_hi IS NULL OR it.v_hi > it.lo)
     GROUP BY it.account_id, it.subscription_id, it.plan_id, it.setup_fee, it.plan_name, it.from_d,
              it.anchor, it.as_of, it.zero, it.tax_exempt, it.currency
    HAVING min(it.lo) >= coalesce(it.from_d, '-infinity'::date)
),
ex AS (
    SELECT r.account_id, r.subscription_id, r.plan_id, r.charge_type, r.key_start, r.period, r.due_on, r.corr_due,
           r.expected,
           CASE WHEN NOT r.whole THEN 'proration' WHEN r.item_kind = 'addon' THEN 'addon' ELSE 'recurring' END AS first_kind,
           r.plan_name AS dname, CASE WHEN NOT r.whole THEN r.segs END AS dsegs,
           r.paused AS dpaused, NULL::numeric AS dunits,
           CASE WHEN r.model = 'flat' THEN 1 ELSE r.qty END AS first_qty,
           CASE WHEN r.whole AND r.paused = 0 AND r.model IN ('flat', 'per_unit') THEN r.price END AS first_unit,
           r.anchor, r.as_of, r.zero, r.tax_exempt, r.currency
      FROM rec r
    UNION ALL
    SELECT d.account_id, d.subscription_id, d.plan_id, d.charge_type, d.key_start, d.period, d.due_on, d.corr_due,
           d.expected, 'discount', d.what || ': ' || d.plan_name, NULL, 0, NULL,
           1, d.expected, d.anchor, d.as_of, d.zero, d.tax_exempt, d.currency
      FROM disc d
    UNION ALL
    SELECT u.account_id, u.subscription_id, u.plan_id, u.charge_type, u.key_start, u.period, u.due_on, u.due_on,
           CASE WHEN u.tiers IS NOT NULL THEN tiered_price(u.billable, u.tiers, 'graduated')
                ELSE u.price * u.billable END,
           'usage', u.plan_name, NULL, 0, u.billable,
           u.billable, CASE WHEN u.tiers IS NULL THEN u.price END, u.anchor, u.as_of, u.zero, u.tax_exempt, u.currency
      FROM usg u
    UNION ALL
    SELECT t.account_id, t.subscription_id, t.plan_id, t.charge_type, t.key_start,
           daterange(t.key_start, t.key_start, '[]'), t.key_start, t.key_start,
           t.setup_fee, 'setup', t.plan_name, NULL, 0, NULL, 1, t.setup_fee,
           t.anchor, t.as_of, t.zero, t.tax_exempt, t.currency
      FROM stp t
),
-- what engine lines of non-void invoices already invoiced, per key
inv AS (
    SELECT l.account_id, l.subscription_id, l.plan_id, l.charge_type, l.key_start, sum(l.net) AS invoiced,
           s.anchor, s.as_of, s.zero, s.tax_exempt, s.currency
      FROM s
      JOIN subbilling.invoice_lines l
        ON l.account_id = s.account_id AND l.subscription_id = s.subscription_id AND l.charge_type IS NOT NULL
       AND l.key_start >= s.kfloor
      JOIN subbilling.invoices v ON v.account_id = l.account_id AND v.id = l.invoice_id
      JOIN subbilling.plans p ON p.id = l.plan_id
     WHERE v.status <> 'void'
       AND l.key_start >= CASE WHEN s.from_d IS NULL THEN '-infinity'::date
                               WHEN l.charge_type = 'usage'
                               THEN period_start(s.anchor, p.billing_period, period_index(s.anchor, p.billing_period, s.from_d) - 1)
                               ELSE s.from_d END
     GROUP BY l.account_id, l.subscription_id, l.plan_id, l.charge_type, l.key_start,
              s.anchor, s.as_of, s.zero, s.tax_exempt, s.currency
),
j AS (
    SELECT coalesce(e.account_id, v.account_id) AS account_id,
           coalesce(e.subscription_id, v.subscription_id) AS subscription_id,
           coalesce(e.plan_id, v.plan_id) AS plan_id,
           coalesce(e.charge_type, v.charge_type) AS charge_type,
           coalesce(e.key_start, v.key_start) AS key_start,
           e.period, e.expected, v.invoiced,
           CASE WHEN v.invoiced IS NULL THEN e.due_on ELSE coalesce(e.corr_due, v.key_start) END AS due_date,
           e.first_kind, e.dname, e.dsegs, e.dpaused, e.dunits, e.first_qty, e.first_unit,
           coalesce(e.anchor, v.anchor) AS anchor, coalesce(e.as_of, v.as_of) AS as_of,
           coalesce(e.zero, v.zero) AS zero, coalesce(e.tax_exempt, v.tax_exempt) AS tax_exempt,
           coalesce(e.currency, v.currency) AS currency
      FROM ex e
      FULL JOIN inv v
        ON v.account_id = e.account_id AND v.subscription_id = e.subscription_id AND v.plan_id = e.plan_id
       AND v.charge_type = e.charge_type AND v.key_start = e.key_start
),
d0 AS (
    SELECT j.account_id, j.subscription_id, j.plan_id, j.charge_type, j.key_start,
           coalesce(j.period, CASE WHEN j.charge_type = 'setup' THEN daterange(j.key_start, j.key_start, '[]')
                                   ELSE period_of(j.anchor, p.billing_period, j.key_start) END) AS period,
           j.expected, j.invoiced, j.due_date, j.first_kind, j.dname, j.dsegs, j.dpaused, j.dunits,
           j.first_qty, j.first_unit, j.zero, j.currency,
           coalesce(j.expected, j.zero) - coalesce(j.invoiced, j.zero) AS diff,
           j.due_date > j.as_of AS pending,
           CASE WHEN j.tax_exempt THEN 0 ELSE pr.tax_rate END AS rate,
           p.name AS plan_name
      FROM j
      JOIN subbilling.plans p ON p.id = j.plan_id
      JOIN subbilling.products pr ON pr.id = p.product_id
),
d AS (
    SELECT d0.*, NOT d0.pending AND d0.diff <> d0.zero AS emit FROM d0
)
SELECT d.account_id, d.subscription_id, d.plan_id, d.charge_type, d.key_start, d.period,
       d.due_date, d.pending, d.emit,
       coalesce(d.expected, d.zero), d.invoiced,
       CASE WHEN d.invoiced IS NULL THEN d.first_kind
            WHEN d.charge_type = 'discount' THEN 'discount'
            WHEN d.diff > d.zero THEN 'proration'
            ELSE 'credit' END,
       -- descriptions only for the lines that are made
       CASE WHEN NOT d.emit THEN NULL
            WHEN d.invoiced IS NULL THEN
                CASE d.charge_type
                WHEN 'setup' THEN d.dname || ' setup fee'
                ELSE d.dname || ' ' || lower(d.period) || ' – ' || (upper(d.period) - 1)
                     || CASE WHEN d.dsegs IS NOT NULL
                             THEN ', prorated ' || d.dsegs || ' of ' || (upper(d.period) - lower(d.period)) ELSE '' END
                     || CASE WHEN d.dpaused > 0 THEN ', ' || d.dpaused || ' days paused' ELSE '' END
                     || CASE WHEN d.dunits IS NOT NULL THEN ', ' || trim_scale(d.dunits) || ' units' ELSE '' END
                END
            ELSE CASE d.charge_type WHEN 'discount' THEN 'Discount adjustment'
                                    WHEN 'setup' THEN 'Setup fee adjustment'
                                    WHEN 'usage' THEN 'Usage adjustment'
                                    ELSE CASE WHEN d.diff > d.zero THEN 'Additional charge' ELSE 'Credit' END END
                 || ' for ' || d.plan_name || ' ' || d.key_start
                 || CASE WHEN d.charge_type = 'setup' THEN '' ELSE ' – ' || (upper(d.period) - 1) END
                 || ': ' || coalesce(d.expected, d.zero)::text || ' instead of ' || d.invoiced::text
       END,
       CASE WHEN d.invoiced IS NULL THEN d.first_qty ELSE 1 END,
       CASE WHEN d.invoiced IS NULL THEN d.first_unit ELSE d.diff END,
       d.diff, d.rate, tax(d.diff, d.rate), d.currency
  FROM d
$$;
COMMENT ON FUNCTION subbilling.billing_charges(bigint[], bigint[], date[]) IS 'internal: every charge key of the subscriptions up to their horizon, expected and invoiced, the line that settles the difference and whether it is due as of each account-local date';

-- ---------------------------------------------------------------- preview

CREATE FUNCTION subbilling.preview_invoice(subscription_id bigint, as_of date DEFAULT CURRENT_DATE)
    RETURNS TABLE (kind text, description text, period daterange, quantity numeric, unit_price subbilling.price,
                   net subbilling.price, tax_rate numeric, tax subbilling.price, plan_code text,
                   charge_type text, key_start date)
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s   subbilling.subscriptions;
BEGIN
    SELECT * INTO s FROM subbilling.subscriptions x WHERE x.id = preview_invoice.subscription_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription % does not exist', coalesce(preview_invoice.subscription_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM check_date('as_of', preview_invoice.as_of);
    RETURN QUERY
        SELECT c.kind, c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax,
               p.code, c.charge_type, c.key_start
          FROM billing_charges(ARRAY[s.account_id], ARRAY[s.id], ARRAY[preview_invoice.as_of]) c
          JOIN subbilling.plans p ON p.id = c.plan_id
         WHERE c.emit
         ORDER BY c.key_start, c.charge_type = 'discount', c.charge_type, minor_units(c.net) >= 0, p.code;
END
$$;
COMMENT ON FUNCTION subbilling.preview_invoice(bigint, date) IS 'the lines that billing the subscription as of a date would invoice, computed by the billing engine and written nowhere';

-- ============================================================================
-- Billing runs (SPEC section 4): claim due subscriptions, invoice the due
-- differences of billing_charges() set-based, number the batch under one
-- lock of each series row, announce the invoices.
--
--   run_billing(as_of)                 loops bill_batch in the caller's transaction
--   bill_batch(batch_size, as_of)      claims up to batch_size due subscriptions
--                                      (FOR UPDATE SKIP LOCKED) and bills them;
--                                      on error, one by one, recording failures
--   bill_subscriptions(...)            one set-based statement for claimed rows
-- ============================================================================

-- The event outbox watermark (see 320_events.sql, emit_event): before the
-- first event id of a transaction is drawn, take the shared advisory lock
-- that marks the lowest id this transaction may still commit.  Same
-- protocol and setting as emit_event, so the two never lock twice.
CREATE FUNCTION subbilling.outbox_reserve() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    xact    text := pg_current_xact_id()::text;
    bound   bigint;
BEGIN
    IF current_setting('subbilling_internal.outbox_xact', true) IS DISTINCT FROM xact THEN
        SELECT last_value INTO bound FROM subbilling.events_id_seq;
        PERFORM pg_advisory_xact_lock_shared(outbox_lock_key1(bound), outbox_lock_key2(bound));
        PERFORM set_config('subbilling_internal.outbox_xact', xact, true);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.outbox_reserve() IS 'internal: take this transaction''s outbox watermark lock (as emit_event does) before events are inserted in bulk';

-- Whether events are also announced with pg_notify (subbilling.notify).
CREATE FUNCTION subbilling.notify_enabled() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
RETURN lower(coalesce(current_setting('subbilling.notify', true), '')) NOT IN ('off', 'false', 'no', '0');
COMMENT ON FUNCTION subbilling.notify_enabled() IS 'internal: false when subbilling.notify is off (events table only, for a relay)';

-- Bills claimed subscriptions (locked by the caller) as of their
-- account-local dates: one statement computes the charges once, writes the
-- invoices (numbered, with due date and payment reference), their lines,
-- the events invoice.created and invoice.finalized, and each subscription's
-- bookkeeping.  Returns the number of invoices.
CREATE FUNCTION subbilling.bill_subscriptions(account_ids bigint[], subscription_ids bigint[],
                                              as_of_dates date[], as_of timestamptz)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    n       integer;
    notify  boolean := notify_enabled();
    booked_acc  bigint[];
    booked_inv  bigint[];
BEGIN
    -- series rows of the issue years (created on first use, outside the lock)
    PERFORM series_for(y) FROM (SELECT DISTINCT d FROM unnest(as_of_dates) d) q(y);
    PERFORM outbox_reserve();

    WITH ch AS MATERIALIZED (
        SELECT * FROM billing_charges(account_ids, subscription_ids, as_of_dates)
    ),
    b AS (
        SELECT x.account_id, x.subscription_id, x.as_of
          FROM unnest(account_ids, subscription_ids, as_of_dates) AS x(account_id, subscription_id, as_of)
    ),
    st AS (
        SELECT b.account_id, b.subscription_id, b.as_of,
               min(c.due_date) FILTER (WHERE c.pending) AS next_on,
               min(c.key_start) FILTER (WHERE c.pending) AS from_d
          FROM b LEFT JOIN ch c ON c.account_id = b.account_id AND c.subscription_id = b.subscription_id
         GROUP BY b.account_id, b.subscription_id, b.as_of
    ),
    upd AS (
        UPDATE subbilling.subscriptions x
           SET next_bill_on = st.next_on,
               bill_from = coalesce(st.from_d, greatest(st.as_of, x.billed_as_of) + 1),
               billed_as_of = greatest(st.as_of, x.billed_as_of),
               billed_at = clock_timestamp()
          FROM st
         WHERE x.account_id = st.account_id AND x.id = st.subscription_id
        RETURNING x.id
    ),
    heads AS (
        SELECT c.account_id, c.subscription_id, b.as_of AS issue_date, min(c.currency) AS currency,
               sum(c.net) AS net, sum(c.tax) AS tax, count(*) AS nlines
          FROM ch c JOIN b ON b.account_id = c.account_id AND b.subscription_id = c.subscription_id
         WHERE c.emit
         GROUP BY c.account_id, c.subscription_id, b.as_of
    ),
    hs AS (
        SELECT h.*, sr.id AS series_id,
               row_number() OVER (PARTITION BY sr.id ORDER BY h.account_id, h.subscription_id) AS rn,
               nextval('subbilling.invoices_id_seq'::regclass) AS invoice_id
          FROM heads h
          JOIN subbilling.invoice_series sr ON sr.code = to_char(h.issue_date, 'FMYYYY')
    ),
    cnt AS (
        SELECT hs.series_id, count(*) AS n FROM hs GROUP BY hs.series_id
    ),
    -- the gapless counters: one row lock per series for the whole batch
    num AS (
        UPDATE subbilling.invoice_counters ct
           SET next_number = ct.next_number + cnt.n
          FROM cnt
          JOIN subbilling.invoice_series sr ON sr.id = cnt.series_id
         WHERE ct.series_id = cnt.series_id
        RETURNING sr.id, sr.code, ct.next_number - cnt.n AS first, sr.prefix, sr.digits
    ),
    ins AS (
        INSERT INTO subbilling.invoices AS i
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency,
                net, tax, total, issue_date, due_date, reference, as_of, finalized_at)
        SELECT hs.account_id, hs.invoice_id, hs.subscription_id,
               CASE WHEN hs.net + hs.tax < price_minor(0, hs.currency) THEN 'credit_note' ELSE 'invoice' END,
               'open', hs.series_id, num.first + hs.rn - 1,
               format_invoice_number(num.prefix, num.digits, num.first + hs.rn - 1), hs.currency,
               hs.net, hs.tax, hs.net + hs.tax, hs.issue_date, hs.issue_date + a.payment_terms_days,
               reference_of(coalesce(cs.reference_kind, 'luhn'), hs.invoice_id), bill_subscriptions.as_of, now()
          FROM hs
          JOIN num ON num.id = hs.series_id
          JOIN subbilling.accounts a ON a.id = hs.account_id
          LEFT JOIN subbilling.country_settings cs ON cs.country = a.country
        RETURNING i.*
    ),
    lines AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, plan_id, kind, charge_type, key_start, description,
                period, quantity, unit_price, net, tax_rate, tax)
        SELECT c.account_id, hs.invoice_id, c.subscription_id, c.plan_id, c.kind, c.charge_type, c.key_start,
               c.description, c.period, c.quantity, c.unit_price, c.net, c.tax_rate, c.tax
          FROM ch c
          JOIN hs ON hs.account_id = c.account_id AND hs.subscription_id = c.subscription_id
         WHERE c.emit
         ORDER BY c.account_id, c.subscription_id, c.key_start, c.charge_type = 'discount', c.charge_type,
                  minor_units(c.net) >= 0, c.plan_id
        RETURNING 1
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT i.account_id, t.type, i.subscription_id, i.id,
               CASE t.type
               WHEN 'invoice.created' THEN
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'as_of', i.as_of)
               ELSE
                   jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status,
                                      'number', i.number, 'series', num.code,
                                      'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text,
                                      'total', i.total::text, 'total_minor', minor_units(i.total),
                                      'issue_date', i.issue_date, 'due_date', i.due_date,
                                      'reference', i.reference)
               END
          FROM ins i
          JOIN num ON num.id = i.series_id
          CROSS JOIN (VALUES (1, 'invoice.created'), (2, 'invoice.finalized')) AS t(ord, type)
         ORDER BY i.account_id, i.id, t.ord
        RETURNING e.*
    ),
    -- NOTIFY each event as emit_event does (these payloads are far below
    -- emit_event's 7000-byte truncation limit)
    nt AS (
        SELECT count(pg_notify('subbilling',
                   (jsonb_build_object('id', ev.id, 'type', ev.type, 'account_id', ev.account_id,
                                       'subscription_id', ev.subscription_id, 'invoice_id', ev.invoice_id,
                                       'created_at', ev.created_at, 'payload', ev.payload))::text)) AS n
          FROM ev WHERE notify
    )
    SELECT count(*), array_agg(ins.account_id), array_agg(ins.id) INTO n, booked_acc, booked_inv
      FROM ins WHERE (SELECT nt.n FROM nt) >= 0;
    -- the receivables ledger: book the invoices, apply customer credit, request automatic payments
    IF n > 0 THEN
        PERFORM book_invoices(booked_acc, booked_inv);
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.bill_subscriptions(bigint[], bigint[], date[], timestamptz) IS 'internal: bill claimed subscriptions as of their account-local dates in one statement; returns the number of invoices';

-- Open billing errors of subscriptions that have now been billed are
-- resolved.  (A cheap test first: there are rarely any open errors.)
CREATE FUNCTION subbilling.resolve_billing_errors(account_ids bigint[], subscription_ids bigint[]) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(account_ids, subscription_ids) AS x(account_id, subscription_id)
         WHERE e.account_id = x.account_id AND e.subscription_id = x.subscription_id
           AND e.resolved_at IS NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.resolve_billing_errors(bigint[], bigint[]) IS 'internal: mark the open billing errors of subscriptions that were just billed resolved';

-- The batch size of run_billing: subbilling.batch_size, else 1000.
CREATE FUNCTION subbilling.billing_batch_size() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting('subbilling.batch_size', true), '')::integer, 1000);
COMMENT ON FUNCTION subbilling.billing_batch_size() IS 'internal: subbilling.batch_size (default 1000)';

-- Claims up to batch_size due subscriptions and bills them; a failure in
-- the set-based pass falls back to one subscription at a time, recording
-- each failure in billing_errors and retrying that subscription the next
-- day (or as soon as it changes).
CREATE FUNCTION subbilling.bill_batch(batch_size integer, as_of timestamptz,
                                      OUT invoices integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    acc     bigint[];
    sid     bigint[];
    ad      date[];
    nbo     date[];
    n       integer;
    cursor_ text;
    after_d date := '-infinity';
    after_a bigint := 0;
    after_i bigint := 0;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF bill_batch.batch_size IS NULL OR bill_batch.batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of subscriptions'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(bill_batch.batch_size::text, 'NULL'));
    END IF;
    IF bill_batch.as_of IS NULL OR NOT isfinite(bill_batch.as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    invoices := 0;
    errors := 0;
    -- In one session, each batch for the same as_of goes on where the last
    -- one ended (keyset on the claim index): the rows already billed keep
    -- index entries under their old dates (until the transaction ends, or
    -- until vacuum), and a scan from the start would pass them again for
    -- every batch.  When the rows after the cursor do not fill a batch, the
    -- batch is filled from the start of the index up to the cursor (rows
    -- that changed meanwhile, or that another session held), and the cursor
    -- moves to the last row claimed.  It is a session setting: a rolled-back
    -- transaction takes its moves back.
    cursor_ := current_setting('subbilling_internal.billing_cursor', true);
    IF split_part(cursor_, '|', 1) = bill_batch.as_of::text THEN
        after_d := split_part(cursor_, '|', 2)::date;
        after_a := split_part(cursor_, '|', 3)::bigint;
        after_i := split_part(cursor_, '|', 4)::bigint;
    END IF;
    -- A full batch that yields neither invoice nor error (subscriptions that
    -- only had their bookkeeping moved on) takes the next one at once, so
    -- that a caller judging progress by invoices + errors never sees a full
    -- batch without progress.
    LOOP
        -- due: next_bill_on on or before the account-local date of as_of
        -- (no zone is more than a day ahead of UTC, which bounds the index scan)
        SELECT array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id),
               array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id)
          INTO acc, sid, ad, nbo
          FROM (SELECT s.account_id, s.id, s.next_bill_on,
                       (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                  FROM subbilling.subscriptions s
                  JOIN subbilling.accounts a ON a.id = s.account_id
                 WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                   AND (s.next_bill_on, s.account_id, s.id) > (after_d, after_a, after_i)
                   AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                 ORDER BY s.next_bill_on, s.account_id, s.id
                 LIMIT bill_batch.batch_size
                   FOR UPDATE OF s SKIP LOCKED) c;
        n := coalesce(cardinality(sid), 0);
        IF n < bill_batch.batch_size AND (after_d, after_a, after_i) > ('-infinity'::date, 0::bigint, 0::bigint) THEN
            SELECT acc || coalesce(array_agg(c.account_id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   sid || coalesce(array_agg(c.id ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   ad || coalesce(array_agg(c.local_date ORDER BY c.next_bill_on, c.account_id, c.id), '{}'),
                   nbo || coalesce(array_agg(c.next_bill_on ORDER BY c.next_bill_on, c.account_id, c.id), '{}')
              INTO acc, sid, ad, nbo
              FROM (SELECT s.account_id, s.id, s.next_bill_on,
                           (bill_batch.as_of AT TIME ZONE a.time_zone)::date AS local_date
                      FROM subbilling.subscriptions s
                      JOIN subbilling.accounts a ON a.id = s.account_id
                     WHERE s.next_bill_on <= (bill_batch.as_of AT TIME ZONE 'UTC')::date + 1
                       AND (s.next_bill_on, s.account_id, s.id) <= (after_d, after_a, after_i)
                       AND s.next_bill_on <= (bill_batch.as_of AT TIME ZONE a.time_zone)::date
                     ORDER BY s.next_bill_on, s.account_id, s.id
                     LIMIT bill_batch.batch_size - n
                       FOR UPDATE OF s SKIP LOCKED) c;
            n := coalesce(cardinality(sid), 0);
        END IF;
        more := n = bill_batch.batch_size;
        EXIT WHEN n = 0;
        after_d := nbo[n];
        after_a := acc[n];
        after_i := sid[n];
        PERFORM set_config('subbilling_internal.billing_cursor',
                           concat_ws('|', bill_batch.as_of, after_d, after_a, after_i), false);
        BEGIN
            invoices := invoices + bill_subscriptions(acc, sid, ad, bill_batch.as_of);
            PERFORM resolve_billing_errors(acc, sid);
        EXCEPTION WHEN OTHERS THEN
            -- one subscription at a time, each in its own subtransaction
            FOR k IN 1 .. n LOOP
                BEGIN
                    invoices := invoices + bill_subscriptions(ARRAY[acc[k]], ARRAY[sid[k]], ARRAY[ad[k]], bill_batch.as_of);
                    PERFORM resolve_billing_errors(ARRAY[acc[k]], ARRAY[sid[k]]);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    INSERT INTO subbilling.billing_errors (account_id, subscription_id, run_id, as_of, sqlstate, message, detail)
                    VALUES (acc[k], sid[k], current_run_id(), bill_batch.as_of, st, msg, nullif(det, ''));
                    UPDATE subbilling.subscriptions x SET next_bill_on = ad[k] + 1
                     WHERE x.account_id = acc[k] AND x.id = sid[k];
                    errors := errors + 1;
                END;
            END LOOP;
        END;
        EXIT WHEN NOT more OR invoices + errors > 0;
    END LOOP;
END
$$;
COMMENT ON FUNCTION subbilling.bill_batch(integer, timestamptz) IS 'internal: claim up to batch_size due subscriptions (FOR UPDATE SKIP LOCKED) and bill them as of as_of; failures are recorded in billing_errors and retried the next day; more = a full batch was claimed';

CREATE FUNCTION subbilling.run_billing(as_of timestamptz DEFAULT now())
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bs      integer := billing_batch_size();
    r       record;
    total   integer := 0;
BEGIN
    LOOP
        r := bill_batch(bs, run_billing.as_of);
        total := total + r.invoices;
        EXIT WHEN NOT r.more;
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION subbilling.run_billing(timestamptz) IS 'invoice everything due up to as_of (in batches of subbilling.batch_size, in the caller''s transaction); returns the number of invoices; failures of single subscriptions go to billing_errors';

-- ============================================================================
-- Issued invoices after the fact (SPEC section 4): credit notes, voiding,
-- and finalising drafts.  An issued invoice is never deleted or altered;
-- these functions add documents or move the status forward.
-- ============================================================================

-- Numbers one invoice in the series of its issue date: locks the series
-- row until commit (gapless) and returns the number as (series_id, seq, text).
CREATE FUNCTION subbilling.take_invoice_number(issue_date date,
                                               OUT series_id bigint, OUT number_seq bigint, OUT number text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    sid bigint := series_for(issue_date);
BEGIN
    UPDATE subbilling.invoice_counters ct SET next_number = ct.next_number + 1
      FROM subbilling.invoice_series sr
     WHERE ct.series_id = sid AND sr.id = sid
    RETURNING sr.id, ct.next_number - 1, format_invoice_number(sr.prefix, sr.digits, ct.next_number - 1)
      INTO series_id, number_seq, number;
END
$$;
COMMENT ON FUNCTION subbilling.take_invoice_number(date) IS 'internal: the next number of the issue date''s series, under the series row lock (held until commit)';

-- The invoice with this id, locked; 42704 if none.
CREATE FUNCTION subbilling.invoice_for_update(invoice_id bigint) RETURNS subbilling.invoices
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    i   subbilling.invoices;
BEGIN
    SELECT * INTO i FROM subbilling.invoices x WHERE x.id = invoice_for_update.invoice_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice % does not exist', coalesce(invoice_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN i;
END
$$;
COMMENT ON FUNCTION subbilling.invoice_for_update(bigint) IS 'internal: the invoice row locked FOR UPDATE, or SQLSTATE 42704';

-- The amount of an invoice not yet credited: its total less the totals of
-- its non-void credit notes.
CREATE FUNCTION subbilling.invoice_uncredited(i subbilling.invoices) RETURNS subbilling.price
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT i.total + coalesce((SELECT sum(c.total) FROM subbilling.invoices c
                                WHERE c.account_id = i.account_id AND c.credits_invoice_id = i.id
                                  AND c.status <> 'void'), price_minor(0, i.currency))
$$;
COMMENT ON FUNCTION subbilling.invoice_uncredited(subbilling.invoices) IS 'internal: an invoice''s total less its credit notes';

-- ---------------------------------------------------------------- credit notes

CREATE FUNCTION subbilling.credit_invoice(invoice_id bigint, amount subbilling.price DEFAULT NULL,
                                          reason text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i       subbilling.invoices;
    a       subbilling.accounts;
    left_   subbilling.price;
    amt     subbilling.price;
    zero    subbilling.price;
    whole   boolean;
    today   date;
    num     record;
    cid     bigint;
    cn      subbilling.invoices;
BEGIN
    i := invoice_for_update(credit_invoice.invoice_id);
    IF i.kind <> 'invoice' OR i.status NOT IN ('open', 'paid', 'uncollectible') THEN
        RAISE EXCEPTION 'invoice % cannot be credited', coalesce(i.number, i.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; only issued invoices (open, paid, uncollectible) are credited.',
                                  replace(i.kind, '_', ' '), i.status);
    END IF;
    zero := price_minor(0, i.currency);
    left_ := invoice_uncredited(i);
    IF left_ <= zero THEN
        RAISE EXCEPTION 'invoice % is fully credited', i.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Its total %s has been credited.', i.total);
    END IF;
    amt := coalesce(credit_invoice.amount, left_);
    IF currency(amt) <> i.currency THEN
        RAISE EXCEPTION 'credit amount % is not in the invoice''s currency %', amt, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    IF amt <= zero OR amt > left_ THEN
        RAISE EXCEPTION 'credit amount % is not between 0 and the uncredited %', amt, left_
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Invoice %s totals %s, of which %s is not yet credited.', i.number, i.total, left_);
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := (now() AT TIME ZONE a.time_zone)::date;
    whole := amt = i.total;     -- nothing credited before: mirror every line
    cid := nextval('subbilling.invoices_id_seq'::regclass);
    num := take_invoice_number(today);

    WITH g AS (
        SELECT l.tax_rate, greatest(minor_units(sum(l.net) + sum(l.tax)), 0)::numeric AS w,
               row_number() OVER (ORDER BY l.tax_rate DESC) AS ord
          FROM subbilling.invoice_lines l
          JOIN subbilling.invoices x ON x.account_id = l.account_id AND x.id = l.invoice_id
         WHERE l.account_id = i.account_id AND x.status <> 'void'
           AND (x.id = i.id OR x.credits_invoice_id = i.id)
         GROUP BY l.tax_rate
    ),
    -- the gross amount split over the VAT rates in proportion to what is
    -- not yet credited of each, exactly (largest remainder)
    parts AS (
        SELECT g.tax_rate, g.ord, (allocate(amt, (SELECT array_agg(g2.w ORDER BY g2.ord) FROM g g2)))[g.ord] AS part
          FROM g
         WHERE NOT whole
    ),
    cl AS (
        SELECT 'Credit: ' || l.description AS description, l.period, l.quantity, -l.unit_price AS unit_price,
               -l.net AS net, l.tax_rate, -l.tax AS tax, l.id AS ord
          FROM subbilling.invoice_lines l
         WHERE whole AND l.account_id = i.account_id AND l.invoice_id = i.id
        UNION ALL
        SELECT format('%s (VAT %s%%)', coalesce(credit_invoice.reason, 'Credit'), trim_scale(r.tax_rate)),
               NULL, 1, -net_of(r.part, r.tax_rate), -net_of(r.part, r.tax_rate), r.tax_rate,
               -(r.part - net_of(r.part, r.tax_rate)), r.ord
          FROM parts r
         WHERE r.part <> zero
    ),
    h AS (
        INSERT INTO subbilling.invoices AS x
               (account_id, id, subscription_id, kind, status, series_id, number_seq, number, currency, net, tax,
                total, issue_date, due_date, reference, credits_invoice_id, reason, finalized_at)
        SELECT i.account_id, cid, i.subscription_id, 'credit_note', 'open', num.series_id, num.number_seq,
               num.number, i.currency, sum(c.net), sum(c.tax), sum(c.net) + sum(c.tax), today, today,
               payment_reference(a.country, cid), i.id, credit_invoice.reason, now()
          FROM cl c
        RETURNING x.*
    ),
    ln AS (
        INSERT INTO subbilling.invoice_lines
               (account_id, invoice_id, subscription_id, kind, description, period, quantity, unit_price, net,
                tax_rate, tax)
        SELECT i.account_id, cid, i.subscription_id, 'credit', c.description, c.period, c.quantity, c.unit_price,
               c.net, c.tax_rate, c.tax
          FROM cl c
         ORDER BY c.ord
    )
    SELECT * INTO cn FROM h;

    PERFORM emit_event(cn.account_id, 'invoice.created', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'currency', cn.currency, 'net', cn.net::text,
                           'tax', cn.tax::text, 'total', cn.total::text, 'credits_invoice_id', i.id), cn.id);
    PERFORM emit_event(cn.account_id, 'invoice.finalized', cn.subscription_id,
        jsonb_build_object('invoice_id', cn.id, 'kind', cn.kind, 'status', cn.status, 'number', cn.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = cn.series_id),
                           'currency', cn.currency, 'net', cn.net::text, 'tax', cn.tax::text, 'total', cn.total::text,
                           'total_minor', minor_units(cn.total), 'issue_date', cn.issue_date,
                           'due_date', cn.due_date, 'reference', cn.reference, 'credits_invoice_id', i.id), cn.id);
    PERFORM emit_event(i.account_id, 'invoice.credited', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'number', i.number, 'credit_note_id', cn.id,
                           'credit_note_number', cn.number, 'amount', amt::text, 'currency', i.currency,
                           'uncredited', (left_ - amt)::text, 'reason', credit_invoice.reason), i.id);
    PERFORM book_invoices(ARRAY[i.account_id], ARRAY[cid]);   -- the receivables ledger
    RETURN cid;
END
$$;
COMMENT ON FUNCTION subbilling.credit_invoice(bigint, subbilling.price, text) IS 'issue a credit note for an invoice: the whole uncredited amount (NULL) mirrors its lines, a part is split over its VAT rates; numbered and announced at once; returns the credit note id; events invoice.created, invoice.finalized (note) and invoice.credited';

-- ---------------------------------------------------------------- void

CREATE FUNCTION subbilling.void_invoice(invoice_id bigint, reason text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i   subbilling.invoices;
BEGIN
    i := invoice_for_update(void_invoice.invoice_id);
    IF i.status <> 'open' THEN
        RAISE EXCEPTION 'invoice % is %, not open', coalesce(i.number, i.id::text), i.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only an open invoice is voided; credit_invoice() corrects a paid one.';
    END IF;
    IF EXISTS (SELECT 1 FROM subbilling.invoices c
                WHERE c.account_id = i.account_id AND c.credits_invoice_id = i.id AND c.status <> 'void') THEN
        RAISE EXCEPTION 'invoice % has credit notes', i.number
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Credit the rest with credit_invoice() instead.';
    END IF;
    UPDATE subbilling.invoices x SET status = 'void', voided_at = now()
     WHERE x.account_id = i.account_id AND x.id = i.id;
    -- what it invoiced counts as not invoiced: recompute the subscription
    UPDATE subbilling.subscriptions s SET next_bill_on = '-infinity', bill_from = NULL
     WHERE s.account_id = i.account_id AND s.id = i.subscription_id;
    PERFORM emit_event(i.account_id, 'invoice.voided', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'number', i.number, 'total', i.total::text,
                           'currency', i.currency, 'reason', void_invoice.reason), i.id);
    PERFORM book_invoices(ARRAY[i.account_id], ARRAY[i.id]);   -- the receivables ledger
    RETURN i.id;
END
$$;
COMMENT ON FUNCTION subbilling.void_invoice(bigint, text) IS 'void an open invoice without credit notes (it keeps its number); its charges count as not invoiced, so the next billing run bills what is still due; returns the invoice id; event invoice.voided';

-- ---------------------------------------------------------------- drafts

CREATE FUNCTION subbilling.finalize_invoice(invoice_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i       subbilling.invoices;
    a       subbilling.accounts;
    today   date;
    t       record;
    num     record;
BEGIN
    i := invoice_for_update(finalize_invoice.invoice_id);
    IF i.status <> 'draft' THEN
        RAISE EXCEPTION 'invoice % is %, not a draft', coalesce(i.number, i.id::text), i.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT sum(l.net) AS net, sum(l.tax) AS tax, count(*) AS n INTO t
      FROM subbilling.invoice_lines l WHERE l.account_id = i.account_id AND l.invoice_id = i.id;
    IF t.n = 0 THEN
        RAISE EXCEPTION 'draft invoice % has no lines', i.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF currency(t.net) <> i.currency THEN
        RAISE EXCEPTION 'the lines of draft invoice % are not in its currency %', i.id, i.currency
            USING ERRCODE = 'data_exception';
    END IF;
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    today := coalesce(i.issue_date, (now() AT TIME ZONE a.time_zone)::date);
    num := take_invoice_number(today);
    UPDATE subbilling.invoices x
       SET status = 'open', series_id = num.series_id, number_seq = num.number_seq, number = num.number,
           net = t.net, tax = t.tax, total = t.net + t.tax,
           kind = CASE WHEN x.credits_invoice_id IS NULL AND t.net + t.tax < price_minor(0, x.currency)
                       THEN 'credit_note' ELSE x.kind END,
           issue_date = today, due_date = coalesce(x.due_date, today + a.payment_terms_days),
           reference = payment_reference(a.country, x.id), finalized_at = now()
     WHERE x.account_id = i.account_id AND x.id = i.id
    RETURNING x.* INTO i;
    PERFORM emit_event(i.account_id, 'invoice.finalized', i.subscription_id,
        jsonb_build_object('invoice_id', i.id, 'kind', i.kind, 'status', i.status, 'number', i.number,
                           'series', (SELECT sr.code FROM subbilling.invoice_series sr WHERE sr.id = i.series_id),
                           'currency', i.currency, 'net', i.net::text, 'tax', i.tax::text, 'total', i.total::text,
                           'total_minor', minor_units(i.total), 'issue_date', i.issue_date,
                           'due_date', i.due_date, 'reference', i.reference), i.id);
    PERFORM book_invoices(ARRAY[i.account_id], ARRAY[i.id]);   -- the receivables ledger
    RETURN i.id;
END
$$;
COMMENT ON FUNCTION subbilling.finalize_invoice(bigint) IS 'finalise a draft invoice: totals from its lines, the next number of its issue year''s series, due date from the payment terms, payment reference; returns its id; event invoice.finalized';

-- ============================================================================
-- Privileges of invoicing (SPEC section 6), following 390_privileges.sql:
-- functions that change data are SECURITY DEFINER with a pinned search_path
-- and executable by subbilling_operator, never by PUBLIC; internal helpers
-- are executable by nobody but their owner.  subbilling_reader gets no
-- table: it reads the reporting views of a later issue.
-- ============================================================================

GRANT SELECT ON subbilling.invoices, subbilling.invoice_lines, subbilling.invoice_series,
                subbilling.invoice_counters, subbilling.country_settings
    TO subbilling_operator;
-- settings are maintained with plain SQL; the counter moves only by numbering
GRANT INSERT, UPDATE ON subbilling.country_settings TO subbilling_operator;
GRANT INSERT (code, prefix, digits, description), UPDATE (prefix, digits, description)
    ON subbilling.invoice_series TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.run_billing(timestamptz),
    subbilling.preview_invoice(bigint, date),
    subbilling.credit_invoice(bigint, subbilling.price, text),
    subbilling.void_invoice(bigint, text),
    subbilling.finalize_invoice(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.run_billing(timestamptz),
    subbilling.preview_invoice(bigint, date),
    subbilling.credit_invoice(bigint, subbilling.price, text),
    subbilling.void_invoice(bigint, text),
    subbilling.finalize_invoice(bigint)
    TO subbilling_operator;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling.billing_charges(bigint[], bigint[], date[]),
    subbilling.bill_subscriptions(bigint[], bigint[], date[], timestamptz),
    subbilling.bill_batch(integer, timestamptz),
    subbilling.resolve_billing_errors(bigint[], bigint[]),
    subbilling.billing_batch_size(),
    subbilling.outbox_reserve(),
    subbilling.notify_enabled(),
    subbilling.series_for(date),
    subbilling.take_invoice_number(date),
    subbilling.invoice_for_update(bigint),
    subbilling.invoice_uncredited(subbilling.invoices),
    subbilling.subscriptions_billing_changed(),
    subbilling.invoices_guard(),
    subbilling.invoice_lines_guard(),
    subbilling.invoice_lines_check_totals(),
    subbilling.invoice_series_counter()
    FROM PUBLIC;
-- 500_worker.sql: the background worker's tables, functions and status view.
-- See docs/worker.md.

-- Roles (cluster-wide; also created at 390 with the same idempotent pattern).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_operator') THEN
        CREATE ROLE subbilling_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'subbilling_reader') THEN
        CREATE ROLE subbilling_reader NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA subbilling TO subbilling_reader, subbilling_operator;

-------------------------------------------------------------------------------
-- Runs of the worker (and of run_worker_cycle): a global operational table.
-------------------------------------------------------------------------------
CREATE TABLE subbilling.worker_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin        text NOT NULL DEFAULT 'worker' CHECK (origin IN ('worker', 'sql')),
    pid           int NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    as_of         timestamptz NOT NULL,
    finished_at   timestamptz,
    batch_size    int NOT NULL CHECK (batch_size > 0),
    batches       int NOT NULL DEFAULT 0,
    invoices      int NOT NULL DEFAULT 0,
    errors        int NOT NULL DEFAULT 0,
    dunning_steps int NOT NULL DEFAULT 0,
    transitions   int NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'error')),
    sqlstate      text CHECK (sqlstate ~ '^[0-9A-Z]{5}$'),
    message       text,
    detail        text,
    CHECK ((status = 'running') = (finished_at IS NULL)),
    CHECK (status <> 'error' OR message IS NOT NULL)
);
CREATE INDEX worker_runs_running_idx ON subbilling.worker_runs (id) WHERE status = 'running';
SELECT pg_catalog.pg_extension_config_dump('subbilling.worker_runs', '');

COMMENT ON TABLE subbilling.worker_runs IS
    'one row per billing cycle of the background worker (origin worker) or of run_worker_cycle() (origin sql)';
COMMENT ON COLUMN subbilling.worker_runs.origin IS 'worker: the background worker; sql: subbilling.run_worker_cycle()';
COMMENT ON COLUMN subbilling.worker_runs.pid IS 'process id of the worker or session that ran the cycle';
COMMENT ON COLUMN subbilling.worker_runs.as_of IS 'billing time passed to every batch of the cycle';
COMMENT ON COLUMN subbilling.worker_runs.batch_size IS 'subbilling.batch_size when the cycle started';
COMMENT ON COLUMN subbilling.worker_runs.batches IS 'billing plus dunning batches completed (one transaction each for the worker)';
COMMENT ON COLUMN subbilling.worker_runs.invoices IS 'invoices made by the billing batches';
COMMENT ON COLUMN subbilling.worker_runs.errors IS 'items that failed and were recorded in billing_errors';
COMMENT ON COLUMN subbilling.worker_runs.dunning_steps IS 'dunning steps taken by the dunning batches';
COMMENT ON COLUMN subbilling.worker_runs.transitions IS 'dated subscription transitions applied by advance_subscriptions()';
COMMENT ON COLUMN subbilling.worker_runs.status IS 'running, ok, or error (the cycle stopped on an error that escaped a batch)';
COMMENT ON COLUMN subbilling.worker_runs.sqlstate IS 'SQLSTATE of the error that stopped the cycle';
COMMENT ON COLUMN subbilling.worker_runs.message IS 'error message, or why an ok cycle ended early';
COMMENT ON COLUMN subbilling.worker_runs.detail IS 'DETAIL of the error that stopped the cycle';

-------------------------------------------------------------------------------
-- Per-item billing failures, written by the batch functions; customer-owned.
-------------------------------------------------------------------------------
CREATE TABLE subbilling.billing_errors (
    account_id      bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    subscription_id bigint,
    run_id          bigint,
    as_of           timestamptz,
    sqlstate        text,
    message         text,
    detail          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX billing_errors_open_idx ON subbilling.billing_errors (created_at) WHERE resolved_at IS NULL;
CREATE INDEX billing_errors_subscription_idx ON subbilling.billing_errors (account_id, subscription_id);
SELECT pg_catalog.pg_extension_config_dump('subbilling.billing_errors', '');

COMMENT ON TABLE subbilling.billing_errors IS
    'billing or dunning failures of single subscriptions, recorded and skipped by the batch functions';
COMMENT ON COLUMN subbilling.billing_errors.run_id IS 'worker_runs.id of the run that met the failure (subbilling.current_run_id())';
COMMENT ON COLUMN subbilling.billing_errors.as_of IS 'billing time of the failed attempt';
COMMENT ON COLUMN subbilling.billing_errors.resolved_at IS 'set when the failure is dealt with; NULL = open';

-------------------------------------------------------------------------------
-- Settings and the id of the run in progress
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.worker_config(
    OUT preloaded boolean, OUT enabled boolean, OUT database text,
    OUT naptime integer, OUT batch_size integer, OUT notify boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'subbilling_worker_config'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION subbilling.worker_config() IS
    'this session''s subbilling.* worker settings (naptime in seconds) and whether the library was preloaded';

CREATE FUNCTION subbilling.current_run_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(pg_catalog.current_setting('subbilling.current_run_id', true), '')::bigint $$;
COMMENT ON FUNCTION subbilling.current_run_id() IS
    'worker_runs.id of the worker cycle in progress in this session, NULL outside one (for billing_errors.run_id)';

-------------------------------------------------------------------------------
-- The batch functions.  PLACEHOLDERS: the billing engine (issue 4) and dunning
-- (issue 5) replace these bodies, keeping the signatures, labels and grants.
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE sql VOLATILE
AS $$ SELECT 0, 0, false $$;
COMMENT ON FUNCTION subbilling.run_billing_batch(int, timestamptz) IS
    'bills up to batch_size due subscriptions as of as_of in the caller''s transaction; failures of one subscription go to billing_errors; more = due work remains';

CREATE FUNCTION subbilling.run_dunning_batch(batch_size int, as_of date)
RETURNS TABLE (steps int, errors int, more boolean)
LANGUAGE sql VOLATILE
AS $$ SELECT 0, 0, false $$;
COMMENT ON FUNCTION subbilling.run_dunning_batch(int, date) IS
    'takes up to batch_size due dunning steps as of as_of in the caller''s transaction; failures go to billing_errors; more = due work remains';
-- End of placeholders.

-------------------------------------------------------------------------------
-- One worker cycle in the caller's transaction (pg_cron, tests, no preload)
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.run_worker_cycle(as_of timestamptz DEFAULT now())
RETURNS TABLE (invoices int, errors int, dunning_steps int)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_batch_size int;
    v_run_id     bigint;
    v_batches    bigint := 0;
    v_invoices   bigint := 0;
    v_errors     bigint := 0;
    v_steps      bigint := 0;
    v_trans      bigint := 0;
    v_done       bigint;
    v_failed     bigint;
    v_more       boolean;
    v_note       text;
BEGIN
    SELECT c.batch_size INTO v_batch_size FROM subbilling.worker_config() AS c;

    INSERT INTO subbilling.worker_runs AS r (origin, pid, as_of, batch_size, status)
    VALUES ('sql', pg_catalog.pg_backend_pid(), run_worker_cycle.as_of, v_batch_size, 'running')
    RETURNING r.id INTO v_run_id;
    PERFORM pg_catalog.set_config('subbilling.current_run_id', v_run_id::text, true);

    IF pg_catalog.to_regprocedure('subbilling.advance_subscriptions(date)') IS NOT NULL THEN
        EXECUTE 'SELECT coalesce(subbilling.advance_subscriptions($1), 0)'
            INTO v_trans USING run_worker_cycle.as_of::date;
    END IF;

    LOOP
        SELECT coalesce(pg_catalog.sum(b.invoices), 0), coalesce(pg_catalog.sum(b.errors), 0),
               coalesce(pg_catalog.bool_or(b.more), false)
          INTO v_done, v_failed, v_more
          FROM subbilling.run_billing_batch(v_batch_size, run_worker_cycle.as_of) AS b;
        v_batches := v_batches + 1;
        v_invoices := v_invoices + v_done;
        v_errors := v_errors + v_failed;
        EXIT WHEN NOT v_more;
        -- a batch that claims more work but handled none would loop for ever
        IF v_done = 0 AND v_failed = 0 THEN
            v_note := 'billing stopped: a batch reported more due work but handled none';
            RAISE WARNING 'subbilling: a billing batch reported more due work but handled none';
            EXIT;
        END IF;
    END LOOP;

    LOOP
        SELECT coalesce(pg_catalog.sum(d.steps), 0), coalesce(pg_catalog.sum(d.errors), 0),
               coalesce(pg_catalog.bool_or(d.more), false)
          INTO v_done, v_failed, v_more
          FROM subbilling.run_dunning_batch(v_batch_size, run_worker_cycle.as_of::date) AS d;
        v_batches := v_batches + 1;
        v_steps := v_steps + v_done;
        v_errors := v_errors + v_failed;
        EXIT WHEN NOT v_more;
        IF v_done = 0 AND v_failed = 0 THEN
            v_note := pg_catalog.concat_ws('; ', v_note,
                'dunning stopped: a batch reported more due work but handled none');
            RAISE WARNING 'subbilling: a dunning batch reported more due work but handled none';
            EXIT;
        END IF;
    END LOOP;

    UPDATE subbilling.worker_runs AS r
       SET finished_at = pg_catalog.clock_timestamp(), status = 'ok', batches = v_batches,
           invoices = v_invoices, errors = v_errors, dunning_steps = v_steps,
           transitions = v_trans, message = v_note
     WHERE r.id = v_run_id;
    PERFORM pg_catalog.set_config('subbilling.current_run_id', '', true);

    invoices := v_invoices;
    errors := v_errors;
    dunning_steps := v_steps;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION subbilling.run_worker_cycle(timestamptz) IS
    'one worker cycle (transitions, billing batches, dunning batches) in the caller''s transaction, recorded in worker_runs; for pg_cron';

-------------------------------------------------------------------------------
-- Waking the worker
-------------------------------------------------------------------------------
CREATE FUNCTION subbilling.wake_worker() RETURNS boolean
AS 'MODULE_PATHNAME', 'subbilling_wake_worker'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION subbilling.wake_worker() IS
    'asks the background worker serving this database for a cycle now; false (with a NOTICE) when none will';

-------------------------------------------------------------------------------
-- Status: one row
-------------------------------------------------------------------------------
CREATE VIEW subbilling.worker_status AS
SELECT w.pid                  AS worker_pid,
       w.datname::text        AS worker_database,
       c.preloaded,
       c.enabled,
       c.naptime,
       c.batch_size,
       c.database,
       r.id                   AS last_run_id,
       r.origin               AS last_run_origin,
       r.started_at           AS last_run_started_at,
       r.finished_at          AS last_run_finished_at,
       r.status               AS last_run_status,
       r.batches              AS last_run_batches,
       r.invoices             AS last_run_invoices,
       r.errors               AS last_run_errors,
       r.dunning_steps        AS last_run_dunning_steps,
       r.transitions          AS last_run_transitions,
       r.sqlstate             AS last_run_sqlstate,
       r.message              AS last_run_message,
       (SELECT ok.finished_at FROM subbilling.worker_runs AS ok
         WHERE ok.status = 'ok' ORDER BY ok.id DESC LIMIT 1) AS last_ok_finished_at,
       (SELECT pg_catalog.count(*) FROM subbilling.billing_errors AS e
         WHERE e.resolved_at IS NULL) AS open_errors,
       (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'account_id', e.account_id, 'id', e.id, 'subscription_id', e.subscription_id,
                   'run_id', e.run_id, 'sqlstate', e.sqlstate, 'message', e.message,
                   'created_at', e.created_at)
                   ORDER BY e.created_at DESC, e.account_id, e.id), '[]'::jsonb)
          FROM (SELECT * FROM subbilling.billing_errors AS be
                 WHERE be.resolved_at IS NULL
                 ORDER BY be.created_at DESC, be.account_id, be.id LIMIT 5) AS e) AS recent_errors
  FROM subbilling.worker_config() AS c
  LEFT JOIN LATERAL (SELECT a.pid, a.datname FROM pg_catalog.pg_stat_activity AS a
                      WHERE a.backend_type = 'subbilling worker' LIMIT 1) AS w ON true
  LEFT JOIN LATERAL (SELECT * FROM subbilling.worker_runs AS lr ORDER BY lr.id DESC LIMIT 1) AS r ON true;
COMMENT ON VIEW subbilling.worker_status IS
    'one row: the running worker, its settings, the last run with its counts, and open billing errors (the latest five as jsonb)';

-------------------------------------------------------------------------------
-- Privileges
-------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION subbilling.wake_worker() FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.run_worker_cycle(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.run_billing_batch(int, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.run_dunning_batch(int, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.wake_worker() TO subbilling_operator;
GRANT EXECUTE ON FUNCTION subbilling.run_worker_cycle(timestamptz) TO subbilling_operator;
GRANT EXECUTE ON FUNCTION subbilling.run_billing_batch(int, timestamptz) TO subbilling_operator;
GRANT EXECUTE ON FUNCTION subbilling.run_dunning_batch(int, date) TO subbilling_operator;

GRANT SELECT ON subbilling.worker_status, subbilling.worker_runs, subbilling.billing_errors
    TO subbilling_reader, subbilling_operator;
-- run_worker_cycle() records its run; operators mark billing errors resolved.
GRANT INSERT, UPDATE ON subbilling.worker_runs TO subbilling_operator;
GRANT UPDATE (resolved_at) ON subbilling.billing_errors TO subbilling_operator;

-- ============================================================================
-- The worker's billing batch (500_worker.sql defines the signature, labels
-- and grants with a placeholder body): one batch of the invoicing engine.
-- The worker calls it in one transaction per batch; run_worker_cycle() and
-- pg_cron call it in a loop.
-- ============================================================================

CREATE OR REPLACE FUNCTION subbilling.run_billing_batch(batch_size int, as_of timestamptz)
RETURNS TABLE (invoices int, errors int, more boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT b.invoices, b.errors, b.more FROM subbilling.bill_batch(batch_size, as_of) AS b $$;
COMMENT ON FUNCTION subbilling.run_billing_batch(int, timestamptz) IS
    'bills up to batch_size due subscriptions as of as_of in the caller''s transaction; failures of one subscription go to billing_errors; more = due work remains';

-- ============================================================================
-- The receivables ledger (reskontra), SPEC section 5: a chart of accounts
-- with Swedish BAS defaults, a configurable purpose -> account mapping, and
-- the double-entry journal.
--
--   ledger_accounts, ledger_mappings     global settings (Citus reference tables)
--   journal_entries, journal_lines       customer-owned, immutable once booked
--   book_entry(...)                      books one balanced entry
--   invoice_open_amount, customer_credit, account_balance
--
-- Every receivables line names the invoice (open item) it changes, so the
-- open amount of an invoice is the sum of its receivables lines, and an
-- account's customer credit is minus the sum of its customer-credit lines:
-- both are derived exactly from the journal.  docs/ledger.md describes it.
-- ============================================================================

-- ---------------------------------------------------------------- chart of accounts

CREATE TABLE subbilling.ledger_accounts (
    code        text PRIMARY KEY
                CONSTRAINT ledger_accounts_code_format CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    name        text NOT NULL,
    kind        text NOT NULL
                CONSTRAINT ledger_accounts_kind_check
                CHECK (kind IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.ledger_accounts IS 'chart of accounts (global): code, name and kind; Swedish BAS defaults, extend or rename freely';

INSERT INTO subbilling.ledger_accounts (code, name, kind, description) VALUES
    ('1510', 'Kundfordringar', 'asset', 'receivables: what customers owe on issued invoices'),
    ('1930', 'Företagskonto/checkkonto/affärskonto', 'asset', 'bank: payments received and refunds paid out'),
    ('2420', 'Förskott från kunder', 'liability', 'customer credit: overpayments and credit notes not yet used'),
    ('2611', 'Utgående moms på försäljning inom Sverige, 25 %', 'liability', 'output VAT 25 %'),
    ('2621', 'Utgående moms på försäljning inom Sverige, 12 %', 'liability', 'output VAT 12 %'),
    ('2631', 'Utgående moms på försäljning inom Sverige, 6 %', 'liability', 'output VAT 6 %'),
    ('3001', 'Försäljning inom Sverige, 25 % moms', 'revenue', 'revenue at 25 % VAT'),
    ('3002', 'Försäljning inom Sverige, 12 % moms', 'revenue', 'revenue at 12 % VAT'),
    ('3003', 'Försäljning inom Sverige, 6 % moms', 'revenue', 'revenue at 6 % VAT'),
    ('3004', 'Försäljning inom Sverige, momsfri', 'revenue', 'revenue without VAT (tax-exempt customers, 0 %)'),
    ('3740', 'Öres- och kronutjämning', 'revenue', 'rounding differences'),
    ('3930', 'Påminnelseavgifter', 'revenue', 'reminder fees (VAT-free); a sub-account of group 39 Övriga rörelseintäkter'),
    ('6351', 'Konstaterade förluster på kundfordringar', 'expense', 'bad debts written off'),
    ('8313', 'Ränteintäkter från kundfordringar', 'revenue', 'late-payment interest charged to customers');

-- What each purpose books to.  A row may be narrowed to one currency and to
-- one detail (a product code, a VAT rate); the most specific row wins.
CREATE TABLE subbilling.ledger_mappings (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    purpose     text NOT NULL
                CONSTRAINT ledger_mappings_purpose_check
                CHECK (purpose IN ('receivables', 'bank', 'customer_credit', 'revenue', 'revenue_rate', 'vat',
                                   'fees', 'interest', 'write_off', 'rounding')),
    currency    text
                CONSTRAINT ledger_mappings_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    detail      text
                CONSTRAINT ledger_mappings_detail_nonempty CHECK (detail <> ''),
    code        text NOT NULL REFERENCES subbilling.ledger_accounts (code),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT ledger_mappings_unique UNIQUE NULLS NOT DISTINCT (purpose, currency, detail)
);
COMMENT ON TABLE subbilling.ledger_mappings IS 'purpose -> ledger account (global, configurable): NULL currency or detail = any; detail is a product code (revenue) or a VAT rate (revenue_rate, vat); the most specific row wins';

INSERT INTO subbilling.ledger_mappings (purpose, detail, code, description) VALUES
    ('receivables',     NULL, '1510', 'what customers owe'),
    ('bank',            NULL, '1930', 'payments in, refunds out'),
    ('customer_credit', NULL, '2420', 'overpayments and unused credit notes'),
    ('revenue_rate',    '25', '3001', 'revenue at 25 % VAT'),
    ('revenue_rate',    '12', '3002', 'revenue at 12 % VAT'),
    ('revenue_rate',    '6',  '3003', 'revenue at 6 % VAT'),
    ('revenue_rate',    '0',  '3004', 'revenue without VAT'),
    ('vat',             '25', '2611', 'output VAT 25 %'),
    ('vat',             '12', '2621', 'output VAT 12 %'),
    ('vat',             '6',  '2631', 'output VAT 6 %'),
    ('fees',            NULL, '3930', 'reminder fees'),
    ('interest',        NULL, '8313', 'late-payment interest'),
    ('write_off',       NULL, '6351', 'bad debts'),
    ('rounding',        NULL, '3740', 'rounding');

-- The canonical text of a VAT rate as a mapping detail: 25, 12.5, 6, 0.
CREATE FUNCTION subbilling.rate_detail(rate numeric) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.trim_scale(rate)::text;
COMMENT ON FUNCTION subbilling.rate_detail(numeric) IS 'internal: a VAT rate as ledger_mappings.detail text (trailing zeros removed: 25, 12.5, 0)';

-- The mapping row for (purpose, currency, detail), most specific first; NULL
-- if none.  exact: only rows naming this very detail.
CREATE FUNCTION subbilling.ledger_mapping(purpose text, currency text, detail text, exact boolean DEFAULT false)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT m.code FROM subbilling.ledger_mappings m
     WHERE m.purpose = ledger_mapping.purpose
       AND (m.currency IS NULL OR m.currency = upper(ledger_mapping.currency))
       AND (m.detail = ledger_mapping.detail OR (m.detail IS NULL AND NOT exact))
     ORDER BY m.detail IS NULL, m.currency IS NULL
     LIMIT 1
$$;
COMMENT ON FUNCTION subbilling.ledger_mapping(text, text, text, boolean) IS 'internal: the account of the most specific ledger_mappings row for purpose, currency and detail (detail before currency; exact = the detail itself only), or NULL';

CREATE FUNCTION subbilling.ledger_code(purpose text, currency text DEFAULT NULL, detail text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    c       text;
    rate    numeric;
BEGIN
    IF purpose IS NULL OR purpose NOT IN ('receivables', 'bank', 'customer_credit', 'revenue', 'revenue_rate', 'vat',
                                          'fees', 'interest', 'write_off', 'rounding') THEN
        RAISE EXCEPTION 'unknown ledger purpose "%"', coalesce(purpose, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Purposes: receivables, bank, customer_credit, revenue, revenue_rate, vat, fees, interest, write_off, rounding.';
    END IF;
    IF purpose IN ('vat', 'revenue_rate') AND detail ~ '^[0-9]+(\.[0-9]+)?$' THEN
        detail := rate_detail(detail::numeric);
    END IF;
    IF purpose = 'revenue' THEN
        -- a product's own row, else by its VAT rate (or detail as a rate), else any revenue row
        c := ledger_mapping('revenue', currency, detail, true);
        IF c IS NULL THEN
            SELECT p.tax_rate INTO rate FROM subbilling.products p WHERE p.code = detail;
            IF FOUND THEN
                c := ledger_mapping('revenue_rate', currency, rate_detail(rate), true);
            ELSIF detail ~ '^[0-9]+(\.[0-9]+)?$' THEN
                c := ledger_mapping('revenue_rate', currency, rate_detail(detail::numeric), true);
            END IF;
        END IF;
    END IF;
    IF c IS NULL THEN
        c := ledger_mapping(purpose, currency, detail);
    END IF;
    IF c IS NULL THEN
        RAISE EXCEPTION 'no ledger account for purpose % (currency %, detail %)',
                        purpose, coalesce(upper(currency), 'any'), coalesce(detail, 'none')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add a row to subbilling.ledger_mappings (purpose, currency, detail, code).';
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION subbilling.ledger_code(text, text, text) IS 'the ledger account for a purpose (receivables, bank, customer_credit, revenue, revenue_rate, vat, fees, interest, write_off, rounding), currency and detail (revenue: product code, else by the product''s VAT rate; vat, revenue_rate: the rate); SQLSTATE 42704 if unmapped';

-- ---------------------------------------------------------------- journal

CREATE TABLE subbilling.journal_entries (
    account_id  bigint NOT NULL REFERENCES subbilling.accounts (id),
    id          bigint GENERATED BY DEFAULT AS IDENTITY,
    kind        text NOT NULL
                CONSTRAINT journal_entries_kind_check
                CHECK (kind IN ('invoice', 'credit_note', 'void', 'payment', 'allocation', 'credit_applied',
                                'refund', 'fee', 'interest', 'write_off', 'rounding', 'adjustment')),
    booked_on   date NOT NULL,
    invoice_id  bigint,
    payment_id  bigint,
    memo        text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id)
);
CREATE INDEX journal_entries_id_idx ON subbilling.journal_entries (id);
CREATE INDEX journal_entries_invoice_idx ON subbilling.journal_entries (account_id, invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX journal_entries_payment_idx ON subbilling.journal_entries (account_id, payment_id) WHERE payment_id IS NOT NULL;
-- an invoice or credit note is booked once, and reversed (void) once
CREATE UNIQUE INDEX journal_entries_document_once ON subbilling.journal_entries (account_id, invoice_id, (kind = 'void'))
    WHERE kind IN ('invoice', 'credit_note', 'void');
COMMENT ON TABLE subbilling.journal_entries IS 'journal entries (verifikationer) of the receivables ledger: one business event each; immutable; lines balance per currency';

CREATE TABLE subbilling.journal_lines (
    account_id  bigint NOT NULL,
    id          bigint GENERATED BY DEFAULT AS IDENTITY,
    entry_id    bigint NOT NULL,
    ledger_code text NOT NULL REFERENCES subbilling.ledger_accounts (code),
    amount      subbilling.price NOT NULL,
    subledger   text
                CONSTRAINT journal_lines_subledger_check CHECK (subledger IN ('receivables', 'customer_credit')),
    invoice_id  bigint,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, entry_id) REFERENCES subbilling.journal_entries (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT journal_lines_open_item CHECK ((subledger = 'receivables') = (invoice_id IS NOT NULL)),
    CONSTRAINT journal_lines_nonzero CHECK (subbilling.minor_units(amount) <> 0)
);
CREATE INDEX journal_lines_entry_idx ON subbilling.journal_lines (account_id, entry_id);
CREATE INDEX journal_lines_open_item_idx ON subbilling.journal_lines (account_id, invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX journal_lines_credit_idx ON subbilling.journal_lines (account_id) WHERE subledger = 'customer_credit';
COMMENT ON TABLE subbilling.journal_lines IS 'journal lines: amount signed (debit > 0, credit < 0); receivables lines name their open item (invoice_id), customer-credit lines are marked; immutable';
COMMENT ON COLUMN subbilling.journal_lines.subledger IS 'receivables: a line on the customer''s open items (invoice_id says which); customer_credit: a line on the customer''s credit; NULL: any other account';

-- At the end of every statement that writes journal lines, each entry that
-- got lines sums to zero in each currency: an entry is written whole, in
-- one statement (book_entry and the booking functions always do).  One
-- set-based query per statement over the statement's new lines, not one
-- query per line: a billing batch books thousands of lines at once.
CREATE FUNCTION subbilling.journal_lines_balanced() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT k.account_id, k.entry_id, b.currency, b.diff INTO bad
      FROM (SELECT DISTINCT n.account_id, n.entry_id FROM new_lines n) k
      CROSS JOIN LATERAL (SELECT currency(l.amount) AS currency, sum(l.amount) AS diff
                            FROM subbilling.journal_lines l
                           WHERE l.account_id = k.account_id AND l.entry_id = k.entry_id
                           GROUP BY currency(l.amount)
                          HAVING minor_units(sum(l.amount)) <> 0
                           LIMIT 1) b
     ORDER BY k.account_id, k.entry_id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance', bad.entry_id
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Its %s lines of account %s sum to %s, not zero.', bad.currency, bad.account_id, bad.diff),
                  HINT = 'Debits (positive amounts) must equal credits (negative amounts) in every currency; write an entry''s lines in one statement.';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.journal_lines_balanced() IS 'trigger (after each statement inserting journal lines): every entry that got lines sums to zero per currency';

CREATE TRIGGER journal_lines_balanced
    AFTER INSERT ON subbilling.journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling.journal_lines_balanced();

-- Booked is booked: no UPDATE, DELETE or TRUNCATE; a correction is a new entry.
CREATE FUNCTION subbilling.journal_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: % refused', TG_TABLE_NAME, lower(TG_OP)
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'Booked journal entries and lines are never changed or removed.',
              HINT = 'Book a correcting entry instead.';
END
$$;
COMMENT ON FUNCTION subbilling.journal_immutable() IS 'trigger: journal entries and lines refuse UPDATE, DELETE and TRUNCATE (SQLSTATE 55000)';

CREATE TRIGGER journal_entries_immutable
    BEFORE UPDATE OR DELETE ON subbilling.journal_entries
    FOR EACH ROW EXECUTE FUNCTION subbilling.journal_immutable();
CREATE TRIGGER journal_entries_no_truncate
    BEFORE TRUNCATE ON subbilling.journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling.journal_immutable();
CREATE TRIGGER journal_lines_immutable
    BEFORE UPDATE OR DELETE ON subbilling.journal_lines
    FOR EACH ROW EXECUTE FUNCTION subbilling.journal_immutable();
CREATE TRIGGER journal_lines_no_truncate
    BEFORE TRUNCATE ON subbilling.journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION subbilling.journal_immutable();

-- ---------------------------------------------------------------- booking

CREATE FUNCTION subbilling.book_entry(account_id bigint, kind text, booked_on date, codes text[],
                                      amounts subbilling.price[], invoice_id bigint DEFAULT NULL,
                                      payment_id bigint DEFAULT NULL, memo text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    cur     text;
    n       integer := coalesce(cardinality(codes), 0);
    eid     bigint;
    bad     text;
    diff    subbilling.price;
    rc      text;
    cc      text;
BEGIN
    IF account_id IS NULL OR kind IS NULL OR booked_on IS NULL THEN
        RAISE EXCEPTION 'book_entry needs an account, a kind and a booking date'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.currency INTO cur FROM subbilling.accounts a WHERE a.id = book_entry.account_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', book_entry.account_id
            USING ERRCODE = 'undefined_object';
    END IF;
    IF n < 2 OR n <> coalesce(cardinality(amounts), 0) THEN
        RAISE EXCEPTION 'a journal entry needs at least two lines, one code per amount'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s codes and %s amounts.', n, coalesce(cardinality(amounts), 0));
    END IF;
    IF array_position(codes, NULL) IS NOT NULL OR array_position(amounts, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'journal line codes and amounts must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c INTO bad FROM unnest(codes) c
     WHERE NOT EXISTS (SELECT 1 FROM subbilling.ledger_accounts la WHERE la.code = c) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown ledger account "%"', bad
            USING ERRCODE = 'foreign_key_violation', HINT = 'See subbilling.ledger_accounts.';
    END IF;
    SELECT x::text INTO bad FROM unnest(amounts) x WHERE currency(x) <> cur LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'amount % is not in the account''s currency %', bad, cur
            USING ERRCODE = 'data_exception';
    END IF;
    diff := (SELECT sum(x) FROM unnest(amounts) x);
    IF minor_units(diff) <> 0 THEN
        RAISE EXCEPTION 'journal entry does not balance'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Its lines sum to %s, not zero.', diff),
                  HINT = 'Debits (positive amounts) must equal credits (negative amounts).';
    END IF;
    rc := ledger_mapping('receivables', cur, NULL);
    cc := ledger_mapping('customer_credit', cur, NULL);
    IF rc = ANY (codes) AND invoice_id IS NULL THEN
        RAISE EXCEPTION 'a receivables line needs the invoice it belongs to'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Lines on the receivables account change an open item: pass invoice_id.';
    END IF;
    IF invoice_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM subbilling.invoices i
                                               WHERE i.account_id = book_entry.account_id AND i.id = book_entry.invoice_id
                                                 AND i.status <> 'draft') THEN
        RAISE EXCEPTION 'invoice % is not an issued invoice of account %', invoice_id, account_id
            USING ERRCODE = 'undefined_object';
    END IF;

    -- one statement: the entry and its lines are checked together even
    -- under SET CONSTRAINTS ALL IMMEDIATE
    eid := nextval('subbilling.journal_entries_id_seq'::regclass);
    WITH e AS (
        INSERT INTO subbilling.journal_entries (account_id, id, kind, booked_on, invoice_id, payment_id, memo)
        VALUES (book_entry.account_id, eid, book_entry.kind, book_entry.booked_on, book_entry.invoice_id,
                book_entry.payment_id, book_entry.memo)
    )
    INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
    SELECT book_entry.account_id, eid, x.code, x.amount,
           CASE x.code WHEN rc THEN 'receivables' WHEN cc THEN 'customer_credit' END,
           CASE WHEN x.code = rc THEN book_entry.invoice_id END
      FROM unnest(codes, amounts) WITH ORDINALITY AS x(code, amount, ord)
     WHERE minor_units(x.amount) <> 0
     ORDER BY x.ord;
    RETURN eid;
END
$$;
COMMENT ON FUNCTION subbilling.book_entry(bigint, text, date, text[], subbilling.price[], bigint, bigint, text) IS 'book one balanced journal entry for an account: codes[i] gets amounts[i] (debit > 0, credit < 0, zero amounts skipped); receivables lines belong to invoice_id; returns the entry id';

-- ---------------------------------------------------------------- balances

CREATE FUNCTION subbilling.invoice_open_amount(account_id bigint, invoice_id bigint) RETURNS subbilling.price
    LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT sum(l.amount) FROM subbilling.journal_lines l
                      WHERE l.account_id = invoice_open_amount.account_id
                        AND l.invoice_id = invoice_open_amount.invoice_id),
                    price_minor(0, i.currency))
      FROM subbilling.invoices i
     WHERE i.account_id = invoice_open_amount.account_id AND i.id = invoice_open_amount.invoice_id
$$;
COMMENT ON FUNCTION subbilling.invoice_open_amount(bigint, bigint) IS 'what is still due on an invoice: the sum of its receivables lines in the journal (0 before booking, negative for an unapplied credit); NULL if there is no such invoice';

CREATE FUNCTION subbilling.customer_credit(account_id bigint) RETURNS subbilling.price
    LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT coalesce(-(SELECT sum(l.amount) FROM subbilling.journal_lines l
                       WHERE l.account_id = customer_credit.account_id AND l.subledger = 'customer_credit'),
                    price_minor(0, a.currency))
      FROM subbilling.accounts a WHERE a.id = customer_credit.account_id
$$;
COMMENT ON FUNCTION subbilling.customer_credit(bigint) IS 'the customer credit of an account (overpayments and unused credit notes, positive), from the journal; NULL if there is no such account';

CREATE FUNCTION subbilling.account_balance(account_id bigint) RETURNS subbilling.price
    LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT sum(l.amount) FROM subbilling.journal_lines l
                      WHERE l.account_id = account_balance.account_id AND l.subledger IS NOT NULL),
                    price_minor(0, a.currency))
      FROM subbilling.accounts a WHERE a.id = account_balance.account_id
$$;
COMMENT ON FUNCTION subbilling.account_balance(bigint) IS 'what an account owes: receivables (open invoice amounts) minus customer credit, from the journal, in the account''s currency (negative = the customer is in credit); NULL if there is no such account';

-- ============================================================================
-- Payments (SPEC section 5): payments matched by the invoice's reference,
-- the global queue of unmatched payments, refunds, payment requests of
-- automatic methods with a retry schedule.
--
--   register_payment(amount, reference, received_on, method, external_id)
--   match_payment(payment_id, invoice_id)     settle an unmatched payment by hand
--   refund(payment_id, amount)                from customer credit, then the invoice
--   payment_failed(request_id, reason, failed_on), run_payment_retries(as_of)
--
-- Payments and unmatched payments draw their ids from one sequence, so the
-- id register_payment returns names the payment for good: matching an
-- unmatched payment creates the account's payment under the same id.
-- docs/payments.md describes every rule.
-- ============================================================================

-- ---------------------------------------------------------------- settings

CREATE TABLE subbilling.payment_settings (
    id          boolean PRIMARY KEY DEFAULT true
                CONSTRAINT payment_settings_single_row CHECK (id),
    retry_days  integer[] NOT NULL DEFAULT '{3,5,7}'
                CONSTRAINT payment_settings_retry_days_check
                CHECK (cardinality(retry_days) <= 20 AND array_position(retry_days, NULL) IS NULL
                       AND 0 < ALL (retry_days) AND 366 > ALL (retry_days)),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE subbilling.payment_settings IS 'payment settings (one row): retry_days[k] = days after the k-th failed attempt of an automatic payment until retry k; {} = no retries';
INSERT INTO subbilling.payment_settings DEFAULT VALUES;

-- ---------------------------------------------------------------- payments

CREATE SEQUENCE subbilling.payment_id_seq AS bigint;
COMMENT ON SEQUENCE subbilling.payment_id_seq IS 'ids of payments and unmatched payments (one id space: a matched payment keeps its id)';

CREATE FUNCTION subbilling.is_payment_method(method text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN method ~ '^[a-z][a-z0-9_]{0,62}$';
COMMENT ON FUNCTION subbilling.is_payment_method(text) IS 'internal: a payment method name is lower-case letters, digits and underscores (card, autogiro, bankgiro, bgmax, nets_ocr, swish ...)';

CREATE FUNCTION subbilling.is_automatic_method(method text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN method IN ('card', 'autogiro', 'avtalegiro', 'betalingsservice', 'sepa_debit');
COMMENT ON FUNCTION subbilling.is_automatic_method(text) IS 'internal: true for the automatic payment methods (card and direct debits) that payment requests are made for';

CREATE TABLE subbilling.payments (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint NOT NULL DEFAULT pg_catalog.nextval('subbilling.payment_id_seq'::regclass),
    invoice_id          bigint NOT NULL,
    amount              subbilling.price NOT NULL
                        CONSTRAINT payments_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    reference           text,
    received_on         date NOT NULL,
    method              text NOT NULL
                        CONSTRAINT payments_method_format CHECK (subbilling.is_payment_method(method)),
    external_id         text,
    matched_by          text NOT NULL DEFAULT 'reference'
                        CONSTRAINT payments_matched_by_check CHECK (matched_by IN ('reference', 'hand')),
    payment_request_id  bigint,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    CONSTRAINT payments_external_id_unique UNIQUE (account_id, external_id)
);
CREATE INDEX payments_id_idx ON subbilling.payments (id);
CREATE INDEX payments_external_id_idx ON subbilling.payments (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX payments_invoice_idx ON subbilling.payments (account_id, invoice_id);
COMMENT ON TABLE subbilling.payments IS 'payments received on an account, matched to an invoice (by reference or by hand); booked bank / receivables / customer credit; immutable';

CREATE TABLE subbilling.unmatched_payments (
    id              bigint PRIMARY KEY DEFAULT pg_catalog.nextval('subbilling.payment_id_seq'::regclass),
    amount          subbilling.price NOT NULL
                    CONSTRAINT unmatched_payments_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    reference       text,
    received_on     date NOT NULL,
    method          text NOT NULL
                    CONSTRAINT unmatched_payments_method_format CHECK (subbilling.is_payment_method(method)),
    external_id     text UNIQUE,
    reason          text NOT NULL
                    CONSTRAINT unmatched_payments_reason_check
                    CHECK (reason IN ('no reference', 'invalid reference', 'unknown reference',
                                      'ambiguous reference', 'credit note reference')),
    status          text NOT NULL DEFAULT 'open'
                    CONSTRAINT unmatched_payments_status_check CHECK (status IN ('open', 'matched', 'refunded')),
    account_id      bigint,
    invoice_id      bigint,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT unmatched_payments_matched CHECK ((status = 'matched') = (account_id IS NOT NULL AND invoice_id IS NOT NULL)),
    CONSTRAINT unmatched_payments_resolved CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE INDEX unmatched_payments_open_idx ON subbilling.unmatched_payments (created_at) WHERE status = 'open';
COMMENT ON TABLE subbilling.unmatched_payments IS 'global exception queue: payments whose reference matched no invoice (no account yet, so not in the journal); match_payment() books one on an account under the same id, refund() sends one back';

CREATE TABLE subbilling.refunds (
    account_id      bigint NOT NULL REFERENCES subbilling.accounts (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    payment_id      bigint NOT NULL,
    amount          subbilling.price NOT NULL
                    CONSTRAINT refunds_amount_positive CHECK (subbilling.minor_units(amount) > 0),
    from_credit     subbilling.price NOT NULL,
    reopened        subbilling.price NOT NULL,
    refunded_on     date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES subbilling.payments (account_id, id),
    CONSTRAINT refunds_parts CHECK (amount = from_credit + reopened)
);
CREATE INDEX refunds_payment_idx ON subbilling.refunds (account_id, payment_id);
COMMENT ON TABLE subbilling.refunds IS 'money paid back on a payment: from_credit out of the customer credit, reopened put back on the payment''s invoice; immutable';

CREATE TABLE subbilling.payment_requests (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    invoice_id          bigint NOT NULL,
    payment_method_id   bigint NOT NULL,
    amount              subbilling.price NOT NULL,
    status              text NOT NULL DEFAULT 'requested'
                        CONSTRAINT payment_requests_status_check
                        CHECK (status IN ('requested', 'succeeded', 'failed', 'canceled')),
    attempt             integer NOT NULL DEFAULT 1
                        CONSTRAINT payment_requests_attempt_positive CHECK (attempt > 0),
    requested_on        date NOT NULL,
    next_attempt_on     date,
    failed_on           date,
    failure_reason      text,
    payment_id          bigint,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    FOREIGN KEY (account_id, payment_method_id) REFERENCES subbilling.payment_methods (account_id, id),
    FOREIGN KEY (account_id, payment_id) REFERENCES subbilling.payments (account_id, id),
    CONSTRAINT payment_requests_retry_only_when_failed CHECK (next_attempt_on IS NULL OR status = 'failed'),
    CONSTRAINT payment_requests_succeeded_payment CHECK ((status = 'succeeded') = (payment_id IS NOT NULL))
);
CREATE INDEX payment_requests_id_idx ON subbilling.payment_requests (id);
CREATE UNIQUE INDEX payment_requests_one_active ON subbilling.payment_requests (account_id, invoice_id)
    WHERE status = 'requested' OR next_attempt_on IS NOT NULL;
CREATE INDEX payment_requests_retry_idx ON subbilling.payment_requests (next_attempt_on)
    WHERE next_attempt_on IS NOT NULL;
COMMENT ON TABLE subbilling.payment_requests IS 'requests to charge an automatic payment method for an invoice: requested -> succeeded | failed (retry on next_attempt_on, or final) | canceled; one active request per invoice';

ALTER TABLE subbilling.payments
    ADD FOREIGN KEY (account_id, payment_request_id) REFERENCES subbilling.payment_requests (account_id, id);

-- payments and refunds are facts: corrections are new rows
CREATE TRIGGER payments_immutable
    BEFORE UPDATE OR DELETE ON subbilling.payments
    FOR EACH ROW EXECUTE FUNCTION subbilling.journal_immutable();
CREATE TRIGGER refunds_immutable
    BEFORE UPDATE OR DELETE ON subbilling.refunds
    FOR EACH ROW EXECUTE FUNCTION subbilling.journal_immutable();

-- ---------------------------------------------------------------- reopening a paid invoice

-- Billing's guard lets an issued invoice's status only move forward.  A
-- refund that puts money back on a paid invoice reopens it (paid -> open):
-- refund() names the invoice in subbilling_internal.reopen_invoice for the
-- one UPDATE, which then passes through invoices_reopen_guard instead.
CREATE FUNCTION subbilling.invoices_reopen_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR OLD.status <> 'paid' OR NEW.status <> 'open' OR NEW.paid_at IS NOT NULL
       OR (to_jsonb(NEW) - 'status' - 'paid_at') <> (to_jsonb(OLD) - 'status' - 'paid_at') THEN
        RAISE EXCEPTION 'invoice % can only be reopened (paid -> open, paid_at cleared)', coalesce(OLD.number, OLD.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.invoices_reopen_guard() IS 'trigger: the one change refund() makes to a paid invoice it puts money back on: paid -> open, paid_at cleared';

CREATE OR REPLACE TRIGGER invoices_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoices
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('subbilling_internal.reopen_invoice', true) IS DISTINCT FROM OLD.id::text)
    EXECUTE FUNCTION subbilling.invoices_guard();
CREATE TRIGGER invoices_reopen_guard
    BEFORE UPDATE OR DELETE ON subbilling.invoices
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('subbilling_internal.reopen_invoice', true) = OLD.id::text)
    EXECUTE FUNCTION subbilling.invoices_reopen_guard();

-- ---------------------------------------------------------------- hooks and helpers

-- Called whenever an invoice becomes fully paid, after its status is paid
-- and invoice.paid is written.  A no-op here: dunning replaces it (to lift
-- a payment stop).
CREATE FUNCTION subbilling.after_invoice_paid(account_id bigint, invoice_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    NULL;
END
$$;
COMMENT ON FUNCTION subbilling.after_invoice_paid(bigint, bigint) IS 'internal hook: called when an invoice becomes fully paid (after status paid and invoice.paid); no-op until dunning replaces it';

-- The account-local date of now().
CREATE FUNCTION subbilling.account_today(account_id bigint) RETURNS date
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.now() AT TIME ZONE a.time_zone)::date FROM subbilling.accounts a WHERE a.id = account_today.account_id
$$;
COMMENT ON FUNCTION subbilling.account_today(bigint) IS 'internal: today in the account''s time zone';

-- Serialises what consumes an account's customer credit (credit
-- application, refunds) per account: a transaction-level advisory lock
-- (two-key form, first key 1396899841, outside the event outbox's range).
CREATE FUNCTION subbilling.lock_account_credit(account_id bigint, wait boolean DEFAULT true) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(1396899841, (account_id % 2147483647)::integer);
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock(1396899841, (account_id % 2147483647)::integer);
END
$$;
COMMENT ON FUNCTION subbilling.lock_account_credit(bigint, boolean) IS 'internal: take (or with wait = false try) the transaction-level lock on an account''s customer credit';

-- Marks a fully paid invoice paid, announces it, calls the hook, and
-- settles its active payment request.
CREATE FUNCTION subbilling.invoice_paid(inv subbilling.invoices, via text, payment_id bigint DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    paid_at timestamptz;
BEGIN
    UPDATE subbilling.invoices x SET status = 'paid', paid_at = now()
     WHERE x.account_id = inv.account_id AND x.id = inv.id AND x.status IN ('open', 'uncollectible')
    RETURNING x.paid_at INTO paid_at;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE subbilling.payment_requests r
       SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
     WHERE r.account_id = inv.account_id AND r.invoice_id = inv.id
       AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL);
    PERFORM emit_event(inv.account_id, 'invoice.paid', inv.subscription_id,
        jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', inv.currency,
                           'total', inv.total::text, 'paid_at', paid_at, 'via', via, 'payment_id', payment_id),
        inv.id);
    PERFORM after_invoice_paid(inv.account_id, inv.id);
END
$$;
COMMENT ON FUNCTION subbilling.invoice_paid(subbilling.invoices, text, bigint) IS 'internal: an open or uncollectible invoice whose open amount reached zero becomes paid: status, event invoice.paid, after_invoice_paid(), its active payment request canceled';

-- Creates the payment (id given), books it against the locked invoice inv:
-- bank debit, receivables credit up to the open amount, the rest customer
-- credit; settles a payment request; marks the invoice paid when covered.
CREATE FUNCTION subbilling.post_payment(inv subbilling.invoices, payment_id bigint, amount subbilling.price,
                                        reference text, received_on date, method text, external_id text,
                                        matched_by text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    cur     text := inv.currency;
    zero    subbilling.price := price_minor(0, inv.currency);
    open_   subbilling.price;
    applied subbilling.price;
    excess  subbilling.price;
    req     subbilling.payment_requests;
    req_st  text;
BEGIN
    open_ := invoice_open_amount(inv.account_id, inv.id);
    applied := CASE WHEN inv.status IN ('open', 'uncollectible') AND inv.kind = 'invoice'
                    THEN least(amount, greatest(open_, zero)) ELSE zero END;
    excess := amount - applied;

    -- an active request for this invoice: an automatic payment settles it,
    -- another payment that covers the invoice cancels it
    SELECT * INTO req FROM subbilling.payment_requests r
     WHERE r.account_id = inv.account_id AND r.invoice_id = inv.id
       AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
       FOR UPDATE;
    IF FOUND THEN
        IF is_automatic_method(method) THEN
            req_st := 'succeeded';
        ELSIF applied = open_ THEN
            req_st := 'canceled';
        END IF;
    END IF;

    INSERT INTO subbilling.payments AS p (account_id, id, invoice_id, amount, reference, received_on, method,
                                          external_id, matched_by, payment_request_id)
    VALUES (inv.account_id, payment_id, inv.id, amount, reference, received_on, method, external_id, matched_by,
            CASE WHEN req_st = 'succeeded' THEN req.id END);
    IF req_st IS NOT NULL THEN
        UPDATE subbilling.payment_requests r
           SET status = req_st, next_attempt_on = NULL, updated_at = now(),
               payment_id = CASE WHEN req_st = 'succeeded' THEN post_payment.payment_id END
         WHERE r.account_id = req.account_id AND r.id = req.id;
    END IF;

    PERFORM book_entry(inv.account_id, 'payment', received_on,
                       ARRAY[ledger_code('bank', cur), ledger_code('receivables', cur), ledger_code('customer_credit', cur)],
                       ARRAY[amount, -applied, -excess], inv.id, payment_id,
                       format('payment %s on invoice %s', payment_id, inv.number));
    PERFORM emit_event(inv.account_id, 'payment.received', inv.subscription_id,
        jsonb_build_object('payment_id', payment_id, 'invoice_id', inv.id, 'number', inv.number,
                           'amount', amount::text, 'applied', applied::text, 'credited', excess::text,
                           'open_amount', (open_ - applied)::text, 'currency', cur,
                           'method', method, 'reference', reference, 'received_on', received_on,
                           'external_id', external_id, 'matched_by', matched_by,
                           'payment_request_id', CASE WHEN req_st = 'succeeded' THEN req.id END),
        inv.id);
    IF applied > zero AND applied = open_ THEN
        PERFORM invoice_paid(inv, 'payment', payment_id);
    END IF;
    RETURN payment_id;
END
$$;
COMMENT ON FUNCTION subbilling.post_payment(subbilling.invoices, bigint, subbilling.price, text, date, text, text, text) IS 'internal: record and book a payment on a locked invoice (bank debit; receivables credit up to the open amount; customer credit for the rest), settle its payment request, mark the invoice paid when covered; event payment.received';

-- The pg_notify text of an event row, in emit_event's format (payload
-- dropped above 7000 bytes), for events written in bulk.
CREATE FUNCTION subbilling.ledger_event_notification(ev subbilling.events) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN octet_length(n::text) > 7000 THEN (n - 'payload' || jsonb_build_object('truncated', true))::text
                ELSE n::text END
      FROM (SELECT jsonb_build_object('id', ev.id, 'type', ev.type, 'account_id', ev.account_id)
                   || CASE WHEN ev.subscription_id IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('subscription_id', ev.subscription_id) END
                   || CASE WHEN ev.invoice_id IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('invoice_id', ev.invoice_id) END
                   || jsonb_build_object('created_at', ev.created_at, 'payload', ev.payload) AS n) q
$$;
COMMENT ON FUNCTION subbilling.ledger_event_notification(subbilling.events) IS 'internal: the pg_notify payload of an event row written in bulk by book_invoices (the format of emit_event)';

-- NOTIFY for events that have no account (the unmatched queue): the same
-- channel and shape as emit_event, without an event id.
CREATE FUNCTION subbilling.notify_unaccounted(type text, payload jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF notify_enabled() THEN
        PERFORM pg_notify('subbilling', jsonb_build_object('type', type, 'created_at', now(), 'payload', payload)::text);
    END IF;
END
$$;
COMMENT ON FUNCTION subbilling.notify_unaccounted(text, jsonb) IS 'internal: pg_notify(''subbilling'') an event that belongs to no account (payment.unmatched, payment.refunded of an unmatched payment); unmatched_payments is its record';

-- ---------------------------------------------------------------- register_payment

CREATE FUNCTION subbilling.register_payment(amount subbilling.price, reference text, received_on date, method text,
                                            external_id text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    ref     text;
    m       text;
    ext     text;
    prev    record;
    hits    bigint[];
    inv     subbilling.invoices;
    reason  text;
    uid     bigint;
BEGIN
    IF amount IS NULL OR received_on IS NULL OR method IS NULL THEN
        RAISE EXCEPTION 'a payment needs an amount, a date and a method'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF minor_units(amount) <= 0 THEN
        RAISE EXCEPTION 'payment amount % is not positive', amount
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Money paid back is a refund().';
    END IF;
    IF NOT isfinite(received_on) THEN
        RAISE EXCEPTION 'payment date % is not a finite date', received_on
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    m := lower(btrim(method));
    IF NOT is_payment_method(m) THEN
        RAISE EXCEPTION 'invalid payment method "%"', method
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A method is a lower-case name: card, autogiro, bankgiro, bank_transfer, swish ...';
    END IF;
    ref := nullif(regexp_replace(reference, '\s', '', 'g'), '');
    ext := nullif(btrim(external_id), '');

    -- idempotency: the same external_id returns the same payment, unchanged
    IF ext IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(1396899842, hashtext(ext));
        SELECT u.id, u.amount, u.reference INTO prev FROM subbilling.unmatched_payments u WHERE u.external_id = ext;
        IF NOT FOUND THEN
            SELECT p.id, p.amount, p.reference INTO prev FROM subbilling.payments p WHERE p.external_id = ext LIMIT 1;
        END IF;
        IF FOUND THEN
            IF prev.amount::text <> amount::text OR prev.reference IS DISTINCT FROM ref THEN
                RAISE EXCEPTION 'payment "%" was registered before with other details', ext
                    USING ERRCODE = 'unique_violation',
                          DETAIL = format('Payment %s: amount %s, reference %s; now amount %s, reference %s.',
                                          prev.id, prev.amount, coalesce(prev.reference, 'none'), amount, coalesce(ref, 'none'));
            END IF;
            RETURN prev.id;
        END IF;
    END IF;

    -- the invoice by its reference
    IF ref IS NULL THEN
        reason := 'no reference';
    ELSIF ref !~ '^[0-9]{1,30}$' THEN
        reason := 'invalid reference';
    ELSE
        SELECT array_agg(i.id) INTO hits
          FROM (SELECT i.id FROM subbilling.invoices i WHERE i.reference = ref AND i.status <> 'draft' LIMIT 2) i;
        IF hits IS NULL THEN
            reason := 'unknown reference';
        ELSIF cardinality(hits) > 1 THEN
            reason := 'ambiguous reference';
        ELSE
            inv := invoice_for_update(hits[1]);
            IF inv.kind <> 'invoice' THEN
                reason := 'credit note reference';
            END IF;
        END IF;
    END IF;

    IF reason IS NOT NULL THEN
        INSERT INTO subbilling.unmatched_payments AS u (amount, reference, received_on, method, external_id, reason)
        VALUES (amount, ref, received_on, m, ext, reason)
        RETURNING u.id INTO uid;
        PERFORM notify_unaccounted('payment.unmatched',
            jsonb_build_object('unmatched_payment_id', uid, 'amount', amount::text, 'currency', currency(amount),
                               'reference', ref, 'received_on', received_on, 'method', m,
                               'external_id', ext, 'reason', reason));
        RETURN uid;
    END IF;

    IF currency(amount) <> inv.currency THEN
        RAISE EXCEPTION 'payment % is not in the currency % of invoice %', amount, inv.currency, inv.number
            USING ERRCODE = 'data_exception';
    END IF;
    RETURN post_payment(inv, nextval('subbilling.payment_id_seq'::regclass), amount, ref, received_on, m, ext,
                        'reference');
END
$$;
COMMENT ON FUNCTION subbilling.register_payment(subbilling.price, text, date, text, text) IS 'register a payment: matched to an invoice by its payment reference (OCR/KID/FIK...) and booked (the part above the open amount becomes customer credit), else queued in unmatched_payments; idempotent on external_id; returns the payment id; events payment.received, invoice.paid (NOTIFY payment.unmatched)';

-- ---------------------------------------------------------------- match_payment

CREATE FUNCTION subbilling.match_payment(payment_id bigint, invoice_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    u       subbilling.unmatched_payments;
    inv     subbilling.invoices;
    pid     bigint;
BEGIN
    SELECT * INTO u FROM subbilling.unmatched_payments x WHERE x.id = payment_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unmatched payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF u.status <> 'open' THEN
        RAISE EXCEPTION 'unmatched payment % is %, not open', u.id, u.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    inv := invoice_for_update(invoice_id);
    IF inv.kind <> 'invoice' OR inv.status = 'draft' THEN
        RAISE EXCEPTION 'invoice % cannot take a payment', coalesce(inv.number, inv.id::text)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It is a %s with status %s; payments go to issued invoices.', replace(inv.kind, '_', ' '), inv.status);
    END IF;
    IF currency(u.amount) <> inv.currency THEN
        RAISE EXCEPTION 'payment % is not in the currency % of invoice %', u.amount, inv.currency, inv.number
            USING ERRCODE = 'data_exception';
    END IF;
    pid := post_payment(inv, u.id, u.amount, u.reference, u.received_on, u.method, u.external_id, 'hand');
    UPDATE subbilling.unmatched_payments x
       SET status = 'matched', account_id = inv.account_id, invoice_id = inv.id, resolved_at = now()
     WHERE x.id = u.id;
    RETURN pid;
END
$$;
COMMENT ON FUNCTION subbilling.match_payment(bigint, bigint) IS 'settle an unmatched payment by hand: book it on the invoice''s account and invoice under the same id, as register_payment would have; returns the payment id';

-- ---------------------------------------------------------------- refund

CREATE FUNCTION subbilling.refund(payment_id bigint, amount subbilling.price)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    u           subbilling.unmatched_payments;
    p           subbilling.payments;
    inv         subbilling.invoices;
    cur         text;
    zero        subbilling.price;
    remaining   subbilling.price;
    credit      subbilling.price;
    open_       subbilling.price;
    capacity    subbilling.price;
    from_credit subbilling.price;
    reopen      subbilling.price;
    today       date;
    rid         bigint;
BEGIN
    IF amount IS NULL THEN
        RAISE EXCEPTION 'a refund needs an amount'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF minor_units(amount) <= 0 THEN
        RAISE EXCEPTION 'refund amount % is not positive', amount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- an unmatched payment goes back whole; it was never booked
    SELECT * INTO u FROM subbilling.unmatched_payments x WHERE x.id = payment_id FOR UPDATE;
    IF FOUND AND u.status <> 'matched' THEN
        IF u.status = 'refunded' THEN
            RAISE EXCEPTION 'unmatched payment % is already refunded', u.id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF currency(amount) <> currency(u.amount) THEN
            RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, u.id, u.amount
                USING ERRCODE = 'data_exception';
        END IF;
        IF amount <> u.amount THEN
            RAISE EXCEPTION 'an unmatched payment is refunded whole'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Payment %s is %s; the refund asked for %s.', u.id, u.amount, amount);
        END IF;
        UPDATE subbilling.unmatched_payments x SET status = 'refunded', resolved_at = now() WHERE x.id = u.id;
        PERFORM notify_unaccounted('payment.refunded',
            jsonb_build_object('unmatched_payment_id', u.id, 'amount', amount::text, 'currency', currency(amount),
                               'reference', u.reference, 'external_id', u.external_id));
        RETURN u.id;
    END IF;

    SELECT * INTO p FROM subbilling.payments x WHERE x.id = payment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment % does not exist', coalesce(payment_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    cur := currency(p.amount);
    zero := price_minor(0, cur);
    IF currency(amount) <> cur THEN
        RAISE EXCEPTION 'refund % is not in the currency of payment % (%)', amount, p.id, p.amount
            USING ERRCODE = 'data_exception';
    END IF;
    PERFORM lock_account_credit(p.account_id);
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = p.account_id AND x.id = p.invoice_id FOR UPDATE;

    remaining := p.amount - coalesce((SELECT sum(r.amount) FROM subbilling.refunds r
                                       WHERE r.account_id = p.account_id AND r.payment_id = p.id), zero);
    credit := greatest(customer_credit(p.account_id), zero);
    open_ := invoice_open_amount(p.account_id, p.invoice_id);
    -- what may go back on the invoice: what this payment paid on it (less
    -- what earlier refunds reopened), at most what is uncredited and not open
    capacity := CASE WHEN inv.kind = 'invoice' AND inv.status IN ('open', 'paid', 'uncollectible') THEN
                    greatest(least(-coalesce((SELECT sum(l.amount)
                                                FROM subbilling.journal_lines l
                                                JOIN subbilling.journal_entries e ON e.account_id = l.account_id AND e.id = l.entry_id
                                               WHERE e.account_id = p.account_id AND e.payment_id = p.id
                                                 AND l.invoice_id = p.invoice_id), zero),
                                   invoice_uncredited(inv) - open_), zero)
                ELSE zero END;
    from_credit := least(amount, credit);
    reopen := amount - from_credit;
    IF amount > remaining OR reopen > capacity THEN
        RAISE EXCEPTION 'refund % is more than the refundable %', amount, least(remaining, credit + capacity)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Payment %s of %s: %s not yet refunded; customer credit %s; %s may go back on invoice %s.',
                                  p.id, p.amount, remaining, credit, capacity, inv.number);
    END IF;

    today := account_today(p.account_id);
    INSERT INTO subbilling.refunds AS r (account_id, payment_id, amount, from_credit, reopened, refunded_on)
    VALUES (p.account_id, p.id, amount, from_credit, reopen, today)
    RETURNING r.id INTO rid;
    PERFORM book_entry(p.account_id, 'refund', today,
                       ARRAY[ledger_code('bank', cur), ledger_code('customer_credit', cur), ledger_code('receivables', cur)],
                       ARRAY[-amount, from_credit, reopen], p.invoice_id, p.id,
                       format('refund %s of payment %s', rid, p.id));
    IF reopen > zero AND inv.status = 'paid' THEN
        PERFORM set_config('subbilling_internal.reopen_invoice', inv.id::text, true);
        UPDATE subbilling.invoices x SET status = 'open', paid_at = NULL
         WHERE x.account_id = inv.account_id AND x.id = inv.id;
        PERFORM set_config('subbilling_internal.reopen_invoice', '', true);
        PERFORM emit_event(inv.account_id, 'invoice.reopened', inv.subscription_id,
            jsonb_build_object('invoice_id', inv.id, 'number', inv.number, 'currency', cur,
                               'open_amount', (open_ + reopen)::text, 'refund_id', rid, 'payment_id', p.id),
            inv.id);
    END IF;
    PERFORM emit_event(p.account_id, 'payment.refunded', inv.subscription_id,
        jsonb_build_object('refund_id', rid, 'payment_id', p.id, 'invoice_id', p.invoice_id, 'currency', cur,
                           'amount', amount::text, 'from_credit', from_credit::text, 'reopened', reopen::text,
                           'refunded_on', today),
        p.invoice_id);
    RETURN rid;
END
$$;
COMMENT ON FUNCTION subbilling.refund(bigint, subbilling.price) IS 'pay money back on a payment: first out of the customer credit, the rest put back on the payment''s invoice (reopening it if it was paid); bank credit; refuses more than refundable (22023); an unmatched payment goes back whole; returns the refund id (the payment id for an unmatched payment); event payment.refunded';

-- ---------------------------------------------------------------- payment requests

-- Payload of payment.requested for a request row.
CREATE FUNCTION subbilling.payment_request_payload(r subbilling.payment_requests) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                              'reference', i.reference, 'due_date', i.due_date, 'currency', currency(r.amount),
                              'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                              'payment_method_id', r.payment_method_id, 'method', pm.kind, 'attempt', r.attempt,
                              'requested_on', r.requested_on)
      FROM subbilling.invoices i, subbilling.payment_methods pm
     WHERE i.account_id = r.account_id AND i.id = r.invoice_id
       AND pm.account_id = r.account_id AND pm.id = r.payment_method_id
$$;
COMMENT ON FUNCTION subbilling.payment_request_payload(subbilling.payment_requests) IS 'internal: the payload of a payment.requested event';

CREATE FUNCTION subbilling.payment_failed(payment_request_id bigint, reason text, failed_on date DEFAULT current_date)
    RETURNS date
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       subbilling.payment_requests;
    days    integer[];
    nxt     date;
    inv     subbilling.invoices;
BEGIN
    IF failed_on IS NULL OR NOT isfinite(failed_on) THEN
        RAISE EXCEPTION 'failed_on must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO r FROM subbilling.payment_requests x WHERE x.id = payment_request_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment request % does not exist', coalesce(payment_request_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF r.status <> 'requested' THEN
        RAISE EXCEPTION 'payment request % is %, not requested', r.id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO inv FROM subbilling.invoices x WHERE x.account_id = r.account_id AND x.id = r.invoice_id;
    SELECT s.retry_days INTO days FROM subbilling.payment_settings s;
    IF r.attempt <= coalesce(cardinality(days), 0) AND inv.status IN ('open', 'uncollectible') THEN
        nxt := failed_on + days[r.attempt];
    END IF;
    UPDATE subbilling.payment_requests x
       SET status = 'failed', failed_on = payment_failed.failed_on, failure_reason = reason,
           next_attempt_on = nxt, updated_at = now()
     WHERE x.account_id = r.account_id AND x.id = r.id;
    PERFORM emit_event(r.account_id, 'payment.failed', inv.subscription_id,
        jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', inv.number,
                           'currency', currency(r.amount), 'amount', r.amount::text, 'attempt', r.attempt,
                           'reason', reason, 'failed_on', failed_on, 'next_attempt_on', nxt, 'final', nxt IS NULL),
        r.invoice_id);
    RETURN nxt;
END
$$;
COMMENT ON FUNCTION subbilling.payment_failed(bigint, text, date) IS 'the application reports a failed automatic payment: the request becomes failed and, while payment_settings.retry_days has entries left, a retry is scheduled (returned; NULL = no more retries, the invoice stays open for dunning); event payment.failed';

CREATE FUNCTION subbilling.run_payment_retries(as_of date DEFAULT current_date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    r       record;
    n       integer := 0;
    req     subbilling.payment_requests;
BEGIN
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR r IN
        SELECT x.account_id, x.id, i.status AS invoice_status,
               invoice_open_amount(x.account_id, x.invoice_id) AS open_amount,
               pm.active AS method_active
          FROM subbilling.payment_requests x
          JOIN subbilling.invoices i ON i.account_id = x.account_id AND i.id = x.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = x.account_id AND pm.id = x.payment_method_id
         WHERE x.next_attempt_on <= as_of
         ORDER BY x.next_attempt_on, x.account_id, x.id
           FOR UPDATE OF x SKIP LOCKED
    LOOP
        IF r.invoice_status NOT IN ('open', 'uncollectible') OR minor_units(r.open_amount) <= 0 OR NOT r.method_active THEN
            UPDATE subbilling.payment_requests x SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
             WHERE x.account_id = r.account_id AND x.id = r.id;
            CONTINUE;
        END IF;
        UPDATE subbilling.payment_requests x
           SET status = 'requested', attempt = x.attempt + 1, amount = r.open_amount, requested_on = as_of,
               next_attempt_on = NULL, updated_at = now()
         WHERE x.account_id = r.account_id AND x.id = r.id
        RETURNING x.* INTO req;
        PERFORM emit_event(req.account_id, 'payment.requested',
                           (SELECT i.subscription_id FROM subbilling.invoices i
                             WHERE i.account_id = req.account_id AND i.id = req.invoice_id),
                           payment_request_payload(req), req.invoice_id);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.run_payment_retries(date) IS 'request again every failed automatic payment whose retry is due on or before as_of (amount = what is still open; event payment.requested with the next attempt number); requests of invoices no longer open are canceled; returns how many were requested';

-- ============================================================================
-- Booking issued documents (SPEC section 5), set-based for billing batches:
--
--   book_invoices(account_ids, invoice_ids)
--     1. every issued invoice / credit note not yet booked: one entry
--        (receivables = total; revenue per account code, VAT per rate)
--     2. every void invoice booked and not yet reversed: a reversing entry
--        (what had been paid on it becomes customer credit)
--     3. credit notes: applied to the invoice they credit (up to its open
--        amount), the rest becomes customer credit
--     4. customer credit of the accounts: applied to their open invoices,
--        oldest due first
--     5. invoices whose open amount reached zero: paid (invoice.paid,
--        after_invoice_paid)
--     6. payment requests (payment.requested) for the new invoices of
--        accounts whose default payment method is automatic
--
-- The billing engine's finalize paths call it with the documents they
-- issue; calling it again books nothing twice.
-- ============================================================================

-- The revenue account of an invoice line: fees by the fees mapping; else
-- the product's own revenue row, else by the line's VAT rate, else any
-- revenue row; 42704 when nothing maps.
CREATE FUNCTION subbilling.revenue_code(currency text, product_code text, rate numeric, is_fee boolean)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN is_fee THEN ledger_code('fees', currency)
                ELSE coalesce(ledger_mapping('revenue', currency, product_code, true),
                              ledger_mapping('revenue_rate', currency, rate_detail(rate), true),
                              ledger_mapping('revenue', currency, NULL),
                              ledger_code('revenue_rate', currency, rate_detail(rate))) END
$$;
COMMENT ON FUNCTION subbilling.revenue_code(text, text, numeric, boolean) IS 'internal: the revenue account of an invoice line (fees; product row; VAT-rate row; any revenue row), 42704 if unmapped';

CREATE FUNCTION subbilling.book_invoices(account_ids bigint[], invoice_ids bigint[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    notify  boolean := notify_enabled();
    booked  integer := 0;
    n       integer;
    t_acc   bigint[] := '{}';       -- invoices whose open amount may have reached zero
    t_inv   bigint[] := '{}';
    c_acc   bigint[];               -- accounts whose credit is applied
    l_acc   bigint[];               -- open invoices locked for credit application
    l_inv   bigint[];
    a_acc   bigint[];
    a_inv   bigint[];
    p_acc   bigint[];
    p_inv   bigint[];
    bad     text;
    has_void boolean;
    has_cn  boolean;
BEGIN
    IF coalesce(cardinality(account_ids), 0) <> coalesce(cardinality(invoice_ids), 0) THEN
        RAISE EXCEPTION 'book_invoices needs one account id per invoice id'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s account ids and %s invoice ids.',
                                  coalesce(cardinality(account_ids), 0), coalesce(cardinality(invoice_ids), 0));
    END IF;
    IF coalesce(cardinality(invoice_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM outbox_reserve();
    SELECT coalesce(bool_or(i.status = 'void'), false), coalesce(bool_or(i.kind = 'credit_note'), false)
      INTO has_void, has_cn
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id;

    -- 1. issued documents not yet booked
    WITH d AS MATERIALIZED (
        SELECT i.account_id, i.id, i.kind, i.currency, i.total, i.issue_date, i.number,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.status IN ('open', 'paid', 'uncollectible')
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries e
                            WHERE e.account_id = i.account_id AND e.invoice_id = i.id
                              AND e.kind IN ('invoice', 'credit_note'))
    ),
    cur AS MATERIALIZED (
        SELECT c.currency, ledger_code('receivables', c.currency) AS rc
          FROM (SELECT DISTINCT d.currency FROM d) c
    ),
    -- the lines summed per plan, fee or not, and VAT rate first (an invoice
    -- bills several periods of the same plan): every later step, the plan
    -- and product lookups and the joins to the account codes, works on
    -- these few sums instead of every line
    dp AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
               l.kind = 'fee' AS is_fee, l.tax_rate, sum(l.net) AS net, sum(l.tax) AS tax
          FROM d
          JOIN subbilling.invoice_lines l ON l.account_id = d.account_id AND l.invoice_id = d.id
         GROUP BY d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, d.currency, l.plan_id,
                  l.kind = 'fee', l.tax_rate
    ),
    dl AS MATERIALIZED (
        SELECT dp.account_id, dp.eid, dp.kind, dp.issue_date, dp.id, dp.number, dp.currency, dp.is_fee,
               p.code AS product, dp.tax_rate, dp.net, dp.tax
          FROM dp
          LEFT JOIN subbilling.plans pl ON pl.id = dp.plan_id
          LEFT JOIN subbilling.products p ON p.id = pl.product_id
    ),
    rev AS MATERIALIZED (
        SELECT k.currency, k.is_fee, k.product, k.tax_rate,
               revenue_code(k.currency, k.product, k.tax_rate, k.is_fee) AS code
          FROM (SELECT DISTINCT dl.currency, dl.is_fee, dl.product, dl.tax_rate FROM dl) k
    ),
    vat AS MATERIALIZED (
        SELECT k.currency, k.tax_rate, ledger_code('vat', k.currency, rate_detail(k.tax_rate)) AS code
          FROM (SELECT DISTINCT dl.currency, dl.tax_rate FROM dl WHERE minor_units(dl.tax) <> 0) k
    ),
    -- every line carries its document, and entries and lines come from the
    -- lines alone: no join between the batch-sized intermediate results,
    -- whose row estimates are poor while a batch is being written
    ln AS MATERIALIZED (
        SELECT d.account_id, d.eid, d.kind, d.issue_date, d.id, d.number, cur.rc AS code, d.total AS amount,
               'receivables'::text AS subledger, d.id AS invoice_id, 0 AS ord
          FROM d JOIN cur ON cur.currency = d.currency
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code, -sum(dl.net), NULL, NULL, 1
          FROM dl JOIN rev ON rev.currency = dl.currency AND rev.is_fee = dl.is_fee
                          AND rev.product IS NOT DISTINCT FROM dl.product AND rev.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, rev.code
        UNION ALL
        SELECT dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code, -sum(dl.tax), NULL, NULL, 2
          FROM dl JOIN vat ON vat.currency = dl.currency AND vat.tax_rate = dl.tax_rate
         GROUP BY dl.account_id, dl.eid, dl.kind, dl.issue_date, dl.id, dl.number, vat.code
    ),
    nz AS MATERIALIZED (
        SELECT q.* FROM (SELECT ln.*, count(*) OVER (PARTITION BY ln.account_id, ln.eid) AS n
                           FROM ln WHERE minor_units(ln.amount) <> 0) q
         WHERE q.n >= 2
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT DISTINCT ON (nz.account_id, nz.eid) nz.account_id, nz.eid, nz.kind, nz.issue_date, nz.id,
               replace(nz.kind, '_', ' ') || ' ' || nz.number
          FROM nz
         ORDER BY nz.account_id, nz.eid
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT nz.account_id, nz.eid, nz.code, nz.amount, nz.subledger, nz.invoice_id
          FROM nz
         ORDER BY nz.account_id, nz.eid, nz.ord, nz.code
    )
    SELECT (SELECT count(*) FROM ent),
           coalesce(array_agg(d.account_id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}'),
           coalesce(array_agg(d.id) FILTER (WHERE d.kind = 'invoice' AND minor_units(d.total) = 0), '{}')
      INTO booked, t_acc, t_inv
      FROM d;

    -- 2. void invoices: reverse their booking once; what was paid on them
    --    becomes customer credit.  A booked credit note is final.
    IF has_void THEN
    SELECT c.number INTO bad
      FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
      JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
     WHERE c.kind = 'credit_note' AND c.status = 'void'
       AND EXISTS (SELECT 1 FROM subbilling.journal_entries e
                    WHERE e.account_id = c.account_id AND e.invoice_id = c.id AND e.kind = 'credit_note')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'credit note % cannot be voided', bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A credit note is booked and applied when it is issued.',
                  HINT = 'Issue a new invoice for what the credit note should not have credited.';
    END IF;
    WITH v AS MATERIALIZED (
        SELECT i.account_id, i.id, i.currency, i.total, i.number, e.id AS booking,
               invoice_open_amount(i.account_id, i.id) AS open_amount,
               coalesce((i.voided_at AT TIME ZONE a.time_zone)::date, i.issue_date) AS booked_on,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
          JOIN subbilling.accounts a ON a.id = i.account_id
          JOIN subbilling.journal_entries e ON e.account_id = i.account_id AND e.invoice_id = i.id AND e.kind = 'invoice'
         WHERE i.status = 'void'
           AND NOT EXISTS (SELECT 1 FROM subbilling.journal_entries r
                            WHERE r.account_id = i.account_id AND r.invoice_id = i.id AND r.kind = 'void')
    ),
    ln AS MATERIALIZED (
        SELECT v.account_id, v.eid, l.ledger_code AS code, -l.amount AS amount, l.subledger, NULL::bigint AS invoice_id,
               1 AS ord, l.id AS lid
          FROM v JOIN subbilling.journal_lines l ON l.account_id = v.account_id AND l.entry_id = v.booking
         WHERE l.subledger IS DISTINCT FROM 'receivables'
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('receivables', v.currency), -v.open_amount, 'receivables', v.id, 0, 0
          FROM v WHERE minor_units(v.open_amount) <> 0
        UNION ALL
        SELECT v.account_id, v.eid, ledger_code('customer_credit', v.currency), v.open_amount - v.total,
               'customer_credit', NULL, 2, 0
          FROM v WHERE v.open_amount <> v.total
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT v.account_id, v.eid, 'void', v.booked_on, v.id, 'void invoice ' || v.number FROM v
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord, ln.lid
    ),
    rq AS (
        UPDATE subbilling.payment_requests r
           SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
          FROM v
         WHERE r.account_id = v.account_id AND r.invoice_id = v.id
           AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
        RETURNING r.id
    )
    SELECT booked + count(*) INTO booked FROM v;
    END IF;

    -- 3. credit notes: onto the invoice they credit, the rest to customer credit
    IF has_cn THEN
    PERFORM 1
       FROM subbilling.invoices o
      WHERE (o.account_id, o.id) IN (SELECT c.account_id, c.credits_invoice_id
                                       FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                                       JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
                                      WHERE c.kind = 'credit_note' AND c.credits_invoice_id IS NOT NULL)
      ORDER BY o.account_id, o.id
        FOR UPDATE OF o;
    WITH c AS MATERIALIZED (
        SELECT c.account_id, c.id, c.number, c.currency, c.credits_invoice_id AS original, c.issue_date,
               -invoice_open_amount(c.account_id, c.id) AS amount
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.invoices c ON c.account_id = k.account_id AND c.id = k.invoice_id
         WHERE c.kind = 'credit_note' AND c.status <> 'void'
    ),
    c2 AS MATERIALIZED (
        SELECT c.*, o.number AS original_number,
               CASE WHEN o.kind = 'invoice' AND o.status IN ('open', 'uncollectible')
                    THEN greatest(invoice_open_amount(o.account_id, o.id), price_minor(0, c.currency))
                    ELSE price_minor(0, c.currency) END AS original_open,
               sum(c.amount) OVER (PARTITION BY c.account_id, c.original ORDER BY c.id) AS cum,
               nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
          FROM c
          LEFT JOIN subbilling.invoices o ON o.account_id = c.account_id AND o.id = c.original
         WHERE minor_units(c.amount) > 0
    ),
    c3 AS MATERIALIZED (
        SELECT c2.*,
               least(c2.amount, greatest(c2.original_open - (c2.cum - c2.amount), price_minor(0, c2.currency))) AS onto
          FROM c2
    ),
    ln AS MATERIALIZED (
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency) AS code, c3.amount,
               'receivables'::text AS subledger, c3.id AS invoice_id, 0 AS ord
          FROM c3
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('receivables', c3.currency), -c3.onto, 'receivables', c3.original, 1
          FROM c3 WHERE minor_units(c3.onto) <> 0
        UNION ALL
        SELECT c3.account_id, c3.eid, ledger_code('customer_credit', c3.currency), c3.onto - c3.amount,
               'customer_credit', NULL, 2
          FROM c3 WHERE c3.onto <> c3.amount
    ),
    ent AS (
        INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
        SELECT c3.account_id, c3.eid, 'allocation', c3.issue_date, c3.id,
               'credit note ' || c3.number || coalesce(' on invoice ' || c3.original_number, '')
          FROM c3
        RETURNING e.id
    ),
    lin AS (
        INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
        SELECT ln.account_id, ln.eid, ln.code, ln.amount, ln.subledger, ln.invoice_id
          FROM ln ORDER BY ln.account_id, ln.eid, ln.ord
    )
    SELECT t_acc || coalesce(array_agg(c3.account_id) FILTER (WHERE minor_units(c3.onto) > 0), '{}'),
           t_inv || coalesce(array_agg(c3.original) FILTER (WHERE minor_units(c3.onto) > 0), '{}')
      INTO t_acc, t_inv
      FROM c3
     WHERE (SELECT count(*) FROM ent) >= 0;
    END IF;

    -- 4. customer credit onto open invoices, oldest due first; an account
    --    whose credit another transaction is using is left for next time
    SELECT array_agg(q.account_id) INTO c_acc
      FROM (SELECT l.account_id FROM subbilling.journal_lines l
             WHERE l.subledger = 'customer_credit'
               AND l.account_id IN (SELECT DISTINCT k FROM unnest(account_ids) k)
             GROUP BY l.account_id
            HAVING minor_units(sum(l.amount)) < 0
             ORDER BY l.account_id) q
     WHERE lock_account_credit(q.account_id, false);
    IF c_acc IS NOT NULL THEN
        -- lock the open invoices that the credit reaches (oldest due first);
        -- their open amounts are read again under the lock below
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.due_date, s.open_amount
              FROM subbilling.invoices i
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id IS NOT NULL
                     GROUP BY l.account_id, l.invoice_id
                    HAVING minor_units(sum(l.amount)) > 0) s ON s.account_id = i.account_id AND s.invoice_id = i.id
             WHERE i.account_id = ANY (c_acc) AND i.kind = 'invoice' AND i.status IN ('open', 'uncollectible')
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.account_id, o.id, cr.credit,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) - o.open_amount AS before
              FROM o JOIN cr ON cr.account_id = o.account_id
        )
        SELECT array_agg(q.account_id), array_agg(q.id) INTO l_acc, l_inv
          FROM (SELECT i.account_id, i.id FROM subbilling.invoices i
                 WHERE (i.account_id, i.id) IN (SELECT w.account_id, w.id FROM w WHERE w.before < w.credit)
                 ORDER BY i.account_id, i.id
                   FOR UPDATE SKIP LOCKED) q;
    END IF;
    IF l_inv IS NOT NULL THEN
        WITH o AS MATERIALIZED (
            SELECT i.account_id, i.id, i.number, i.subscription_id, i.currency, i.due_date, s.open_amount
              FROM unnest(l_acc, l_inv) AS k(account_id, invoice_id)
              JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
              JOIN (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
                      FROM subbilling.journal_lines l
                     WHERE l.account_id = ANY (c_acc) AND l.invoice_id = ANY (l_inv)
                     GROUP BY l.account_id, l.invoice_id) s ON s.account_id = i.account_id AND s.invoice_id = i.id
        ),
        cr AS MATERIALIZED (
            SELECT x.account_id, customer_credit(x.account_id) AS credit,
                   coalesce((SELECT max(i.issue_date)
                               FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)
                               JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
                              WHERE k.account_id = x.account_id), account_today(x.account_id)) AS booked_on
              FROM unnest(c_acc) AS x(account_id)
        ),
        w AS MATERIALIZED (
            SELECT o.*, cr.credit, cr.booked_on,
                   sum(o.open_amount) OVER (PARTITION BY o.account_id ORDER BY o.due_date, o.id) AS cum
              FROM o JOIN cr ON cr.account_id = o.account_id
             WHERE minor_units(o.open_amount) > 0
        ),
        al AS MATERIALIZED (
            SELECT q.*, nextval('subbilling.journal_entries_id_seq'::regclass) AS eid
              FROM (SELECT w.*, least(w.open_amount, w.credit - (w.cum - w.open_amount)) AS amount
                      FROM w
                     WHERE w.credit > w.cum - w.open_amount
                     ORDER BY w.account_id, w.due_date, w.id) q
        ),
        ent AS (
            INSERT INTO subbilling.journal_entries AS e (account_id, id, kind, booked_on, invoice_id, memo)
            SELECT al.account_id, al.eid, 'credit_applied', al.booked_on, al.id, 'customer credit on invoice ' || al.number
              FROM al
            RETURNING e.id
        ),
        lin AS (
            INSERT INTO subbilling.journal_lines (account_id, entry_id, ledger_code, amount, subledger, invoice_id)
            SELECT al.account_id, al.eid, x.code, x.amount, x.subledger, x.invoice_id
              FROM al
             CROSS JOIN LATERAL (VALUES (0, ledger_code('customer_credit', al.currency), al.amount, 'customer_credit', NULL::bigint),
                                        (1, ledger_code('receivables', al.currency), -al.amount, 'receivables', al.id))
                   AS x(ord, code, amount, subledger, invoice_id)
             ORDER BY al.account_id, al.eid, x.ord
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT al.account_id, 'credit.applied', al.subscription_id, al.id,
                   jsonb_build_object('invoice_id', al.id, 'number', al.number, 'currency', al.currency,
                                      'amount', al.amount::text, 'open_amount', (al.open_amount - al.amount)::text,
                                      'credit_left', (al.credit - al.cum + al.open_amount - al.amount)::text)
              FROM al
             ORDER BY al.account_id, al.eid
            RETURNING e.*
        ),
        nt AS (
            SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) AS n FROM ev WHERE notify
        )
        SELECT coalesce(array_agg(al.account_id), '{}'), coalesce(array_agg(al.id), '{}') INTO a_acc, a_inv
          FROM al
         WHERE (SELECT count(*) FROM ent) + (SELECT nt.n FROM nt) >= 0 AND al.amount = al.open_amount;
        t_acc := t_acc || a_acc;
        t_inv := t_inv || a_inv;
    END IF;

    -- 5. invoices whose open amount reached zero are paid
    IF cardinality(t_inv) > 0 THEN
        WITH k AS MATERIALIZED (
            SELECT q.account_id, q.invoice_id
              FROM (SELECT DISTINCT t.account_id, t.invoice_id FROM unnest(t_acc, t_inv) AS t(account_id, invoice_id)) q
             WHERE minor_units(invoice_open_amount(q.account_id, q.invoice_id)) = 0
        ),
        p AS (
            UPDATE subbilling.invoices x
               SET status = 'paid', paid_at = now()
              FROM k
             WHERE x.account_id = k.account_id AND x.id = k.invoice_id
               AND x.kind = 'invoice' AND x.status IN ('open', 'uncollectible')
            RETURNING x.*
        ),
        rq AS (
            UPDATE subbilling.payment_requests r
               SET status = 'canceled', next_attempt_on = NULL, updated_at = now()
              FROM p
             WHERE r.account_id = p.account_id AND r.invoice_id = p.id
               AND (r.status = 'requested' OR r.next_attempt_on IS NOT NULL)
            RETURNING r.id
        ),
        ev AS (
            INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
            SELECT p.account_id, 'invoice.paid', p.subscription_id, p.id,
                   jsonb_build_object('invoice_id', p.id, 'number', p.number, 'currency', p.currency,
                                      'total', p.total::text, 'paid_at', p.paid_at,
                                      'via', CASE WHEN minor_units(p.total) = 0 THEN 'zero total' ELSE 'credit' END,
                                      'payment_id', NULL)
              FROM p
             ORDER BY p.account_id, p.id
            RETURNING e.*
        ),
        nt AS (
            SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) AS n FROM ev WHERE notify
        )
        SELECT array_agg(p.account_id ORDER BY p.account_id, p.id), array_agg(p.id ORDER BY p.account_id, p.id)
          INTO p_acc, p_inv
          FROM p
         WHERE (SELECT count(*) FROM rq) + (SELECT nt.n FROM nt) >= 0;
        IF p_inv IS NOT NULL THEN
            PERFORM after_invoice_paid(k.account_id, k.invoice_id)
               FROM unnest(p_acc, p_inv) WITH ORDINALITY AS k(account_id, invoice_id, ord)
              ORDER BY k.ord;
        END IF;
    END IF;

    -- 6. payment requests for new open invoices of accounts that pay automatically
    WITH c AS MATERIALIZED (
        SELECT i.account_id, i.id, pm.id AS pm_id, i.issue_date
          FROM (SELECT DISTINCT k.account_id, k.invoice_id
                  FROM unnest(account_ids, invoice_ids) AS k(account_id, invoice_id)) k
          JOIN subbilling.payment_methods pm ON pm.account_id = k.account_id AND pm.is_default
                                            AND pm.active AND pm.automatic
          JOIN subbilling.invoices i ON i.account_id = k.account_id AND i.id = k.invoice_id
         WHERE i.kind = 'invoice' AND i.status = 'open'
           AND NOT EXISTS (SELECT 1 FROM subbilling.payment_requests x
                            WHERE x.account_id = i.account_id AND x.invoice_id = i.id)
    ),
    q AS MATERIALIZED (
        SELECT c.*, invoice_open_amount(c.account_id, c.id) AS open_amount FROM c
    ),
    r AS (
        INSERT INTO subbilling.payment_requests AS r (account_id, invoice_id, payment_method_id, amount, requested_on)
        SELECT q.account_id, q.id, q.pm_id, q.open_amount, q.issue_date
          FROM q
         WHERE minor_units(q.open_amount) > 0
         ORDER BY q.account_id, q.id
        RETURNING r.*
    ),
    ev AS (
        INSERT INTO subbilling.events AS e (account_id, type, subscription_id, invoice_id, payload)
        SELECT r.account_id, 'payment.requested', i.subscription_id, r.invoice_id,
               jsonb_build_object('payment_request_id', r.id, 'invoice_id', r.invoice_id, 'number', i.number,
                                  'reference', i.reference, 'due_date', i.due_date, 'currency', i.currency,
                                  'amount', r.amount::text, 'amount_minor', minor_units(r.amount),
                                  'payment_method_id', r.payment_method_id, 'method', pm.kind,
                                  'attempt', r.attempt, 'requested_on', r.requested_on)
          FROM r
          JOIN subbilling.invoices i ON i.account_id = r.account_id AND i.id = r.invoice_id
          JOIN subbilling.payment_methods pm ON pm.account_id = r.account_id AND pm.id = r.payment_method_id
         ORDER BY r.account_id, r.id
        RETURNING e.*
    )
    SELECT count(pg_notify('subbilling', ledger_event_notification(ev))) INTO n FROM ev WHERE notify;

    RETURN booked;
END
$$;
COMMENT ON FUNCTION subbilling.book_invoices(bigint[], bigint[]) IS 'book issued invoices and credit notes (receivables, revenue per account, VAT per rate) and reverse void ones, once each; apply credit notes and customer credit to open invoices (paid when covered); create payment requests for accounts paying automatically; set-based; returns the number of entries booked or reversed';

-- ============================================================================
-- Ledger views (SPEC section 5): each customer's ledger with a running
-- balance, open items, and balances per account.  All from the journal's
-- receivables and customer-credit lines (the customer's side of the books).
-- ============================================================================

CREATE VIEW subbilling.customer_ledger AS
SELECT q.account_id, q.entry_id, q.booked_on, q.kind, q.document, q.invoice_id, q.payment_id,
       q.debit, q.credit,
       sum(q.debit - q.credit) OVER (PARTITION BY q.account_id ORDER BY q.booked_on, q.entry_id) AS balance,
       q.memo
  FROM (SELECT e.account_id, e.id AS entry_id, e.booked_on, e.kind, i.number AS document, e.invoice_id,
               e.payment_id, e.memo,
               sum(CASE WHEN subbilling.minor_units(l.amount) > 0 THEN l.amount
                        ELSE subbilling.price_minor(0, subbilling.currency(l.amount)) END) AS debit,
               subbilling.price_minor(0, min(subbilling.currency(l.amount)))
               - sum(CASE WHEN subbilling.minor_units(l.amount) < 0 THEN l.amount
                          ELSE subbilling.price_minor(0, subbilling.currency(l.amount)) END) AS credit
          FROM subbilling.journal_entries e
          JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                                         AND l.subledger IS NOT NULL
          LEFT JOIN subbilling.invoices i ON i.account_id = e.account_id AND i.id = e.invoice_id
         GROUP BY e.account_id, e.id, i.number) q;
COMMENT ON VIEW subbilling.customer_ledger IS 'each customer''s ledger (kundreskontra): per journal entry its date, kind, document (invoice number), debit (more owed) and credit (less owed) on receivables and customer credit, and the running balance (what the customer owes; negative = in credit)';

CREATE VIEW subbilling.open_items AS
SELECT i.account_id, i.id AS invoice_id, i.kind, i.number, i.status, i.reference, i.issue_date, i.due_date,
       i.currency, i.total, o.open_amount,
       greatest((pg_catalog.now() AT TIME ZONE a.time_zone)::date - i.due_date, 0) AS days_overdue
  FROM (SELECT l.account_id, l.invoice_id, sum(l.amount) AS open_amount
          FROM subbilling.journal_lines l
         WHERE l.invoice_id IS NOT NULL
         GROUP BY l.account_id, l.invoice_id
        HAVING subbilling.minor_units(sum(l.amount)) <> 0) o
  JOIN subbilling.invoices i ON i.account_id = o.account_id AND i.id = o.invoice_id
  JOIN subbilling.accounts a ON a.id = i.account_id;
COMMENT ON VIEW subbilling.open_items IS 'open items: issued invoices with a non-zero open amount (from the journal), their due date and days overdue (account-local today)';

CREATE VIEW subbilling.account_balances AS
SELECT a.id AS account_id, a.currency,
       coalesce(sum(l.amount) FILTER (WHERE l.subledger = 'receivables'), subbilling.price_minor(0, a.currency)) AS receivables,
       subbilling.price_minor(0, a.currency)
       - coalesce(sum(l.amount) FILTER (WHERE l.subledger = 'customer_credit'), subbilling.price_minor(0, a.currency)) AS customer_credit,
       coalesce(sum(l.amount), subbilling.price_minor(0, a.currency)) AS balance
  FROM subbilling.accounts a
  LEFT JOIN subbilling.journal_lines l ON l.account_id = a.id AND l.subledger IS NOT NULL
 GROUP BY a.id, a.currency;
COMMENT ON VIEW subbilling.account_balances IS 'per account: receivables (open invoice amounts), customer credit and balance = receivables - credit, from the journal';

-- ============================================================================
-- Privileges of the ledger and payments (SPEC section 6), following
-- 390_privileges.sql: functions that change data are SECURITY DEFINER with a
-- pinned search_path, executable by subbilling_operator and never by PUBLIC;
-- internal helpers by their owner only; subbilling_reader reads the views.
-- ============================================================================

GRANT SELECT ON subbilling.ledger_accounts, subbilling.ledger_mappings, subbilling.journal_entries,
                subbilling.journal_lines, subbilling.payment_settings, subbilling.payments,
                subbilling.unmatched_payments, subbilling.refunds, subbilling.payment_requests,
                subbilling.customer_ledger, subbilling.open_items, subbilling.account_balances
    TO subbilling_operator;
-- settings are maintained with plain SQL; the journal and payments only through functions
GRANT INSERT, UPDATE ON subbilling.ledger_accounts, subbilling.ledger_mappings TO subbilling_operator;
GRANT DELETE ON subbilling.ledger_mappings TO subbilling_operator;
GRANT UPDATE (retry_days, updated_at) ON subbilling.payment_settings TO subbilling_operator;

GRANT SELECT ON subbilling.customer_ledger, subbilling.open_items, subbilling.account_balances
    TO subbilling_reader;

-- payments: operator only
REVOKE ALL ON FUNCTION
    subbilling.register_payment(subbilling.price, text, date, text, text),
    subbilling.match_payment(bigint, bigint),
    subbilling.refund(bigint, subbilling.price),
    subbilling.payment_failed(bigint, text, date),
    subbilling.run_payment_retries(date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.register_payment(subbilling.price, text, date, text, text),
    subbilling.match_payment(bigint, bigint),
    subbilling.refund(bigint, subbilling.price),
    subbilling.payment_failed(bigint, text, date),
    subbilling.run_payment_retries(date)
    TO subbilling_operator;

-- read-only questions: operator and reader
REVOKE ALL ON FUNCTION
    subbilling.account_balance(bigint),
    subbilling.invoice_open_amount(bigint, bigint),
    subbilling.customer_credit(bigint),
    subbilling.ledger_code(text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.account_balance(bigint),
    subbilling.invoice_open_amount(bigint, bigint),
    subbilling.customer_credit(bigint),
    subbilling.ledger_code(text, text, text)
    TO subbilling_operator, subbilling_reader;

-- internal: called by the functions above and by billing and dunning (as
-- their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling.rate_detail(numeric),
    subbilling.ledger_mapping(text, text, text, boolean),
    subbilling.journal_lines_balanced(),
    subbilling.journal_immutable(),
    subbilling.book_entry(bigint, text, date, text[], subbilling.price[], bigint, bigint, text),
    subbilling.invoices_reopen_guard(),
    subbilling.after_invoice_paid(bigint, bigint),
    subbilling.account_today(bigint),
    subbilling.lock_account_credit(bigint, boolean),
    subbilling.invoice_paid(subbilling.invoices, text, bigint),
    subbilling.post_payment(subbilling.invoices, bigint, subbilling.price, text, date, text, text, text),
    subbilling.notify_unaccounted(text, jsonb),
    subbilling.ledger_event_notification(subbilling.events),
    subbilling.payment_request_payload(subbilling.payment_requests),
    subbilling.revenue_code(text, text, numeric, boolean),
    subbilling.book_invoices(bigint[], bigint[])
    FROM PUBLIC;

-- ============================================================================
-- Dunning settings (SPEC section 5): policies and their steps, the shipped
-- default policy, and the per-country rules for reminder fees and
-- late-payment interest (fee caps, interest margin, reference rates).
--
-- All of these are small global settings tables (SPEC 7: reference tables);
-- nothing in them points at a customer-owned table.  docs/dunning.md
-- describes every column, rule and source.
-- ============================================================================

-- ---------------------------------------------------------------- policies

ALTER TABLE subbilling.dunning_policies
    ADD COLUMN is_default boolean NOT NULL DEFAULT false,
    ADD COLUMN fee_terms_days integer NOT NULL DEFAULT 10
        CONSTRAINT dunning_policies_fee_terms_range CHECK (fee_terms_days BETWEEN 0 AND 365),
    ADD COLUMN description text;
CREATE UNIQUE INDEX dunning_policies_one_default ON subbilling.dunning_policies ((true)) WHERE is_default;
COMMENT ON COLUMN subbilling.dunning_policies.is_default IS 'the policy of accounts whose dunning_policy_id is NULL; at most one policy is the default';
COMMENT ON COLUMN subbilling.dunning_policies.fee_terms_days IS 'days from the dunning date to the due date of a fee invoice (reminder fee, interest)';
COMMENT ON COLUMN subbilling.dunning_policies.description IS 'free text';

-- ---------------------------------------------------------------- steps

CREATE TABLE subbilling.dunning_steps (
    policy_id       bigint NOT NULL REFERENCES subbilling.dunning_policies (id) ON DELETE CASCADE,
    step_no         integer NOT NULL
                    CONSTRAINT dunning_steps_step_no_positive CHECK (step_no > 0),
    days_after_due  integer NOT NULL
                    CONSTRAINT dunning_steps_days_range CHECK (days_after_due BETWEEN 0 AND 3650),
    action          text NOT NULL
                    CONSTRAINT dunning_steps_action_check
                    CHECK (action IN ('reminder', 'payment_stop', 'collection', 'write_off')),
    fee_kind        text NOT NULL DEFAULT 'none'
                    CONSTRAINT dunning_steps_fee_kind_check CHECK (fee_kind IN ('none', 'fixed', 'country')),
    fees            subbilling.price[],
    charge_interest boolean NOT NULL DEFAULT false,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (policy_id, step_no),
    CONSTRAINT dunning_steps_fees_iff_fixed CHECK ((fee_kind = 'fixed') = (fees IS NOT NULL)),
    CONSTRAINT dunning_steps_write_off_plain
        CHECK (action <> 'write_off' OR (fee_kind = 'none' AND NOT charge_interest))
);
COMMENT ON TABLE subbilling.dunning_steps IS 'the steps of a dunning policy: days after the due date, action (reminder, payment_stop, collection, write_off), optional fee (fixed per currency or the country''s standard fee, capped by the country) and late-payment interest';
COMMENT ON COLUMN subbilling.dunning_steps.step_no IS 'order of the steps within the policy (1, 2, ...); each runs once per invoice, in this order';
COMMENT ON COLUMN subbilling.dunning_steps.days_after_due IS 'the step is due this many days after the invoice''s due date, and never sooner after the previous step than the difference of their days';
COMMENT ON COLUMN subbilling.dunning_steps.fee_kind IS 'none; fixed = fees (one price per currency); country = the standard reminder fee of the account''s country (country_settings.reminder_fees)';
COMMENT ON COLUMN subbilling.dunning_steps.fees IS 'fee_kind fixed: the fee per currency, at most one price per currency';
COMMENT ON COLUMN subbilling.dunning_steps.charge_interest IS 'charge late-payment interest accrued on the open amount since the due date or the previous interest charge';

-- The fees are positive, one per currency, and in known currencies.
CREATE FUNCTION subbilling.dunning_steps_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.fees IS NOT NULL THEN
        IF cardinality(NEW.fees) = 0 OR array_position(NEW.fees, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'step % of dunning policy % has an empty fee list or a NULL fee', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      HINT = 'Give one fee per currency, or fee_kind ''none''.';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(NEW.fees) f WHERE minor_units(f) <= 0) THEN
            RAISE EXCEPTION 'step % of dunning policy % has a fee that is not positive', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Fees: %s.', NEW.fees);
        END IF;
        IF (SELECT count(DISTINCT currency(f)) FROM unnest(NEW.fees) f) <> cardinality(NEW.fees) THEN
            RAISE EXCEPTION 'step % of dunning policy % has two fees in one currency', NEW.step_no, NEW.policy_id
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Fees: %s.', NEW.fees);
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_steps_validate() IS 'trigger: a dunning step''s fees are positive, one per currency';

CREATE TRIGGER dunning_steps_validate
    BEFORE INSERT OR UPDATE ON subbilling.dunning_steps
    FOR EACH ROW EXECUTE FUNCTION subbilling.dunning_steps_validate();

-- Later steps are never due sooner than earlier ones: days_after_due does
-- not decrease with step_no.  Checked at commit, so steps can be
-- renumbered in any order within a transaction.
CREATE FUNCTION subbilling.dunning_steps_check_order() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT s.step_no, s.days_after_due, s.prev_no, s.prev_days INTO bad
      FROM (SELECT x.step_no, x.days_after_due,
                   lag(x.step_no) OVER w AS prev_no, lag(x.days_after_due) OVER w AS prev_days
              FROM subbilling.dunning_steps x
             WHERE x.policy_id = NEW.policy_id
            WINDOW w AS (ORDER BY x.step_no)) s
     WHERE s.days_after_due < s.prev_days
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the steps of dunning policy % are not in date order', NEW.policy_id
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Step %s is due %s days after the due date, before step %s at %s days.',
                                  bad.step_no, bad.days_after_due, bad.prev_no, bad.prev_days);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_steps_check_order() IS 'trigger: days_after_due does not decrease with step_no within a policy (checked at commit)';

CREATE CONSTRAINT TRIGGER dunning_steps_check_order
    AFTER INSERT OR UPDATE ON subbilling.dunning_steps
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION subbilling.dunning_steps_check_order();

-- ---------------------------------------------------------------- country rules

ALTER TABLE subbilling.country_settings
    ADD COLUMN reminder_fees subbilling.price[],
    ADD COLUMN reminder_fee_caps subbilling.price[],
    ADD COLUMN reminder_fee_max_count integer
        CONSTRAINT country_settings_reminder_fee_max_count_range CHECK (reminder_fee_max_count >= 0),
    ADD COLUMN reminder_fee_min_days integer
        CONSTRAINT country_settings_reminder_fee_min_days_range CHECK (reminder_fee_min_days BETWEEN 0 AND 3650),
    ADD COLUMN late_interest_margin numeric
        CONSTRAINT country_settings_late_interest_margin_range CHECK (late_interest_margin >= 0 AND late_interest_margin < 100),
    ADD COLUMN dunning_legal_basis text;
COMMENT ON COLUMN subbilling.country_settings.reminder_fees IS 'dunning: the standard reminder fee per currency (steps with fee_kind ''country''); NULL = none';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_caps IS 'dunning: the legal maximum of one reminder fee per currency; NULL = no cap; a cap list without the invoice''s currency means no fee in that currency';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_max_count IS 'dunning: at most this many reminder fees per invoice; NULL = no limit';
COMMENT ON COLUMN subbilling.country_settings.reminder_fee_min_days IS 'dunning: a fee only on a step taken at least this many days after the due date; NULL = any day';
COMMENT ON COLUMN subbilling.country_settings.late_interest_margin IS 'dunning: late-payment interest = reference rate (reference_rates) + this many percentage points; NULL = no late-payment interest';
COMMENT ON COLUMN subbilling.country_settings.dunning_legal_basis IS 'dunning: where the fee and interest rules of the country come from';

-- Validation of the fee lists (positive, one per currency); the existing
-- reference-kind rules are untouched.
CREATE FUNCTION subbilling.country_settings_validate_dunning() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    l   subbilling.price[];
    nm  text;
BEGIN
    FOR nm, l IN VALUES ('reminder_fees', NEW.reminder_fees), ('reminder_fee_caps', NEW.reminder_fee_caps) LOOP
        CONTINUE WHEN l IS NULL;
        IF cardinality(l) = 0 OR array_position(l, NULL) IS NOT NULL
           OR EXISTS (SELECT 1 FROM unnest(l) f WHERE minor_units(f) <= 0)
           OR (SELECT count(DISTINCT currency(f)) FROM unnest(l) f) <> cardinality(l) THEN
            RAISE EXCEPTION '% of country % must list positive amounts, one per currency', nm, NEW.country
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Got %s.', l);
        END IF;
    END LOOP;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.country_settings_validate_dunning() IS 'trigger: a country''s reminder fees and caps are positive, one per currency';

CREATE TRIGGER country_settings_validate_dunning
    BEFORE INSERT OR UPDATE ON subbilling.country_settings
    FOR EACH ROW EXECUTE FUNCTION subbilling.country_settings_validate_dunning();

-- The reference rate of late-payment interest, per country and half-year
-- (or whatever validity the authority gives it).
CREATE TABLE subbilling.reference_rates (
    country     text NOT NULL
                CONSTRAINT reference_rates_country_iso3166 CHECK (subbilling.is_country_code(country)),
    valid       daterange NOT NULL
                CONSTRAINT reference_rates_valid_nonempty CHECK (NOT isempty(valid) AND lower_inc(valid) AND NOT upper_inc(valid)),
    rate        numeric NOT NULL
                CONSTRAINT reference_rates_rate_range CHECK (rate > -100 AND rate < 100),
    source      text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (country, valid),
    CONSTRAINT reference_rates_no_overlap EXCLUDE USING gist (country WITH =, valid WITH &&)
);
COMMENT ON TABLE subbilling.reference_rates IS 'reference rates of late-payment interest in percent per country and validity (Sweden: Riksbanken''s referensränta; Norway: Norges Bank''s policy rate of the half-year); interest = rate + country_settings.late_interest_margin';

-- Shipped rules (docs/dunning.md gives the sources; operators keep them current).
UPDATE subbilling.country_settings SET
    reminder_fees = '{"60.00 SEK"}', reminder_fee_caps = '{"60.00 SEK"}',
    late_interest_margin = 8,
    dunning_legal_basis = 'Reminder fee at most 60 SEK per written reminder if agreed when the debt arose: lag (1981:739) om ersättning för inkassokostnader 2 and 4 §§. Late-payment interest: referensränta + 8 percentage points, räntelagen (1975:635) 6 and 9 §§.'
 WHERE country = 'SE';
UPDATE subbilling.country_settings SET
    reminder_fees = '{"35.00 NOK"}', reminder_fee_caps = '{"35.00 NOK"}',
    reminder_fee_max_count = 2, reminder_fee_min_days = 14,
    late_interest_margin = 8,
    dunning_legal_basis = 'Purregebyr per inkassoforskriften 1-2 and 1-3: a fraction of the inkassosats, for a reminder sent at least 14 days after the due date, at most two fees per claim (35 NOK assumed; check the current inkassosats). Forsinkelsesrente: Norges Bank''s policy rate + 8 percentage points per half-year, forsinkelsesrenteloven 3 §.'
 WHERE country = 'NO';
UPDATE subbilling.country_settings SET
    reminder_fees = '{"100.00 DKK"}', reminder_fee_caps = '{"100.00 DKK"}',
    reminder_fee_max_count = 3,
    dunning_legal_basis = 'Rykkergebyr at most 100 DKK per reminder, at most three, renteloven 9 b. Morarente (Nationalbanken''s lending rate + 8 percentage points) is not preset: set late_interest_margin and reference_rates to charge it.'
 WHERE country = 'DK';
UPDATE subbilling.country_settings SET
    reminder_fees = '{"5.00 EUR"}', reminder_fee_caps = '{"5.00 EUR"}',
    dunning_legal_basis = 'Maksumuistutus at most 5 EUR, laki saatavien perinnästä 10 §. Viivästyskorko (reference rate + 7 percentage points, korkolaki) is not preset: set late_interest_margin and reference_rates to charge it.'
 WHERE country = 'FI';

INSERT INTO subbilling.reference_rates (country, valid, rate, source) VALUES
    ('SE', '[2023-01-01,2023-07-01)', 2.50, 'Riksbanken referensränta 2023H1'),
    ('SE', '[2023-07-01,2024-01-01)', 3.50, 'Riksbanken referensränta 2023H2'),
    ('SE', '[2024-01-01,2024-07-01)', 4.00, 'Riksbanken referensränta 2024H1'),
    ('SE', '[2024-07-01,2025-01-01)', 4.00, 'Riksbanken referensränta 2024H2'),
    ('SE', '[2025-01-01,2025-07-01)', 2.50, 'Riksbanken referensränta 2025H1'),
    ('SE', '[2025-07-01,2026-01-01)', 2.00, 'Riksbanken referensränta 2025H2'),
    ('NO', '[2023-01-01,2023-07-01)', 2.75, 'Norges Bank policy rate; forsinkelsesrente 10.75 % 2023H1'),
    ('NO', '[2023-07-01,2024-01-01)', 3.75, 'Norges Bank policy rate; forsinkelsesrente 11.75 % 2023H2'),
    ('NO', '[2024-01-01,2024-07-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2024H1'),
    ('NO', '[2024-07-01,2025-01-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2024H2'),
    ('NO', '[2025-01-01,2025-07-01)', 4.50, 'Norges Bank policy rate; forsinkelsesrente 12.50 % 2025H1'),
    ('NO', '[2025-07-01,2026-01-01)', 4.25, 'Norges Bank policy rate; forsinkelsesrente 12.25 % 2025H2');

-- ---------------------------------------------------------------- the default policy

INSERT INTO subbilling.dunning_policies (code, name, is_default, fee_terms_days, description)
VALUES ('default', 'Default dunning', true, 10,
        'Reminder at +10 days with the country''s reminder fee, second reminder at +20 with a fee and interest, payment stop at +30, collection at +45 with interest');

INSERT INTO subbilling.dunning_steps (policy_id, step_no, days_after_due, action, fee_kind, charge_interest, description)
SELECT p.id, v.step_no, v.days, v.action, v.fee_kind, v.interest, v.description
  FROM subbilling.dunning_policies p,
       (VALUES (1, 10, 'reminder',     'country', false, 'First reminder'),
               (2, 20, 'reminder',     'country', true,  'Second reminder'),
               (3, 30, 'payment_stop', 'none',    false, 'Payment stop: the subscription is suspended'),
               (4, 45, 'collection',   'none',    true,  'Handed over to collection')
       ) AS v(step_no, days, action, fee_kind, interest, description)
 WHERE p.code = 'default';

-- ---------------------------------------------------------------- helpers

-- The price of a list in a currency, or NULL.
CREATE FUNCTION subbilling.price_in_currency(prices subbilling.price[], currency text) RETURNS subbilling.price
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT p FROM unnest(prices) AS p WHERE subbilling.currency(p) = upper(price_in_currency.currency) LIMIT 1);
COMMENT ON FUNCTION subbilling.price_in_currency(subbilling.price[], text) IS 'the element of a price list in a currency, NULL if none';

-- The dunning policy of an account: its own, else the default.
CREATE FUNCTION subbilling.dunning_policy_of(account_id bigint) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
RETURN (SELECT coalesce(a.dunning_policy_id, (SELECT p.id FROM subbilling.dunning_policies p WHERE p.is_default))
          FROM subbilling.accounts a WHERE a.id = dunning_policy_of.account_id);
COMMENT ON FUNCTION subbilling.dunning_policy_of(bigint) IS 'the id of the dunning policy of an account: its dunning_policy_id, else the default policy';

-- The fee of a step for an invoice: the step's fee (fixed, or the
-- country's standard fee) in the invoice's currency, subject to the
-- country's rules (earliest day, number of fees, cap).  fee NULL = no fee;
-- note says why, or that the fee was capped.
CREATE FUNCTION subbilling.dunning_fee(fee_kind text, fees subbilling.price[], country text, currency text,
                                       days_overdue integer, fees_before integer,
                                       OUT fee subbilling.price, OUT note text)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    cs      subbilling.country_settings;
    base    subbilling.price;
    cap     subbilling.price;
BEGIN
    IF fee_kind IS NULL OR fee_kind = 'none' THEN
        RETURN;
    END IF;
    SELECT * INTO cs FROM subbilling.country_settings c WHERE c.country = dunning_fee.country;
    IF fee_kind = 'fixed' THEN
        base := price_in_currency(fees, currency);
        IF base IS NULL THEN
            note := format('the step has no fee in %s', currency);
            RETURN;
        END IF;
    ELSE
        base := price_in_currency(cs.reminder_fees, currency);
        IF base IS NULL THEN
            note := format('country %s has no standard reminder fee in %s', country, currency);
            RETURN;
        END IF;
    END IF;
    IF cs.reminder_fee_min_days IS NOT NULL AND days_overdue < cs.reminder_fee_min_days THEN
        note := format('country %s allows a reminder fee from day %s after the due date, this is day %s',
                       country, cs.reminder_fee_min_days, days_overdue);
        RETURN;
    END IF;
    IF cs.reminder_fee_max_count IS NOT NULL AND fees_before >= cs.reminder_fee_max_count THEN
        note := format('country %s allows at most %s reminder fees per invoice', country, cs.reminder_fee_max_count);
        RETURN;
    END IF;
    IF cs.reminder_fee_caps IS NOT NULL THEN
        cap := price_in_currency(cs.reminder_fee_caps, currency);
        IF cap IS NULL THEN
            note := format('country %s caps reminder fees, but not in %s', country, currency);
            RETURN;
        END IF;
        IF base > cap THEN
            fee := cap;
            note := format('capped at %s (country %s), the step asks %s', cap, country, base);
            RETURN;
        END IF;
    END IF;
    fee := base;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_fee(text, subbilling.price[], text, text, integer, integer) IS 'internal: the fee of a dunning step in a currency after the country''s rules (earliest day, number of fees, cap); NULL fee with a note when none is due';

-- Late-payment interest on amount for the days d with from_date < d <=
-- to_date: amount * sum over those days of (reference rate of d + margin)
-- / 100 / 365, rounded once, half away from zero, to the minor unit.  A day
-- without a reference rate is an error (55000): the rates are settings.
CREATE FUNCTION subbilling.late_payment_interest(country text, amount subbilling.price, from_date date, to_date date,
                                                 OUT interest subbilling.price, OUT days integer,
                                                 OUT rate_days numeric, OUT rates jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    margin  numeric;
    span    daterange;
    covered integer;
    gap     date;
BEGIN
    IF amount IS NULL OR from_date IS NULL OR to_date IS NULL OR NOT isfinite(from_date) OR NOT isfinite(to_date)
       OR to_date < from_date THEN
        RAISE EXCEPTION 'late_payment_interest needs an amount and finite dates with from_date <= to_date'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s from %s to %s.', amount, from_date, to_date);
    END IF;
    SELECT c.late_interest_margin INTO margin FROM subbilling.country_settings c WHERE c.country = late_payment_interest.country;
    IF margin IS NULL THEN
        RAISE EXCEPTION 'country % has no late-payment interest margin', coalesce(country, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set country_settings.late_interest_margin and reference_rates.';
    END IF;
    days := to_date - from_date;
    span := daterange(from_date + 1, to_date + 1);
    SELECT coalesce(sum(upper(r.valid * span) - lower(r.valid * span)), 0),
           coalesce(sum((upper(r.valid * span) - lower(r.valid * span)) * greatest(r.rate + margin, 0)), 0),
           coalesce(jsonb_agg(jsonb_build_object('from', lower(r.valid * span), 'to', upper(r.valid * span) - 1,
                                                 'days', upper(r.valid * span) - lower(r.valid * span),
                                                 'reference_rate', r.rate, 'rate', greatest(r.rate + margin, 0))
                              ORDER BY lower(r.valid)), '[]')
      INTO covered, rate_days, rates
      FROM subbilling.reference_rates r
     WHERE r.country = late_payment_interest.country AND r.valid && span;
    IF covered <> days THEN
        SELECT min(d)::date INTO gap
          FROM generate_series(from_date + 1, to_date, '1 day') AS g(d)
         WHERE NOT EXISTS (SELECT 1 FROM subbilling.reference_rates r
                            WHERE r.country = late_payment_interest.country AND r.valid @> g.d::date);
        RAISE EXCEPTION 'no reference rate for country % on %', country, gap
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the rate to subbilling.reference_rates.';
    END IF;
    interest := price_minor(round(minor_units(amount)::numeric * rate_days / 36500)::bigint, currency(amount));
END
$$;
COMMENT ON FUNCTION subbilling.late_payment_interest(text, subbilling.price, date, date) IS 'late-payment interest on amount for the days after from_date up to to_date: amount * sum of (reference rate + margin) per day / 36500, rounded once half away from zero; with the days, the rate-days and the rates used';

-- ============================================================================
-- Dunning (SPEC section 5): the steps taken on overdue invoices, fee
-- invoices, late-payment interest, payment stop and its lifting,
-- collection and write-off.
--
-- dunning_actions is customer-owned (SPEC 7): account_id leads every key.
-- Each step runs once per invoice (UNIQUE (account_id, invoice_id,
-- step_no)); step 0 is the built-in 'overdue' notice.  A step is taken
-- only under the invoice's row lock and only while the invoice is open
-- with an open amount, so a payment (which locks the invoice row too)
-- either comes first, and no step or fee hits it, or waits for the step.
-- docs/dunning.md describes every rule with worked examples.
-- ============================================================================

CREATE TABLE subbilling.dunning_actions (
    account_id          bigint NOT NULL REFERENCES subbilling.accounts (id),
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    invoice_id          bigint NOT NULL,
    step_no             integer NOT NULL
                        CONSTRAINT dunning_actions_step_no_range CHECK (step_no >= 0),
    policy_id           bigint REFERENCES subbilling.dunning_policies (id) ON DELETE SET NULL,
    action              text NOT NULL
                        CONSTRAINT dunning_actions_action_check
                        CHECK (action IN ('overdue', 'reminder', 'payment_stop', 'collection', 'write_off')),
    days_after_due      integer,
    executed_on         date NOT NULL,
    open_amount         subbilling.price NOT NULL,
    fee                 subbilling.price,
    fee_note            text,
    interest            subbilling.price,
    interest_period     daterange,
    interest_rate_days  numeric,
    fee_invoice_id      bigint,
    subscription_id     bigint,
    written_off         subbilling.price,
    event_id            bigint NOT NULL,
    lifted_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (account_id, id),
    CONSTRAINT dunning_actions_once UNIQUE (account_id, invoice_id, step_no),
    CONSTRAINT dunning_actions_fee_invoice_once UNIQUE (account_id, fee_invoice_id),
    FOREIGN KEY (account_id, invoice_id) REFERENCES subbilling.invoices (account_id, id),
    FOREIGN KEY (account_id, fee_invoice_id) REFERENCES subbilling.invoices (account_id, id),
    FOREIGN KEY (account_id, subscription_id) REFERENCES subbilling.subscriptions (account_id, id),
    FOREIGN KEY (account_id, event_id) REFERENCES subbilling.events (account_id, id),
    CONSTRAINT dunning_actions_overdue_is_step_0 CHECK ((action = 'overdue') = (step_no = 0)),
    CONSTRAINT dunning_actions_lift_only_stops CHECK (lifted_at IS NULL OR (action = 'payment_stop' AND subscription_id IS NOT NULL))
);
CREATE INDEX dunning_actions_stops_idx ON subbilling.dunning_actions (account_id, subscription_id)
    WHERE action = 'payment_stop' AND lifted_at IS NULL;
COMMENT ON TABLE subbilling.dunning_actions IS 'the dunning steps taken: one row per invoice and step (step 0 = the overdue notice), with the open amount, fee, interest, fee invoice, suspended subscription, write-off and event; immutable except lifted_at of a payment stop';
COMMENT ON COLUMN subbilling.dunning_actions.step_no IS '0 = overdue notice; otherwise the policy step that was taken';
COMMENT ON COLUMN subbilling.dunning_actions.days_after_due IS 'the step''s days_after_due when it was taken (spacing of the next step)';
COMMENT ON COLUMN subbilling.dunning_actions.executed_on IS 'the dunning date (as_of) on which the step was taken';
COMMENT ON COLUMN subbilling.dunning_actions.open_amount IS 'what was still due on the invoice when the step was taken';
COMMENT ON COLUMN subbilling.dunning_actions.fee IS 'the fee charged (after the country''s rules), NULL if none';
COMMENT ON COLUMN subbilling.dunning_actions.fee_note IS 'why no fee was charged, or that it was capped';
COMMENT ON COLUMN subbilling.dunning_actions.interest IS 'late-payment interest charged, NULL if none';
COMMENT ON COLUMN subbilling.dunning_actions.interest_period IS 'the days the interest covers';
COMMENT ON COLUMN subbilling.dunning_actions.interest_rate_days IS 'sum over those days of the annual rate in percent (reference rate + margin)';
COMMENT ON COLUMN subbilling.dunning_actions.fee_invoice_id IS 'the fee invoice (fee and interest lines) of the step';
COMMENT ON COLUMN subbilling.dunning_actions.subscription_id IS 'payment_stop: the subscription held suspended by this stop (NULL: nothing suspended)';
COMMENT ON COLUMN subbilling.dunning_actions.written_off IS 'write_off: the amount written off (the invoice and its open fee invoices)';
COMMENT ON COLUMN subbilling.dunning_actions.event_id IS 'the event of the step';
COMMENT ON COLUMN subbilling.dunning_actions.lifted_at IS 'payment_stop: when the invoice and its fees were paid and the stop lifted';

-- Actions are history: only a payment stop's lifted_at is ever set, once.
CREATE FUNCTION subbilling.dunning_actions_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'dunning actions are history and cannot be deleted'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Action %s (step %s of invoice %s).', OLD.id, OLD.step_no, OLD.invoice_id);
    END IF;
    IF (to_jsonb(NEW) - 'lifted_at') IS DISTINCT FROM (to_jsonb(OLD) - 'lifted_at')
       OR (OLD.lifted_at IS NOT NULL AND NEW.lifted_at IS DISTINCT FROM OLD.lifted_at) THEN
        RAISE EXCEPTION 'dunning actions are history and cannot be altered'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Action %s (step %s of invoice %s); only a payment stop''s lifted_at is set, once.',
                                  OLD.id, OLD.step_no, OLD.invoice_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_actions_guard() IS 'trigger: dunning actions are never deleted, and only a payment stop''s lifted_at is set, once';

CREATE TRIGGER dunning_actions_guard
    BEFORE UPDATE OR DELETE ON subbilling.dunning_actions
    FOR EACH ROW EXECUTE FUNCTION subbilling.dunning_actions_guard();

-- Dunning failures share billing_errors with billing; they name the invoice.
ALTER TABLE subbilling.billing_errors ADD COLUMN invoice_id bigint;
CREATE INDEX billing_errors_invoice_idx ON subbilling.billing_errors (account_id, invoice_id)
    WHERE invoice_id IS NOT NULL;
COMMENT ON COLUMN subbilling.billing_errors.invoice_id IS 'dunning: the invoice whose dunning failed (subscription_id is then NULL, as_of is the dunning date at 00:00 UTC; resolved when a later run dunns it); NULL for billing failures';

-- ---------------------------------------------------------------- schedule

-- The invoices on which a dunning step is due as of a date, with the step:
-- open invoices (not fee invoices) of kind invoice whose due date has
-- passed and whose overdue notice is missing (next_step_no 0), or whose
-- next policy step is due.  A step is due days_after_due days after the
-- invoice's due date, and not sooner after the previous step taken than
-- the difference of the two steps' days.  Whether anything is still owed
-- is checked by the caller (invoice_open_amount).
CREATE FUNCTION subbilling.dunning_due(as_of date)
    RETURNS TABLE (account_id bigint, invoice_id bigint, due_date date, policy_id bigint,
                   last_step_no integer, next_step_no integer, next_action text, next_on date)
    LANGUAGE sql STABLE
AS $$
    SELECT i.account_id, i.id, i.due_date, pol.id, l.step_no,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN 0 ELSE s.step_no END,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN 'overdue' ELSE s.action END,
           CASE WHEN i.due_date < dunning_due.as_of AND o.step_no IS NULL THEN i.due_date + 1
                ELSE greatest(i.due_date + s.days_after_due,
                                         l.executed_on + greatest(s.days_after_due - l.days_after_due, 0)) END
      FROM subbilling.invoices i
      JOIN subbilling.accounts a ON a.id = i.account_id
      LEFT JOIN subbilling.dunning_policies pol
        ON pol.id = coalesce(a.dunning_policy_id, (SELECT d.id FROM subbilling.dunning_policies d WHERE d.is_default))
      LEFT JOIN LATERAL (
          SELECT x.step_no FROM subbilling.dunning_actions x
           WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no = 0) o ON true
      LEFT JOIN LATERAL (
          SELECT x.step_no, x.executed_on, x.days_after_due FROM subbilling.dunning_actions x
           WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no > 0
           ORDER BY x.step_no DESC LIMIT 1) l ON true
      LEFT JOIN LATERAL (
          SELECT x.step_no, x.action, x.days_after_due FROM subbilling.dunning_steps x
           WHERE x.policy_id = pol.id AND x.step_no > coalesce(l.step_no, 0)
           ORDER BY x.step_no LIMIT 1) s ON true
     WHERE i.status = 'open' AND i.kind = 'invoice' AND i.due_date <= dunning_due.as_of
       AND NOT EXISTS (SELECT 1 FROM subbilling.dunning_actions f
                        WHERE f.account_id = i.account_id AND f.fee_invoice_id = i.id)
       AND ((i.due_date < dunning_due.as_of AND o.step_no IS NULL)
            OR greatest(i.due_date + s.days_after_due,
                                   l.executed_on + greatest(s.days_after_due - l.days_after_due, 0))
               <= dunning_due.as_of)
$$;
COMMENT ON FUNCTION subbilling.dunning_due(date) IS 'the open invoices on which a dunning step is due as of a date: the overdue notice (step 0) or the next policy step, with the date it fell due';

-- ---------------------------------------------------------------- fee invoices

-- Issues the fee invoice of a dunning step: a fee line and/or an interest
-- line, VAT 0 (reminder fees and interest are compensation, outside VAT),
-- dated the dunning date and due fee_terms_days later, finalised through
-- finalize_invoice (numbered, referenced, announced, and booked by
-- book_invoices: receivables against the fees account; the interest is
-- then moved to the interest account).  Returns its id.
CREATE FUNCTION subbilling.dunning_fee_invoice(i subbilling.invoices, step_no integer, step_label text,
                                               as_of date, terms integer,
                                               fee subbilling.price, interest subbilling.price,
                                               interest_period daterange, interest_text text)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    zero        subbilling.price := price_minor(0, i.currency);
    fid         bigint := nextval('subbilling.invoices_id_seq'::regclass);
    fees_code   text;
    int_code    text;
BEGIN
    INSERT INTO subbilling.invoices (account_id, id, subscription_id, kind, status, currency, net, tax, total,
                                     issue_date, due_date, reason)
    VALUES (i.account_id, fid, i.subscription_id, 'invoice', 'draft', i.currency, zero, zero, zero,
            as_of, as_of + terms, format('%s for invoice %s', step_label, i.number));
    INSERT INTO subbilling.invoice_lines (account_id, invoice_id, subscription_id, kind, description, period,
                                          quantity, unit_price, net, tax_rate, tax)
    SELECT i.account_id, fid, i.subscription_id, 'fee', v.description, v.period, 1, v.amount, v.amount, 0, zero
      FROM (VALUES (1, format('%s fee, invoice %s', step_label, i.number), NULL::daterange, fee),
                   (2, interest_text, interest_period, interest)) AS v(ord, description, period, amount)
     WHERE v.amount IS NOT NULL AND v.amount > zero
     ORDER BY v.ord;
    PERFORM finalize_invoice(fid);      -- numbers, announces and books it (book_invoices)
    -- book_invoices credits every fee line to the fees account; interest
    -- is income of its own: move it there unless the booking already did
    IF interest IS NOT NULL AND interest > zero THEN
        fees_code := ledger_code('fees', i.currency);
        int_code := ledger_code('interest', i.currency);
        IF fees_code <> int_code AND NOT EXISTS (
                SELECT 1 FROM subbilling.journal_entries e
                  JOIN subbilling.journal_lines l ON l.account_id = e.account_id AND l.entry_id = e.id
                 WHERE e.account_id = i.account_id AND e.invoice_id = fid AND l.ledger_code = int_code) THEN
            PERFORM book_entry(i.account_id, 'interest', as_of, ARRAY[fees_code, int_code], ARRAY[interest, -interest],
                               fid, NULL, format('late-payment interest of invoice %s to interest income', i.number));
        END IF;
    END IF;
    RETURN fid;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_fee_invoice(subbilling.invoices, integer, text, date, integer, subbilling.price, subbilling.price, daterange, text) IS 'internal: issue the fee invoice (fee and interest lines, VAT 0) of a dunning step through finalize_invoice; returns its id';

-- ---------------------------------------------------------------- one step

-- Takes one step (the invoice is locked by the caller, open, with open
-- amount open_amount): fee and interest, then the action, the action row
-- and its event.
CREATE FUNCTION subbilling.dunning_take_step(i subbilling.invoices, st subbilling.dunning_steps,
                                             open_amount subbilling.price, as_of date)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    a           subbilling.accounts;
    pol         subbilling.dunning_policies;
    zero        subbilling.price := price_minor(0, i.currency);
    fee_amt     subbilling.price;
    fee_note    text;
    fees_before integer;
    int_amt     subbilling.price;
    int_days    integer;
    int_rd      numeric;
    int_from    date;
    int_period  daterange;
    int_text    text;
    fid         bigint;
    fnum        text;
    fdue        date;
    label       text;
    sid         bigint;
    sst         text;
    stop_note   text;
    wo          subbilling.price;
    wo_ids      bigint[] := '{}';
    wo_fee      record;
    fo          subbilling.price;
    ev          bigint;
    payload     jsonb;
    aid         bigint;
BEGIN
    SELECT * INTO a FROM subbilling.accounts x WHERE x.id = i.account_id;
    SELECT * INTO pol FROM subbilling.dunning_policies x WHERE x.id = st.policy_id;
    label := coalesce(st.description, initcap(replace(st.action, '_', ' ')) || ' ' || st.step_no);

    -- fee and late-payment interest, on one fee invoice
    IF st.action <> 'write_off' THEN
        SELECT count(*) INTO fees_before FROM subbilling.dunning_actions x
         WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.fee IS NOT NULL;
        SELECT r.fee, r.note INTO fee_amt, fee_note
          FROM dunning_fee(st.fee_kind, st.fees, a.country, i.currency, as_of - i.due_date, fees_before) r;
        IF st.charge_interest
           AND (SELECT c.late_interest_margin FROM subbilling.country_settings c WHERE c.country = a.country) IS NOT NULL THEN
            SELECT coalesce(max(upper(x.interest_period)) - 1, i.due_date) INTO int_from
              FROM subbilling.dunning_actions x
             WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.interest_period IS NOT NULL;
            IF as_of > int_from THEN
                SELECT r.interest, r.days, r.rate_days INTO int_amt, int_days, int_rd
                  FROM late_payment_interest(a.country, open_amount, int_from, as_of) r;
                IF int_amt > zero THEN
                    int_period := daterange(int_from + 1, as_of + 1);
                    int_text := format('Late-payment interest on %s, invoice %s, %s – %s (%s days at %s%% a year)',
                                       open_amount, i.number, int_from + 1, as_of, int_days,
                                       trim_scale(round(int_rd / int_days, 4)));
                ELSE
                    int_amt := NULL;
                    int_rd := NULL;
                END IF;
            END IF;
        END IF;
        IF fee_amt IS NOT NULL OR int_amt IS NOT NULL THEN
            fid := dunning_fee_invoice(i, st.step_no, label, as_of, pol.fee_terms_days,
                                       fee_amt, int_amt, int_period, int_text);
            SELECT x.number, x.due_date INTO fnum, fdue FROM subbilling.invoices x
             WHERE x.account_id = i.account_id AND x.id = fid;
        END IF;
    END IF;

    payload := jsonb_build_object(
        'invoice_id', i.id, 'number', i.number, 'reference', i.reference, 'due_date', i.due_date,
        'days_overdue', as_of - i.due_date, 'policy', pol.code, 'step_no', st.step_no, 'action', st.action,
        'description', st.description, 'currency', i.currency, 'open_amount', open_amount::text,
        'fee', fee_amt::text, 'fee_note', fee_note, 'interest', int_amt::text,
        'interest_from', lower(int_period), 'interest_to', upper(int_period) - 1,
        'fee_invoice_id', fid, 'fee_invoice_number', fnum, 'fee_invoice_due_date', fdue);

    CASE st.action
    WHEN 'reminder' THEN
        ev := emit_event(i.account_id, 'dunning.reminder', i.subscription_id, payload, i.id);

    WHEN 'payment_stop' THEN
        IF i.subscription_id IS NULL THEN
            stop_note := 'the invoice has no subscription';
        ELSE
            SELECT x.status INTO sst FROM subbilling.subscriptions x
             WHERE x.account_id = i.account_id AND x.id = i.subscription_id FOR UPDATE;
            IF sst IN ('active', 'past_due') THEN
                PERFORM set_subscription_status(i.subscription_id, 'suspended',
                                                format('payment stop: invoice %s is overdue', i.number));
                sid := i.subscription_id;
            ELSIF sst = 'suspended' AND EXISTS (
                    SELECT 1 FROM subbilling.dunning_actions x
                     WHERE x.account_id = i.account_id AND x.subscription_id = i.subscription_id
                       AND x.action = 'payment_stop' AND x.lifted_at IS NULL) THEN
                sid := i.subscription_id;       -- held by another invoice's stop already: this one joins it
                stop_note := 'the subscription was already suspended by a payment stop';
            ELSIF sst = 'suspended' THEN
                stop_note := 'the subscription is already suspended, not by dunning: it is not lifted by dunning either';
            ELSE
                stop_note := format('the subscription is %s: nothing to suspend', sst);
            END IF;
        END IF;
        payload := payload || jsonb_build_object('subscription_id', i.subscription_id,
                                                 'suspended', sid IS NOT NULL, 'note', stop_note);
        ev := emit_event(i.account_id, 'dunning.payment_stop', i.subscription_id, payload, i.id);

    WHEN 'collection' THEN
        payload := payload || jsonb_build_object(
            'customer', jsonb_build_object('account_id', a.id, 'external_id', a.external_id, 'name', a.name,
                                           'email', a.email, 'country', a.country),
            'invoice_total', i.total::text, 'issue_date', i.issue_date,
            'open_fee_invoices', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                         'invoice_id', x.id, 'number', x.number, 'total', x.total::text)
                                         ORDER BY x.id), '[]')
                                    FROM subbilling.dunning_actions d
                                    JOIN subbilling.invoices x ON x.account_id = d.account_id AND x.id = d.fee_invoice_id
                                   WHERE d.account_id = i.account_id AND d.invoice_id = i.id AND x.status = 'open'));
        ev := emit_event(i.account_id, 'dunning.collection', i.subscription_id, payload, i.id);

    WHEN 'write_off' THEN
        -- the invoice, then its open fee invoices (one being paid at this
        -- very moment, row locked, is left to that payment)
        wo := open_amount;
        PERFORM book_entry(i.account_id, 'write_off', as_of,
                           ARRAY[ledger_code('write_off', i.currency), ledger_code('receivables', i.currency)],
                           ARRAY[open_amount, -open_amount], i.id, NULL,
                           format('write-off of invoice %s', i.number));
        UPDATE subbilling.invoices x SET status = 'uncollectible'
         WHERE x.account_id = i.account_id AND x.id = i.id;
        FOR wo_fee IN
            SELECT x.id, x.number FROM subbilling.invoices x
             WHERE x.account_id = i.account_id AND x.status = 'open'
               AND x.id IN (SELECT d.fee_invoice_id FROM subbilling.dunning_actions d
                             WHERE d.account_id = i.account_id AND d.invoice_id = i.id AND d.fee_invoice_id IS NOT NULL)
             ORDER BY x.id
               FOR UPDATE SKIP LOCKED
        LOOP
            fo := invoice_open_amount(i.account_id, wo_fee.id);
            CONTINUE WHEN fo IS NULL OR fo <= zero;
            PERFORM book_entry(i.account_id, 'write_off', as_of,
                               ARRAY[ledger_code('write_off', i.currency), ledger_code('receivables', i.currency)],
                               ARRAY[fo, -fo], wo_fee.id, NULL,
                               format('write-off of fee invoice %s (invoice %s)', wo_fee.number, i.number));
            UPDATE subbilling.invoices x SET status = 'uncollectible'
             WHERE x.account_id = i.account_id AND x.id = wo_fee.id;
            wo := wo + fo;
            wo_ids := wo_ids || wo_fee.id;
        END LOOP;
        payload := payload || jsonb_build_object('written_off', wo::text, 'fee_invoices_written_off', to_jsonb(wo_ids));
        ev := emit_event(i.account_id, 'dunning.write_off', i.subscription_id, payload, i.id);
    END CASE;

    INSERT INTO subbilling.dunning_actions AS d
           (account_id, invoice_id, step_no, policy_id, action, days_after_due, executed_on, open_amount,
            fee, fee_note, interest, interest_period, interest_rate_days, fee_invoice_id, subscription_id,
            written_off, event_id)
    VALUES (i.account_id, i.id, st.step_no, st.policy_id, st.action, st.days_after_due, as_of, open_amount,
            fee_amt, fee_note, int_amt, int_period, int_rd, fid, sid, wo, ev)
    RETURNING d.id INTO aid;
    RETURN aid;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_take_step(subbilling.invoices, subbilling.dunning_steps, subbilling.price, date) IS 'internal: take one dunning step on a locked open invoice: fee invoice (fee, interest), then reminder / payment stop / collection / write-off, the action row and its event; returns the action id';

-- ---------------------------------------------------------------- one invoice

-- Dunning of one invoice as of a date, under its row lock: the overdue
-- notice, then every policy step that is due, in order.  Nothing happens
-- to an invoice that is not open or has nothing left to pay.  Returns the
-- number of steps taken (the notice counts).
CREATE FUNCTION subbilling.dunning_invoice(account_id bigint, invoice_id bigint, as_of date)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    i       subbilling.invoices;
    open_   subbilling.price;
    pol_id  bigint;
    lst     record;
    st      subbilling.dunning_steps;
    due_on  date;
    n       integer := 0;
    ev      bigint;
BEGIN
    SELECT * INTO i FROM subbilling.invoices x
     WHERE x.account_id = dunning_invoice.account_id AND x.id = dunning_invoice.invoice_id
       FOR UPDATE;
    IF NOT FOUND OR i.status <> 'open' OR i.kind <> 'invoice' OR i.due_date > as_of
       OR EXISTS (SELECT 1 FROM subbilling.dunning_actions f
                   WHERE f.account_id = i.account_id AND f.fee_invoice_id = i.id) THEN
        RETURN 0;
    END IF;
    -- what is still owed, read after the lock: a payment that committed
    -- before it is seen, one that has not yet started waits for us
    open_ := invoice_open_amount(i.account_id, i.id);
    IF open_ IS NULL OR open_ <= price_minor(0, i.currency) THEN
        RETURN 0;
    END IF;

    IF as_of > i.due_date AND NOT EXISTS (
            SELECT 1 FROM subbilling.dunning_actions x
             WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no = 0) THEN
        ev := emit_event(i.account_id, 'invoice.overdue', i.subscription_id,
                         jsonb_build_object('invoice_id', i.id, 'number', i.number, 'reference', i.reference,
                                            'due_date', i.due_date, 'days_overdue', as_of - i.due_date,
                                            'currency', i.currency, 'total', i.total::text,
                                            'open_amount', open_::text),
                         i.id);
        INSERT INTO subbilling.dunning_actions (account_id, invoice_id, step_no, action, executed_on, open_amount, event_id)
        VALUES (i.account_id, i.id, 0, 'overdue', as_of, open_, ev);
        n := n + 1;
    END IF;

    pol_id := dunning_policy_of(i.account_id);
    LOOP
        SELECT x.step_no, x.executed_on, x.days_after_due INTO lst
          FROM subbilling.dunning_actions x
         WHERE x.account_id = i.account_id AND x.invoice_id = i.id AND x.step_no > 0
         ORDER BY x.step_no DESC LIMIT 1;
        SELECT * INTO st FROM subbilling.dunning_steps x
         WHERE x.policy_id = pol_id AND x.step_no > coalesce(lst.step_no, 0)
         ORDER BY x.step_no LIMIT 1;
        EXIT WHEN NOT FOUND;
        due_on := greatest(i.due_date + st.days_after_due,
                           lst.executed_on + greatest(st.days_after_due - lst.days_after_due, 0));
        EXIT WHEN due_on > as_of;
        PERFORM dunning_take_step(i, st, open_, as_of);
        n := n + 1;
        EXIT WHEN st.action = 'write_off';
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_invoice(bigint, bigint, date) IS 'internal: under the invoice''s row lock, take the overdue notice and every due policy step of one open invoice with an open amount; returns the number of steps taken';

-- ---------------------------------------------------------------- when an invoice is paid

-- Called by the payment functions whenever an invoice becomes fully paid.
--
-- 1. A dunned invoice paid by a payment received before a step was taken
--    (the payment was on its way while dunning ran): the fee invoices of
--    the steps taken after that day are voided, nothing having been owed
--    when they were charged (one already paid on, or locked by a payment
--    in progress, is left alone).
-- 2. When the paid invoice is a dunned invoice or one of its fee invoices,
--    and the dunned invoice and all its fee invoices are now settled (paid,
--    void, or nothing left to pay), its payment stop is lifted; when no
--    other stop holds the subscription, the subscription goes back to
--    active.  The dunned invoice's row lock, then the subscription's,
--    serialise concurrent payments of its documents.
CREATE OR REPLACE FUNCTION subbilling.after_invoice_paid(account_id bigint, invoice_id bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    d       bigint;
    dn      subbilling.invoices;
    paid_on date;
    f       record;
    sid     bigint;
    sst     text;
    newst   text;
    others  bigint[];
    docs    jsonb;
BEGIN
    SELECT x.invoice_id INTO d FROM subbilling.dunning_actions x
     WHERE x.account_id = after_invoice_paid.account_id AND x.fee_invoice_id = after_invoice_paid.invoice_id;
    IF d IS NULL THEN
        d := after_invoice_paid.invoice_id;
        -- 1. fees charged after the day the invoice was paid
        SELECT max(p.received_on) INTO paid_on FROM subbilling.payments p
         WHERE p.account_id = after_invoice_paid.account_id AND p.invoice_id = d;
        IF paid_on IS NOT NULL THEN
            FOR f IN
                SELECT x.id, x.total FROM subbilling.invoices x
                  JOIN subbilling.dunning_actions a ON a.account_id = x.account_id AND a.fee_invoice_id = x.id
                 WHERE a.account_id = after_invoice_paid.account_id AND a.invoice_id = d
                   AND a.executed_on > paid_on AND x.status = 'open'
                 ORDER BY x.id
                   FOR UPDATE OF x SKIP LOCKED
            LOOP
                CONTINUE WHEN invoice_open_amount(after_invoice_paid.account_id, f.id) IS DISTINCT FROM f.total;
                -- void_invoice also reverses its booking (book_invoices)
                PERFORM void_invoice(f.id, format('dunning fee voided: invoice %s was paid on %s, before the step',
                                                  (SELECT x.number FROM subbilling.invoices x
                                                    WHERE x.account_id = after_invoice_paid.account_id AND x.id = d),
                                                  paid_on));
            END LOOP;
        END IF;
    END IF;

    -- 2. lift the payment stop once everything is settled
    SELECT x.subscription_id INTO sid FROM subbilling.dunning_actions x
     WHERE x.account_id = after_invoice_paid.account_id AND x.invoice_id = d
       AND x.action = 'payment_stop' AND x.subscription_id IS NOT NULL AND x.lifted_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO dn FROM subbilling.invoices x
     WHERE x.account_id = after_invoice_paid.account_id AND x.id = d FOR UPDATE;
    SELECT jsonb_agg(jsonb_build_object('invoice_id', x.id, 'number', x.number, 'status', x.status) ORDER BY x.id)
      INTO docs
      FROM subbilling.invoices x
     WHERE x.account_id = dn.account_id
       AND (x.id = d OR x.id IN (SELECT y.fee_invoice_id FROM subbilling.dunning_actions y
                                  WHERE y.account_id = dn.account_id AND y.invoice_id = d
                                    AND y.fee_invoice_id IS NOT NULL))
       AND NOT (x.status IN ('paid', 'void')
                OR (x.status = 'open' AND invoice_open_amount(x.account_id, x.id) <= price_minor(0, x.currency)));
    IF docs IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT x.status INTO sst FROM subbilling.subscriptions x
     WHERE x.account_id = dn.account_id AND x.id = sid FOR UPDATE;
    UPDATE subbilling.dunning_actions x SET lifted_at = now()
     WHERE x.account_id = dn.account_id AND x.invoice_id = d AND x.action = 'payment_stop' AND x.lifted_at IS NULL;
    SELECT array_agg(DISTINCT x.invoice_id ORDER BY x.invoice_id) INTO others
      FROM subbilling.dunning_actions x
     WHERE x.account_id = dn.account_id AND x.subscription_id = sid
       AND x.action = 'payment_stop' AND x.lifted_at IS NULL;
    newst := sst;
    IF others IS NULL AND sst = 'suspended' THEN
        newst := set_subscription_status(sid, 'active', format('payment stop lifted: invoice %s and its fees are paid', dn.number));
    END IF;
    PERFORM emit_event(dn.account_id, 'dunning.payment_stop_lifted', sid,
                       jsonb_build_object('invoice_id', d, 'number', dn.number, 'subscription_id', sid,
                                          'paid_invoice_id', after_invoice_paid.invoice_id,
                                          'previous_status', sst, 'status', newst,
                                          'still_stopped_by', to_jsonb(coalesce(others, '{}'))),
                       d);
END
$$;
COMMENT ON FUNCTION subbilling.after_invoice_paid(bigint, bigint) IS 'internal: called when an invoice becomes fully paid; voids the unpaid fee invoices of dunning steps taken after the day it was paid; lifts the payment stop of a dunned invoice once it and its fee invoices are settled (subscription back to active unless another stop holds it); event dunning.payment_stop_lifted';

-- ============================================================================
-- The dunning batch and run_dunning (SPEC sections 4 and 5).
-- 500_worker.sql defines run_dunning_batch's signature and grants with a
-- placeholder body; this part gives it its body.  The worker calls it in one
-- transaction per batch; run_worker_cycle(), pg_cron and run_dunning() call
-- it in a loop.
-- ============================================================================

-- Claims up to batch_size invoices on which a step is due (per account,
-- FOR UPDATE SKIP LOCKED on the invoice rows) and takes their steps.  A
-- failure in the pass over the whole batch falls back to one invoice at a
-- time, each in its own subtransaction; each failure is recorded in
-- billing_errors (invoice_id set, subscription_id NULL: billing resolves
-- the errors of the subscriptions it bills, dunning those of the invoices
-- it dunns) and that invoice is left alone until the next dunning date.
-- more = a full batch was claimed and something was done.
CREATE FUNCTION subbilling.dunning_batch(batch_size integer, as_of date,
                                         OUT steps integer, OUT errors integer, OUT more boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    err_at  timestamptz;
    cand    record;
    acc     bigint;
    ids     bigint[];
    c_acc   bigint[] := '{}';
    c_inv   bigint[] := '{}';
    ok_acc  bigint[] := '{}';
    ok_inv  bigint[] := '{}';
    n       integer;
    k       integer;
    st      text;
    msg     text;
    det     text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be a positive number of invoices'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(batch_size::text, 'NULL'));
    END IF;
    IF as_of IS NULL OR NOT isfinite(as_of) THEN
        RAISE EXCEPTION 'as_of must be a finite date'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(as_of::text, 'NULL'));
    END IF;
    steps := 0;
    errors := 0;
    err_at := as_of::timestamp AT TIME ZONE 'UTC';

    -- due invoices that still owe something and did not fail on this date
    SELECT array_agg(q.account_id ORDER BY q.account_id, q.invoice_id), array_agg(q.invoice_id ORDER BY q.account_id, q.invoice_id),
           count(*)
      INTO c_acc, c_inv, n
      FROM (SELECT d.account_id, d.invoice_id
              FROM dunning_due(as_of) d
             WHERE NOT EXISTS (SELECT 1 FROM subbilling.billing_errors e
                                WHERE e.account_id = d.account_id AND e.invoice_id = d.invoice_id
                                  AND e.resolved_at IS NULL AND e.as_of >= err_at)
               AND invoice_open_amount(d.account_id, d.invoice_id) > price_minor(0, (SELECT x.currency FROM subbilling.invoices x
                                                                                    WHERE x.account_id = d.account_id AND x.id = d.invoice_id))
             ORDER BY d.next_on, d.account_id, d.invoice_id
             LIMIT batch_size) q;
    more := n = batch_size;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- claim per account; a row locked by a payment or another batch is skipped
    ids := '{}';
    FOR acc IN SELECT DISTINCT u FROM unnest(c_acc) u ORDER BY u LOOP
        ids := ids || ARRAY(SELECT x.id FROM subbilling.invoices x
                             WHERE x.account_id = acc
                               AND x.id = ANY (ARRAY(SELECT c_inv[j] FROM generate_subscripts(c_acc, 1) j WHERE c_acc[j] = acc))
                               AND x.status = 'open'
                             ORDER BY x.id
                               FOR UPDATE SKIP LOCKED);
    END LOOP;
    -- keep the claimed pairs in order
    SELECT coalesce(array_agg(c_acc[j] ORDER BY j), '{}'), coalesce(array_agg(c_inv[j] ORDER BY j), '{}')
      INTO c_acc, c_inv
      FROM generate_subscripts(c_inv, 1) j WHERE c_inv[j] = ANY (ids);
    n := cardinality(c_inv);

    BEGIN
        FOR k IN 1 .. n LOOP
            steps := steps + dunning_invoice(c_acc[k], c_inv[k], as_of);
        END LOOP;
        ok_acc := c_acc;
        ok_inv := c_inv;
    EXCEPTION WHEN OTHERS THEN
        steps := 0;
        FOR k IN 1 .. n LOOP
            BEGIN
                steps := steps + dunning_invoice(c_acc[k], c_inv[k], as_of);
                ok_acc := ok_acc || c_acc[k];
                ok_inv := ok_inv || c_inv[k];
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                INSERT INTO subbilling.billing_errors (account_id, invoice_id, run_id, as_of, sqlstate, message, detail)
                VALUES (c_acc[k], c_inv[k], current_run_id(), err_at, st, msg, nullif(det, ''));
                errors := errors + 1;
            END;
        END LOOP;
    END;
    -- open dunning errors of invoices dunned successfully now are resolved
    -- (a cheap test first: there are rarely any open errors)
    IF EXISTS (SELECT FROM subbilling.billing_errors e WHERE e.resolved_at IS NULL AND e.invoice_id IS NOT NULL) THEN
        UPDATE subbilling.billing_errors e SET resolved_at = now()
          FROM unnest(ok_acc, ok_inv) AS x(account_id, invoice_id)
         WHERE e.account_id = x.account_id AND e.invoice_id = x.invoice_id AND e.resolved_at IS NULL;
    END IF;
    -- a full batch of which nothing could be done (all claimed elsewhere) is not progress
    more := more AND steps + errors > 0;
END
$$;
COMMENT ON FUNCTION subbilling.dunning_batch(integer, date) IS 'internal: claim up to batch_size invoices with a due dunning step (per account, FOR UPDATE SKIP LOCKED) and take their steps as of as_of; failures are recorded in billing_errors and retried on a later date; more = a full batch was claimed and progressed';

CREATE OR REPLACE FUNCTION subbilling.run_dunning_batch(batch_size int, as_of date)
RETURNS TABLE (steps int, errors int, more boolean)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = subbilling, pg_catalog, pg_temp
AS $$ SELECT b.steps, b.errors, b.more FROM subbilling.dunning_batch(batch_size, as_of) AS b $$;
COMMENT ON FUNCTION subbilling.run_dunning_batch(int, date) IS
    'takes up to batch_size due dunning steps as of as_of in the caller''s transaction; failures go to billing_errors; more = due work remains';

CREATE FUNCTION subbilling.run_dunning(as_of date DEFAULT CURRENT_DATE)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = subbilling, pg_catalog, pg_temp
AS $$
DECLARE
    bs      integer := billing_batch_size();
    r       record;
    total   integer := 0;
BEGIN
    LOOP
        r := dunning_batch(bs, run_dunning.as_of);
        total := total + r.steps;
        EXIT WHEN NOT r.more;
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION subbilling.run_dunning(date) IS 'take every dunning step due as of as_of (in batches of subbilling.batch_size, in the caller''s transaction): overdue notices, reminders with fees and interest, payment stops, collection, write-offs; returns the number of steps taken; failures of single invoices go to billing_errors';

-- ---------------------------------------------------------------- privileges

GRANT SELECT ON subbilling.dunning_steps, subbilling.dunning_actions, subbilling.reference_rates
    TO subbilling_operator;
-- settings are maintained with plain SQL; actions are written by dunning only
GRANT INSERT, UPDATE, DELETE ON subbilling.dunning_steps, subbilling.reference_rates TO subbilling_operator;

REVOKE ALL ON FUNCTION
    subbilling.run_dunning(date),
    subbilling.late_payment_interest(text, subbilling.price, date, date),
    subbilling.dunning_due(date)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    subbilling.run_dunning(date),
    subbilling.late_payment_interest(text, subbilling.price, date, date),
    subbilling.dunning_due(date)
    TO subbilling_operator;

-- internal: called by the functions above (as their owner), by nobody else
REVOKE ALL ON FUNCTION
    subbilling.dunning_batch(integer, date),
    subbilling.dunning_invoice(bigint, bigint, date),
    subbilling.dunning_take_step(subbilling.invoices, subbilling.dunning_steps, subbilling.price, date),
    subbilling.dunning_fee_invoice(subbilling.invoices, integer, text, date, integer, subbilling.price,
                                   subbilling.price, daterange, text),
    subbilling.dunning_fee(text, subbilling.price[], text, text, integer, integer),
    subbilling.dunning_policy_of(bigint),
    subbilling.after_invoice_paid(bigint, bigint),
    subbilling.dunning_steps_validate(),
    subbilling.dunning_steps_check_order(),
    subbilling.country_settings_validate_dunning(),
    subbilling.dunning_actions_guard()
    FROM PUBLIC;
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

CREATE FUNCTION subbilling.import_bank_file(fmt text, file text, allow_test boolean,
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
    PERFORM pg_advisory_xact_lock(1112427334, 0);
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
COMMENT ON FUNCTION subbilling.import_bank_file(text, text, boolean) IS
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
      FROM subbilling.import_bank_file('bgmax', $1, $2) r
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
      FROM subbilling.import_bank_file('nets_ocr', $1, false) r
$$;
COMMENT ON FUNCTION subbilling.import_nets_ocr(text) IS
    'import a Nets OCR giro file: refused whole (22P02, line and reason) unless every check passes; negative transactions (reversals) refused (0A000); each transaction registered with register_payment (method ocr_giro, avtalegiro for type 15; external_id nets:<agreement ID>:<assignment number>:<transaction number>); the same file again returns the first import (repeated = true); returns the bank_files id and the outcome counts';

-- privileges: imports by the operator only; the register readable by the operator
REVOKE ALL ON FUNCTION subbilling.import_bank_file(text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION subbilling.import_bgmax(text, boolean), subbilling.import_nets_ocr(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION subbilling.import_bgmax(text, boolean), subbilling.import_nets_ocr(text)
    TO subbilling_operator;
GRANT SELECT ON subbilling.bank_files TO subbilling_operator;
