/*-------------------------------------------------------------------------
 *
 * period.c
 *	  fmgr wrappers of the billing_period type and the period functions:
 *	  I/O, comparison, hashing, period_start, period_of, period_index,
 *	  periods_per_year, monthly.
 *
 * Parsing, formatting, ordering and the calendar are plain C in
 * src/core/period.c; this file adds the PostgreSQL range checks and error
 * reports.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/rangetypes.h"
#include "utils/timestamp.h"

#include "period.h"
#include "price.h"

PG_FUNCTION_INFO_V1(billing_period_in);
PG_FUNCTION_INFO_V1(billing_period_out);
PG_FUNCTION_INFO_V1(billing_period_recv);
PG_FUNCTION_INFO_V1(billing_period_send);
PG_FUNCTION_INFO_V1(billing_period_eq);
PG_FUNCTION_INFO_V1(billing_period_ne);
PG_FUNCTION_INFO_V1(billing_period_lt);
PG_FUNCTION_INFO_V1(billing_period_le);
PG_FUNCTION_INFO_V1(billing_period_gt);
PG_FUNCTION_INFO_V1(billing_period_ge);
PG_FUNCTION_INFO_V1(billing_period_cmp);
PG_FUNCTION_INFO_V1(billing_period_hash);
PG_FUNCTION_INFO_V1(billing_period_hash_extended);
PG_FUNCTION_INFO_V1(billing_period_to_interval);
PG_FUNCTION_INFO_V1(period_start);
PG_FUNCTION_INFO_V1(period_of);
PG_FUNCTION_INFO_V1(period_index);
PG_FUNCTION_INFO_V1(periods_per_year);
PG_FUNCTION_INFO_V1(monthly);

BillingPeriod
DatumGetBillingPeriod(Datum datum)
{
	BillingPeriod bp;

	if (!period_unpack(DatumGetInt64(datum), &bp))
		elog(ERROR, "corrupt billing_period value " INT64_FORMAT, DatumGetInt64(datum));
	return bp;
}

Datum
BillingPeriodGetDatum(BillingPeriod bp)
{
	return Int64GetDatum(period_pack(bp));
}

/*
 * Convert a text form, reporting every parse failure with its SQLSTATE
 */
static BillingPeriod
ParseBillingPeriod(const char *str)
{
	BillingPeriod bp;

	switch (period_parse(str, strlen(str), &bp))
	{
		case PERIOD_PARSE_OK:
			break;
		case PERIOD_PARSE_SYNTAX:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: \"%s\"", "billing_period", str),
					 errdetail("Expected a count and a unit (\"3 months\"), an alias (\"quarterly\") or an ISO 8601 duration (\"P3M\").")));
			break;
		case PERIOD_PARSE_MIXED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: \"%s\"", "billing_period", str),
					 errdetail("A billing period has a single component: years, months, weeks or days.")));
			break;
		case PERIOD_PARSE_NOT_POSITIVE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid billing period: \"%s\"", str),
					 errdetail("The count of a billing period must be at least 1.")));
			break;
		case PERIOD_PARSE_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%s\" is out of range for type %s", str, "billing_period"),
					 errdetail("A billing period is at most 1000 years: %d months or %d days.",
							   PERIOD_MAX_MONTHS, PERIOD_MAX_DAYS)));
			break;
	}
	return bp;
}

/*
 * Text input: '3 months', 'quarterly', 'P3M'
 */
Datum
billing_period_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);

	PG_RETURN_BILLING_PERIOD(ParseBillingPeriod(str));
}

/*
 * Text output, canonical: '1 month', '3 months', '1 year', '2 weeks', '1 day'
 */
Datum
billing_period_out(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);
	char		buf[PERIOD_FORMAT_MAX];

	period_format(bp, buf);
	PG_RETURN_CSTRING(pstrdup(buf));
}

/*
 * Binary input: unit (1 byte: 0 = months, 1 = days), count (int32); re-validated
 */
Datum
billing_period_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	BillingPeriod bp;

	bp.unit = pq_getmsgbyte(buf);
	bp.count = pq_getmsgint(buf, 4);
	if (bp.unit != BILLING_UNIT_MONTH && bp.unit != BILLING_UNIT_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid unit %d in external billing_period value", bp.unit),
				 errdetail("The unit must be 0 (months) or 1 (days).")));
	if (!period_is_valid(bp))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("billing_period count %d is out of range", bp.count),
				 errdetail("The count must be between 1 and %d.",
						   bp.unit == BILLING_UNIT_MONTH ? PERIOD_MAX_MONTHS : PERIOD_MAX_DAYS)));
	PG_RETURN_BILLING_PERIOD(bp);
}

/*
 * Binary output: unit (1 byte), count (int32)
 */
Datum
billing_period_send(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, (uint8) bp.unit);
	pq_sendint32(&buf, bp.count);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static int
CompareArgs(FunctionCallInfo fcinfo)
{
	return period_cmp(PG_GETARG_BILLING_PERIOD(0), PG_GETARG_BILLING_PERIOD(1));
}

/*
 * a = b
 */
Datum
billing_period_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) == 0);
}

/*
 * a <> b
 */
Datum
billing_period_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) != 0);
}

/*
 * a < b
 */
Datum
billing_period_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) < 0);
}

/*
 * a <= b
 */
Datum
billing_period_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) <= 0);
}

/*
 * a > b
 */
Datum
billing_period_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) > 0);
}

/*
 * a >= b
 */
Datum
billing_period_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareArgs(fcinfo) >= 0);
}

/*
 * btree support: -1, 0, 1
 */
Datum
billing_period_cmp(PG_FUNCTION_ARGS)
{
	int			c = CompareArgs(fcinfo);

	PG_RETURN_INT32(c < 0 ? -1 : (c > 0 ? 1 : 0));
}

/*
 * hash support: equal values have equal packed forms
 */
Datum
billing_period_hash(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);

	return DirectFunctionCall1(hashint8, Int64GetDatum(period_pack(bp)));
}

/*
 * extended hash support (with a seed)
 */
Datum
billing_period_hash_extended(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);

	return DirectFunctionCall2(hashint8extended, Int64GetDatum(period_pack(bp)),
							   PG_GETARG_DATUM(1));
}

/*
 * Cast to interval: months-based to months, days-based to days
 */
Datum
billing_period_to_interval(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);
	Interval   *result = (Interval *) palloc0(sizeof(Interval));

	if (bp.unit == BILLING_UNIT_MONTH)
		result->month = bp.count;
	else
		result->day = bp.count;
	PG_RETURN_INTERVAL_P(result);
}

static void
CheckFiniteDate(DateADT d, const char *what)
{
	if (DATE_NOT_FINITE(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be finite", what)));
}

DateADT
billing_period_start(DateADT anchor, BillingPeriod bp, int64 n)
{
	int64		days;

	CheckFiniteDate(anchor, "anchor date");
	days = period_start_days(anchor, bp, n);
	if (!IS_VALID_DATE(days))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("date out of range"),
				 errdetail("Period boundary " INT64_FORMAT " from anchor %s is outside the supported range of dates.",
						   n, DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(anchor))))));
	return (DateADT) days;
}

int64
billing_period_index(DateADT anchor, BillingPeriod bp, DateADT d)
{
	CheckFiniteDate(anchor, "anchor date");
	CheckFiniteDate(d, "date");
	return period_index_of(anchor, bp, d);
}

/*
 * period_start(anchor, period, n): the n-th boundary, computed from the anchor
 */
Datum
period_start(PG_FUNCTION_ARGS)
{
	DateADT		anchor = PG_GETARG_DATEADT(0);
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(1);
	int32		n = PG_GETARG_INT32(2);

	PG_RETURN_DATEADT(billing_period_start(anchor, bp, n));
}

/*
 * period_of(anchor, period, d): the half-open period [start, next) holding d
 */
Datum
period_of(PG_FUNCTION_ARGS)
{
	DateADT		anchor = PG_GETARG_DATEADT(0);
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(1);
	DateADT		d = PG_GETARG_DATEADT(2);
	TypeCacheEntry *typcache = range_get_typcache(fcinfo, DATERANGEOID);
	int64		n = billing_period_index(anchor, bp, d);
	RangeBound	lower;
	RangeBound	upper;

	lower.val = DateADTGetDatum(billing_period_start(anchor, bp, n));
	lower.infinite = false;
	lower.inclusive = true;
	lower.lower = true;
	upper.val = DateADTGetDatum(billing_period_start(anchor, bp, n + 1));
	upper.infinite = false;
	upper.inclusive = false;
	upper.lower = false;
#if PG_VERSION_NUM >= 160000
	PG_RETURN_RANGE_P(make_range(typcache, &lower, &upper, false, NULL));
#else
	PG_RETURN_RANGE_P(make_range(typcache, &lower, &upper, false));
#endif
}

/*
 * period_index(anchor, period, d): n such that d lies in period n
 */
Datum
period_index(PG_FUNCTION_ARGS)
{
	DateADT		anchor = PG_GETARG_DATEADT(0);
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(1);
	DateADT		d = PG_GETARG_DATEADT(2);
	int64		n = billing_period_index(anchor, bp, d);

	/* |n| <= days between two valid dates < 2^31 */
	if (n < PG_INT32_MIN || n > PG_INT32_MAX)
		elog(ERROR, "period index " INT64_FORMAT " out of range", n);
	PG_RETURN_INT32((int32) n);
}

/*
 * Periods per year as the fraction num / den: 12 / months, 52 / weeks (a
 * count of days divisible by 7) or 365 / days.
 */
static void
PeriodsPerYear(BillingPeriod bp, int64 *num, int64 *den)
{
	if (bp.unit == BILLING_UNIT_MONTH)
	{
		*num = 12;
		*den = bp.count;
	}
	else if (bp.count % 7 == 0)
	{
		*num = 52;
		*den = bp.count / 7;
	}
	else
	{
		*num = 365;
		*den = bp.count;
	}
}

/*
 * periods_per_year(period): 12/months, 52/weeks or 365/days
 */
Datum
periods_per_year(PG_FUNCTION_ARGS)
{
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(0);
	int64		num;
	int64		den;
	Numeric		q;

	PeriodsPerYear(bp, &num, &den);
	q = numeric_div_opt_error(int64_to_numeric(num), int64_to_numeric(den), NULL);
	return DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(q));
}

/*
 * monthly(price, period): the price per month, price * periods_per_year / 12,
 * as one exact fraction rounded half away from zero
 */
Datum
monthly(PG_FUNCTION_ARGS)
{
	Price	   *price = PG_GETARG_PRICE_P(0);
	BillingPeriod bp = PG_GETARG_BILLING_PERIOD(1);
	int64		num;
	int64		den;

	PeriodsPerYear(bp, &num, &den);
	/* den <= 365000 days: 12 * den cannot overflow */
	PG_RETURN_PRICE_P(price_new(price_units_muldiv(price->units, num, 12 * den), price->currency));
}
