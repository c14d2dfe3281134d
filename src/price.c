/*-------------------------------------------------------------------------
 *
 * price.c
 *	  The price type: an exact amount of money in one ISO 4217 currency,
 *	  stored as a 64-bit count of minor units.
 *
 * Thin fmgr wrappers over src/core/money.c (parsing, formatting, the
 * rounding rule, allocation) plus the numeric-based arithmetic.  Every
 * result that is not a whole number of minor units is rounded half away
 * from zero to the minor unit: one rule, everywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "money.h"
#include "price.h"

StaticAssertDecl(sizeof(Price) == 16, "Price must be 16 bytes");

/* ---------- shared helpers ---------- */

static const CurrencyInfo *
PriceCurrency(const Price *p)
{
	const CurrencyInfo *cur = money_currency(p->currency, strnlen(p->currency, 4));

	if (cur == NULL)
		elog(ERROR, "price has unknown currency \"%.3s\"", p->currency);
	return cur;
}

static void
ReportOutOfRange(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("price out of range")));
}

static void
ReportDivisionByZero(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DIVISION_BY_ZERO),
			 errmsg("division by zero")));
}

/* The currency named by a text argument (case-insensitive); 22023 if unknown. */
static const CurrencyInfo *
CurrencyFromText(text *t)
{
	char	   *code = text_to_cstring(t);
	const CurrencyInfo *cur = money_currency(code, strlen(code));

	if (cur == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency code \"%s\"", code),
				 errdetail("A currency is an ISO 4217 alphabetic code with a minor unit, such as SEK, EUR or JPY.")));
	return cur;
}

static Price *
MakePrice(int64 units, const CurrencyInfo *cur)
{
	Price	   *p = (Price *) palloc0(sizeof(Price));

	p->units = units;
	memcpy(p->currency, cur->code, 4);
	p->reserved = 0;
	return p;
}

/* Non-finite numerics (NaN, +-Infinity) cannot take part in money arithmetic. */
static void
CheckFinite(Numeric n, const char *what)
{
	if (numeric_is_nan(n) || numeric_is_inf(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what)));
}

static Numeric
NumAdd(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
NumMul(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
NumAbs(Numeric a)
{
	return DatumGetNumeric(DirectFunctionCall1(numeric_abs, NumericGetDatum(a)));
}

static int
NumCmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static int
NumSign(Numeric a)
{
	return NumCmp(a, int64_to_numeric(0));
}

/* A whole numeric as int64 minor units; 22003 if it does not fit. */
static int64
NumericToUnits(Numeric n)
{
	if (NumCmp(n, int64_to_numeric(PG_INT64_MAX)) > 0 ||
		NumCmp(n, int64_to_numeric(PG_INT64_MIN)) < 0)
		ReportOutOfRange();
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
}

/*
 * round(a / b) half away from zero, computed exactly: truncated quotient and
 * remainder, then one step away from zero if |remainder| >= |b| / 2.  (The
 * numeric "/" operator rounds to a limited number of digits first, which
 * could round twice; div() and mod() are exact.)  b must not be zero.
 */
static int64
NumericRoundDiv(Numeric a, Numeric b)
{
	Numeric		q = DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc,
														NumericGetDatum(a), NumericGetDatum(b)));
	Numeric		r = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
														NumericGetDatum(a), NumericGetDatum(b)));

	if (NumSign(r) != 0)
	{
		Numeric		absr = NumAbs(r);

		if (NumCmp(NumAdd(absr, absr), NumAbs(b)) >= 0)
			q = NumAdd(q, int64_to_numeric(NumSign(a) * NumSign(b)));
	}
	return NumericToUnits(q);
}

/* ---------- C interface (price.h) ---------- */

Price *
price_new(int64 units, const char *currency)
{
	const CurrencyInfo *cur = money_currency(currency, currency ? strlen(currency) : 0);

	if (cur == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency code \"%s\"", currency ? currency : "")));
	return MakePrice(units, cur);
}

int
price_exponent(const Price *p)
{
	return PriceCurrency(p)->exponent;
}

void
price_check_same_currency(const Price *a, const Price *b)
{
	if (memcmp(a->currency, b->currency, 4) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("currency mismatch: %.3s and %.3s", a->currency, b->currency),
				 errdetail("Prices in different currencies cannot be combined.")));
}

int64
price_units_add(int64 a, int64 b)
{
	int64		r;

	if (pg_add_s64_overflow(a, b, &r))
		ReportOutOfRange();
	return r;
}

int64
price_units_sub(int64 a, int64 b)
{
	int64		r;

	if (pg_sub_s64_overflow(a, b, &r))
		ReportOutOfRange();
	return r;
}

int64
price_units_muldiv(int64 units, int64 num, int64 den)
{
	int64		r;

	if (den == 0)
		ReportDivisionByZero();
	if (!money_muldiv(units, num, den, &r))
		ReportOutOfRange();
	return r;
}

int64
price_units_mul_numeric(int64 units, Numeric factor)
{
	Numeric		prod;

	CheckFinite(factor, "factor");
	prod = NumMul(int64_to_numeric(units), factor);
	/* numeric round() rounds half away from zero */
	prod = DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(prod),
											   Int32GetDatum(0)));
	return NumericToUnits(prod);
}

int64
price_units_div_numeric(int64 units, Numeric divisor)
{
	CheckFinite(divisor, "divisor");
	if (NumSign(divisor) == 0)
		ReportDivisionByZero();
	return NumericRoundDiv(int64_to_numeric(units), divisor);
}

/* ---------- I/O ---------- */

/* The currency-code-like tail of a rejected literal, for error details. */
static void
TrailingCode(const char *str, char *code)
{
	const char *end = str + strlen(str);

	/* the same white space as money_parse, independent of the locale */
	while (end > str && strchr(" \t\n\r\f\v", end[-1]) != NULL)
		end--;
	code[0] = '\0';
	if (end - str >= 3)
	{
		for (int i = 0; i < 3; i++)
			code[i] = pg_ascii_toupper((unsigned char) end[i - 3]);
		code[3] = '\0';
	}
}

/*
 * Text to price: "[sign]digits[.digits] CODE".
 */
PG_FUNCTION_INFO_V1(price_in);
Datum
price_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	int64		units;
	const CurrencyInfo *cur;
	char		code[4];

	switch (money_parse(str, &units, &cur))
	{
		case MONEY_PARSE_OK:
			PG_RETURN_PRICE_P(MakePrice(units, cur));
		case MONEY_PARSE_SYNTAX:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type price: \"%s\"", str),
					 errdetail("A price is an optional sign, digits, optionally a decimal point and more digits, a space and a three-letter ISO 4217 currency code, such as \"1234.50 SEK\".")));
			break;
		case MONEY_PARSE_UNKNOWN_CURRENCY:
			TrailingCode(str, code);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type price: \"%s\"", str),
					 errdetail("Currency code \"%s\" is not an ISO 4217 currency with a minor unit.", code)));
			break;
		case MONEY_PARSE_TOO_MANY_DECIMALS:
			TrailingCode(str, code);
			cur = money_currency(code, 3);
			if (cur == NULL)
				elog(ERROR, "currency of \"%s\" not found", str);
			if (cur->exponent == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("invalid input syntax for type price: \"%s\"", str),
						 errdetail("Currency %s allows no decimal places.", cur->code)));
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("invalid input syntax for type price: \"%s\"", str),
						 errdetail("Currency %s allows at most %d decimal places.",
								   cur->code, cur->exponent)));
			break;
		case MONEY_PARSE_OVERFLOW:
			{
				char		lo[MONEY_FORMAT_MAX],
							hi[MONEY_FORMAT_MAX];

				TrailingCode(str, code);
				cur = money_currency(code, 3);
				if (cur == NULL)
					elog(ERROR, "currency of \"%s\" not found", str);
				money_format(PG_INT64_MIN, cur, lo);
				money_format(PG_INT64_MAX, cur, hi);
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("value \"%s\" is out of range for type price", str),
						 errdetail("Prices range from %s to %s.", lo, hi)));
			}
			break;
	}
	elog(ERROR, "unexpected result of money_parse");
	PG_RETURN_NULL();
}

/*
 * Price to canonical text.
 */
PG_FUNCTION_INFO_V1(price_out);
Datum
price_out(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);
	char	   *buf = palloc(MONEY_FORMAT_MAX);

	money_format(p->units, PriceCurrency(p), buf);
	PG_RETURN_CSTRING(buf);
}

/*
 * Binary input: int64 minor units, 4 bytes of code (3 upper-case letters and
 * a NUL), int32 reserved (zero).  Everything is checked again.
 */
PG_FUNCTION_INFO_V1(price_recv);
Datum
price_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int64		units = pq_getmsgint64(buf);
	char		code[4];
	int32		reserved;
	const CurrencyInfo *cur;

	pq_copymsgbytes(buf, code, 4);
	reserved = pq_getmsgint(buf, 4);

	if (code[3] != '\0' || strlen(code) != 3 ||
		(cur = money_currency(code, 3)) == NULL || memcmp(cur->code, code, 4) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary representation of type price"),
				 errdetail("The currency code is not an upper-case ISO 4217 code with a minor unit.")));
	if (reserved != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary representation of type price"),
				 errdetail("Expected reserved to be 0, not %d.", reserved)));
	PG_RETURN_PRICE_P(MakePrice(units, cur));
}

/*
 * Binary output.
 */
PG_FUNCTION_INFO_V1(price_send);
Datum
price_send(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, p->units);
	pq_sendbytes(&buf, p->currency, 4);
	pq_sendint32(&buf, p->reserved);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---------- constructors and accessors ---------- */

/*
 * price(numeric, text): an amount in major units; must be a whole number of
 * minor units.
 */
PG_FUNCTION_INFO_V1(price_from_numeric);
Datum
price_from_numeric(PG_FUNCTION_ARGS)
{
	Numeric		value = PG_GETARG_NUMERIC(0);
	const CurrencyInfo *cur = CurrencyFromText(PG_GETARG_TEXT_PP(1));
	int64		scale = 1;
	Numeric		minor,
				whole;

	CheckFinite(value, "amount");
	for (int i = 0; i < cur->exponent; i++)
		scale *= 10;
	minor = NumMul(value, int64_to_numeric(scale));
	whole = DatumGetNumeric(DirectFunctionCall2(numeric_trunc, NumericGetDatum(minor),
												Int32GetDatum(0)));
	if (NumCmp(minor, whole) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount %s is not a whole number of minor units of %s",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value))),
						cur->code),
				 cur->exponent == 0 ?
				 errdetail("Currency %s allows no decimal places.", cur->code) :
				 errdetail("Currency %s allows at most %d decimal places.",
						   cur->code, cur->exponent)));
	PG_RETURN_PRICE_P(MakePrice(NumericToUnits(whole), cur));
}

/*
 * price_minor(bigint, text): a price from minor units.
 */
PG_FUNCTION_INFO_V1(price_minor);
Datum
price_minor(PG_FUNCTION_ARGS)
{
	int64		units = PG_GETARG_INT64(0);
	const CurrencyInfo *cur = CurrencyFromText(PG_GETARG_TEXT_PP(1));

	PG_RETURN_PRICE_P(MakePrice(units, cur));
}

/*
 * minor_units(price): the amount in minor units.
 */
PG_FUNCTION_INFO_V1(price_minor_units);
Datum
price_minor_units(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PG_GETARG_PRICE_P(0)->units);
}

/*
 * currency(price): the ISO 4217 code.
 */
PG_FUNCTION_INFO_V1(price_currency);
Datum
price_currency(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(p->currency, 3));
}

/*
 * amount(price): the amount in major units, scale = the currency's exponent.
 */
PG_FUNCTION_INFO_V1(price_amount);
Datum
price_amount(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);

	PG_RETURN_NUMERIC(int64_div_fast_to_numeric(p->units, price_exponent(p)));
}

/*
 * currency_exponent(text): minor-unit digits of a currency.
 */
PG_FUNCTION_INFO_V1(price_currency_exponent);
Datum
price_currency_exponent(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(CurrencyFromText(PG_GETARG_TEXT_PP(0))->exponent);
}

/* ---------- arithmetic ---------- */

/*
 * price + price
 */
PG_FUNCTION_INFO_V1(price_add);
Datum
price_add(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);
	Price	   *b = PG_GETARG_PRICE_P(1);

	price_check_same_currency(a, b);
	PG_RETURN_PRICE_P(MakePrice(price_units_add(a->units, b->units), PriceCurrency(a)));
}

/*
 * price - price
 */
PG_FUNCTION_INFO_V1(price_sub);
Datum
price_sub(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);
	Price	   *b = PG_GETARG_PRICE_P(1);

	price_check_same_currency(a, b);
	PG_RETURN_PRICE_P(MakePrice(price_units_sub(a->units, b->units), PriceCurrency(a)));
}

/*
 * - price
 */
PG_FUNCTION_INFO_V1(price_uminus);
Datum
price_uminus(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);

	PG_RETURN_PRICE_P(MakePrice(price_units_sub(0, a->units), PriceCurrency(a)));
}

/*
 * abs(price)
 */
PG_FUNCTION_INFO_V1(price_abs);
Datum
price_abs(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);

	PG_RETURN_PRICE_P(MakePrice(a->units < 0 ? price_units_sub(0, a->units) : a->units,
								PriceCurrency(a)));
}

static Datum
MulInt64(Price *a, int64 f)
{
	int64		r;

	if (pg_mul_s64_overflow(a->units, f, &r))
		ReportOutOfRange();
	PG_RETURN_PRICE_P(MakePrice(r, PriceCurrency(a)));
}

/*
 * price * int4
 */
PG_FUNCTION_INFO_V1(price_mul_int4);
Datum
price_mul_int4(PG_FUNCTION_ARGS)
{
	return MulInt64(PG_GETARG_PRICE_P(0), PG_GETARG_INT32(1));
}

/*
 * int4 * price
 */
PG_FUNCTION_INFO_V1(int4_mul_price);
Datum
int4_mul_price(PG_FUNCTION_ARGS)
{
	return MulInt64(PG_GETARG_PRICE_P(1), PG_GETARG_INT32(0));
}

/*
 * price * int8
 */
PG_FUNCTION_INFO_V1(price_mul_int8);
Datum
price_mul_int8(PG_FUNCTION_ARGS)
{
	return MulInt64(PG_GETARG_PRICE_P(0), PG_GETARG_INT64(1));
}

/*
 * int8 * price
 */
PG_FUNCTION_INFO_V1(int8_mul_price);
Datum
int8_mul_price(PG_FUNCTION_ARGS)
{
	return MulInt64(PG_GETARG_PRICE_P(1), PG_GETARG_INT64(0));
}

/*
 * price * numeric, rounded half away from zero
 */
PG_FUNCTION_INFO_V1(price_mul_numeric);
Datum
price_mul_numeric(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);

	PG_RETURN_PRICE_P(MakePrice(price_units_mul_numeric(a->units, PG_GETARG_NUMERIC(1)),
								PriceCurrency(a)));
}

/*
 * numeric * price, rounded half away from zero
 */
PG_FUNCTION_INFO_V1(numeric_mul_price);
Datum
numeric_mul_price(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(1);

	PG_RETURN_PRICE_P(MakePrice(price_units_mul_numeric(a->units, PG_GETARG_NUMERIC(0)),
								PriceCurrency(a)));
}

static Datum
DivInt64(Price *a, int64 d)
{
	PG_RETURN_PRICE_P(MakePrice(price_units_muldiv(a->units, 1, d), PriceCurrency(a)));
}

/*
 * price / int4, rounded half away from zero
 */
PG_FUNCTION_INFO_V1(price_div_int4);
Datum
price_div_int4(PG_FUNCTION_ARGS)
{
	return DivInt64(PG_GETARG_PRICE_P(0), PG_GETARG_INT32(1));
}

/*
 * price / int8, rounded half away from zero
 */
PG_FUNCTION_INFO_V1(price_div_int8);
Datum
price_div_int8(PG_FUNCTION_ARGS)
{
	return DivInt64(PG_GETARG_PRICE_P(0), PG_GETARG_INT64(1));
}

/*
 * price / numeric, rounded half away from zero
 */
PG_FUNCTION_INFO_V1(price_div_numeric);
Datum
price_div_numeric(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);

	PG_RETURN_PRICE_P(MakePrice(price_units_div_numeric(a->units, PG_GETARG_NUMERIC(1)),
								PriceCurrency(a)));
}

/*
 * price / price (same currency): a plain ratio
 */
PG_FUNCTION_INFO_V1(price_div_price);
Datum
price_div_price(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);
	Price	   *b = PG_GETARG_PRICE_P(1);

	price_check_same_currency(a, b);
	if (b->units == 0)
		ReportDivisionByZero();
	PG_RETURN_DATUM(DirectFunctionCall2(numeric_div,
										NumericGetDatum(int64_to_numeric(a->units)),
										NumericGetDatum(int64_to_numeric(b->units))));
}

/* ---------- VAT ---------- */

static void
CheckRate(Numeric rate)
{
	if (numeric_is_nan(rate) || numeric_is_inf(rate) || NumSign(rate) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tax rate must be a finite number >= 0"),
				 errdetail("The rate is a percentage, such as 25 for 25%%.")));
}

/*
 * tax(net, rate): the VAT on a net amount, round(net * rate / 100)
 */
PG_FUNCTION_INFO_V1(price_tax);
Datum
price_tax(PG_FUNCTION_ARGS)
{
	Price	   *net = PG_GETARG_PRICE_P(0);
	Numeric		rate = PG_GETARG_NUMERIC(1);

	CheckRate(rate);
	PG_RETURN_PRICE_P(MakePrice(NumericRoundDiv(NumMul(int64_to_numeric(net->units), rate),
												int64_to_numeric(100)),
								PriceCurrency(net)));
}

/*
 * net_of(gross, rate): gross - round(gross * rate / (100 + rate)), so that
 * net + VAT = gross exactly.
 */
PG_FUNCTION_INFO_V1(price_net_of);
Datum
price_net_of(PG_FUNCTION_ARGS)
{
	Price	   *gross = PG_GETARG_PRICE_P(0);
	Numeric		rate = PG_GETARG_NUMERIC(1);
	int64		vat;

	CheckRate(rate);
	vat = NumericRoundDiv(NumMul(int64_to_numeric(gross->units), rate),
						  NumAdd(int64_to_numeric(100), rate));
	/* |vat| <= |gross| with the same sign: no overflow */
	PG_RETURN_PRICE_P(MakePrice(price_units_sub(gross->units, vat), PriceCurrency(gross)));
}

/* ---------- comparison, hashing ---------- */

static int
PriceCmp(const Price *a, const Price *b)
{
	int			c = memcmp(a->currency, b->currency, 4);

	if (c != 0)
		return c < 0 ? -1 : 1;
	if (a->units != b->units)
		return a->units < b->units ? -1 : 1;
	return 0;
}

/*
 * btree support: currency code, then amount
 */
PG_FUNCTION_INFO_V1(price_cmp);
Datum
price_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)));
}

/*
 * price < price
 */
PG_FUNCTION_INFO_V1(price_lt);
Datum
price_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) < 0);
}

/*
 * price <= price
 */
PG_FUNCTION_INFO_V1(price_le);
Datum
price_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) <= 0);
}

/*
 * price = price
 */
PG_FUNCTION_INFO_V1(price_eq);
Datum
price_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) == 0);
}

/*
 * price <> price
 */
PG_FUNCTION_INFO_V1(price_ne);
Datum
price_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) != 0);
}

/*
 * price >= price
 */
PG_FUNCTION_INFO_V1(price_ge);
Datum
price_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) >= 0);
}

/*
 * price > price
 */
PG_FUNCTION_INFO_V1(price_gt);
Datum
price_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PriceCmp(PG_GETARG_PRICE_P(0), PG_GETARG_PRICE_P(1)) > 0);
}

/*
 * The smaller of two prices in the total order (min aggregate)
 */
PG_FUNCTION_INFO_V1(price_smaller);
Datum
price_smaller(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);
	Price	   *b = PG_GETARG_PRICE_P(1);

	PG_RETURN_PRICE_P(PriceCmp(a, b) <= 0 ? a : b);
}

/*
 * The larger of two prices in the total order (max aggregate)
 */
PG_FUNCTION_INFO_V1(price_larger);
Datum
price_larger(PG_FUNCTION_ARGS)
{
	Price	   *a = PG_GETARG_PRICE_P(0);
	Price	   *b = PG_GETARG_PRICE_P(1);

	PG_RETURN_PRICE_P(PriceCmp(a, b) >= 0 ? a : b);
}

/*
 * hash support: units and currency (reserved is always zero)
 */
PG_FUNCTION_INFO_V1(price_hash);
Datum
price_hash(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);

	return hash_any((const unsigned char *) p, offsetof(Price, reserved));
}

/*
 * extended hash support (64 bits, seeded)
 */
PG_FUNCTION_INFO_V1(price_hash_extended);
Datum
price_hash_extended(PG_FUNCTION_ARGS)
{
	Price	   *p = PG_GETARG_PRICE_P(0);

	return hash_any_extended((const unsigned char *) p, offsetof(Price, reserved),
							 (uint64) PG_GETARG_INT64(1));
}

/* ---------- aggregates sum and avg ---------- */

/*
 * Transition state of sum(price) and avg(price): a 128-bit sum (cannot
 * overflow: fewer than 2^63 rows of less than 2^63 each), so the result
 * does not depend on the order of the rows or on a parallel plan; only the
 * final result is checked against the int64 range.
 */
typedef struct PriceAggState
{
	int128		sum;
	int64		count;
	char		currency[4];
} PriceAggState;

#define PRICE_AGG_SERIAL_SIZE (8 + 8 + 8 + 4)

static PriceAggState *
NewAggState(FunctionCallInfo fcinfo, const char *caller)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "%s called in non-aggregate context", caller);
	return (PriceAggState *) MemoryContextAllocZero(aggcontext, sizeof(PriceAggState));
}

static void
AggCheckCurrency(const PriceAggState *state, const char *currency)
{
	if (memcmp(state->currency, currency, 4) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("currency mismatch: %.3s and %.3s", state->currency, currency),
				 errdetail("The sum and the average of prices need a single currency; group by currency(price).")));
}

/*
 * Transition function of sum(price) and avg(price)
 */
PG_FUNCTION_INFO_V1(price_accum);
Datum
price_accum(PG_FUNCTION_ARGS)
{
	PriceAggState *state = PG_ARGISNULL(0) ? NULL : (PriceAggState *) PG_GETARG_POINTER(0);
	Price	   *p;

	if (state == NULL)
		state = NewAggState(fcinfo, "price_accum");
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);
	p = PG_GETARG_PRICE_P(1);
	if (state->count == 0)
		memcpy(state->currency, p->currency, 4);
	else
		AggCheckCurrency(state, p->currency);
	state->sum += p->units;
	state->count++;
	PG_RETURN_POINTER(state);
}

/*
 * Inverse transition function of sum(price) and avg(price) (moving windows)
 */
PG_FUNCTION_INFO_V1(price_accum_inv);
Datum
price_accum_inv(PG_FUNCTION_ARGS)
{
	PriceAggState *state = PG_ARGISNULL(0) ? NULL : (PriceAggState *) PG_GETARG_POINTER(0);
	Price	   *p;

	if (state == NULL)
		elog(ERROR, "price_accum_inv called with no state");
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);
	p = PG_GETARG_PRICE_P(1);
	/* the row was added by price_accum, so the currency matches */
	if (state->count <= 0 || memcmp(state->currency, p->currency, 4) != 0)
		elog(ERROR, "price_accum_inv: row was not aggregated");
	state->sum -= p->units;
	state->count--;
	if (state->count == 0)
		memset(state->currency, 0, sizeof(state->currency));
	PG_RETURN_POINTER(state);
}

/*
 * Combine function of sum(price) and avg(price) (parallel aggregation)
 */
PG_FUNCTION_INFO_V1(price_accum_combine);
Datum
price_accum_combine(PG_FUNCTION_ARGS)
{
	PriceAggState *s1 = PG_ARGISNULL(0) ? NULL : (PriceAggState *) PG_GETARG_POINTER(0);
	PriceAggState *s2 = PG_ARGISNULL(1) ? NULL : (PriceAggState *) PG_GETARG_POINTER(1);

	if (s2 == NULL || s2->count == 0)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
	{
		s1 = NewAggState(fcinfo, "price_accum_combine");
		*s1 = *s2;
		PG_RETURN_POINTER(s1);
	}
	if (s1->count == 0)
		memcpy(s1->currency, s2->currency, 4);
	else
		AggCheckCurrency(s1, s2->currency);
	s1->sum += s2->sum;
	s1->count += s2->count;
	PG_RETURN_POINTER(s1);
}

/*
 * Serialize the state of sum(price) and avg(price) for parallel workers
 */
PG_FUNCTION_INFO_V1(price_accum_serialize);
Datum
price_accum_serialize(PG_FUNCTION_ARGS)
{
	PriceAggState *state = (PriceAggState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	uint128		u = (uint128) state->sum;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "price_accum_serialize called in non-aggregate context");
	pq_begintypsend(&buf);
	pq_sendint64(&buf, (int64) (uint64) (u >> 64));
	pq_sendint64(&buf, (int64) (uint64) u);
	pq_sendint64(&buf, state->count);
	pq_sendbytes(&buf, state->currency, 4);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * Deserialize the state of sum(price) and avg(price)
 */
PG_FUNCTION_INFO_V1(price_accum_deserialize);
Datum
price_accum_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	PriceAggState *state;
	uint64		hi,
				lo;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "price_accum_deserialize called in non-aggregate context");
	if (VARSIZE_ANY_EXHDR(b) != PRICE_AGG_SERIAL_SIZE)
		elog(ERROR, "price_accum_deserialize: unexpected state size %d",
			 (int) VARSIZE_ANY_EXHDR(b));
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	state = (PriceAggState *) palloc0(sizeof(PriceAggState));
	hi = (uint64) pq_getmsgint64(&buf);
	lo = (uint64) pq_getmsgint64(&buf);
	state->sum = (int128) (((uint128) hi << 64) | lo);
	state->count = pq_getmsgint64(&buf);
	pq_copymsgbytes(&buf, state->currency, 4);
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/*
 * Final function of sum(price)
 */
PG_FUNCTION_INFO_V1(price_sum_final);
Datum
price_sum_final(PG_FUNCTION_ARGS)
{
	PriceAggState *state = PG_ARGISNULL(0) ? NULL : (PriceAggState *) PG_GETARG_POINTER(0);

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	if (state->sum > PG_INT64_MAX || state->sum < PG_INT64_MIN)
		ReportOutOfRange();
	PG_RETURN_PRICE_P(price_new((int64) state->sum, state->currency));
}

/*
 * Final function of avg(price), rounded half away from zero
 */
PG_FUNCTION_INFO_V1(price_avg_final);
Datum
price_avg_final(PG_FUNCTION_ARGS)
{
	PriceAggState *state = PG_ARGISNULL(0) ? NULL : (PriceAggState *) PG_GETARG_POINTER(0);
	int64		avg;

	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();
	if (!money_div_round128(state->sum, state->count, &avg))
		elog(ERROR, "average of prices out of range");	/* cannot happen */
	PG_RETURN_PRICE_P(price_new(avg, state->currency));
}

/* ---------- allocation ---------- */

/* The OID of subbilling.price, from the call's result type (price[]) or by name. */
static Oid
PriceTypeOid(FunctionCallInfo fcinfo)
{
	Oid			rettype = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			elem = OidIsValid(rettype) ? get_element_type(rettype) : InvalidOid;

	if (!OidIsValid(elem))
		elem = typenameTypeId(NULL, makeTypeNameFromNameList(list_make2(makeString("subbilling"),
																		 makeString("price"))));
	return elem;
}

/*
 * Weights as int64 in the same ratios: scale to whole numbers by the largest
 * scale, divide by their greatest common divisor.  Exact; 22003 if a weight
 * still does not fit in int64.
 */
static int64 *
WeightsToInt64(ArrayType *arr, int *nweights)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int32		maxscale = 0;
	Numeric		g = NULL;
	Numeric		pow;
	int64	   *w;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weights must be a one-dimensional array")));
	deconstruct_array(arr, NUMERICOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weights must not be empty")));
	for (int i = 0; i < n; i++)
	{
		Numeric		x;
		int32		s;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("weights must not contain NULL")));
		x = DatumGetNumeric(elems[i]);
		if (numeric_is_nan(x) || numeric_is_inf(x) || NumSign(x) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("weights must be finite numbers >= 0")));
		s = DatumGetInt32(DirectFunctionCall1(numeric_scale, elems[i]));
		maxscale = Max(maxscale, s);
	}

	pow = DatumGetNumeric(DirectFunctionCall2(numeric_power,
											  NumericGetDatum(int64_to_numeric(10)),
											  NumericGetDatum(int64_to_numeric(maxscale))));
	for (int i = 0; i < n; i++)
	{
		Numeric		x = NumMul(DatumGetNumeric(elems[i]), pow);

		/* numeric_power may give a scale; drop the (zero) fraction */
		x = DatumGetNumeric(DirectFunctionCall2(numeric_trunc, NumericGetDatum(x), Int32GetDatum(0)));
		elems[i] = NumericGetDatum(x);
		if (NumSign(x) != 0)
			g = g == NULL ? x : DatumGetNumeric(DirectFunctionCall2(numeric_gcd,
																	NumericGetDatum(g),
																	NumericGetDatum(x)));
	}
	if (g == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("weights must not all be zero")));

	w = (int64 *) palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		Numeric		x = DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc, elems[i],
														   NumericGetDatum(g)));

		if (NumCmp(x, int64_to_numeric(PG_INT64_MAX)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("weights out of range"),
					 errdetail("Scaled to whole numbers in the same ratios, each weight must fit in a bigint.")));
		w[i] = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(x)));
	}
	*nweights = n;
	return w;
}

/*
 * allocate(price, numeric[]): split a price into parts proportional to the
 * weights, exactly (largest remainder)
 */
PG_FUNCTION_INFO_V1(price_allocate);
Datum
price_allocate(PG_FUNCTION_ARGS)
{
	Price	   *total = PG_GETARG_PRICE_P(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	const CurrencyInfo *cur = PriceCurrency(total);
	int			n;
	int64	   *w = WeightsToInt64(arr, &n);
	int64	   *parts = (int64 *) palloc(sizeof(int64) * n);
	Datum	   *out = (Datum *) palloc(sizeof(Datum) * n);
	ArrayType  *result;

	if (!money_allocate(total->units, w, n, parts))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed to allocate among %d weights.", n)));
	for (int i = 0; i < n; i++)
		out[i] = PricePGetDatum(MakePrice(parts[i], cur));
	result = construct_array(out, n, PriceTypeOid(fcinfo), sizeof(Price), false, TYPALIGN_DOUBLE);
	PG_RETURN_ARRAYTYPE_P(result);
}
