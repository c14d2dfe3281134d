
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
