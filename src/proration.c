/*-------------------------------------------------------------------------
 *
 * proration.c
 *	  prorate(price, period, part): the share of a price for part of a
 *	  period, by days (daterange) or by microseconds (tstzrange).
 *
 * result = round(price * length(part) / length(period)), rounded half away
 * from zero to the currency's minor unit (the one rule, price.h), computed
 * as one exact fraction in 128-bit integers.  Pieces that partition a period
 * and must sum exactly to the whole are split with allocate() instead (see
 * docs/proration.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rangetypes.h"
#include "utils/timestamp.h"

#include "price.h"

PG_FUNCTION_INFO_V1(prorate_daterange);
PG_FUNCTION_INFO_V1(prorate_tstzrange);

static char *
RangeText(RangeType *r)
{
	Oid			typoutput;
	bool		isvarlena;

	getTypeOutputInfo(RangeTypeGetOid(r), &typoutput, &isvarlena);
	return OidOutputFunctionCall(typoutput, RangeTypePGetDatum(r));
}

/*
 * Length of a range in units of its subtype (days or microseconds), after
 * checking that it can be a period: bounded, finite values.  part_of is
 * NULL for the period itself, else the period the part must lie in.
 */
static int64
RangeLength(TypeCacheEntry *typcache, RangeType *r, RangeType *part_of, bool is_date)
{
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;
	bool		finite;
	int64		len;

	range_deserialize(typcache, r, &lower, &upper, &empty);
	if (empty)
		return 0;

	if (lower.infinite || upper.infinite)
		finite = false;
	else if (is_date)
		finite = !DATE_NOT_FINITE(DatumGetDateADT(lower.val)) &&
			!DATE_NOT_FINITE(DatumGetDateADT(upper.val));
	else
		finite = !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(lower.val)) &&
			!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(upper.val));

	if (part_of != NULL)
	{
		if (!range_contains_internal(typcache, part_of, r))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("part is not within the period"),
					 errdetail("Part %s is not contained in period %s.",
							   RangeText(r), RangeText(part_of))));
		/* inside a finite period, so finite */
		Assert(finite);
	}
	else if (!finite)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be bounded"),
				 errdetail("Period %s has an infinite bound.", RangeText(r))));

	if (is_date)
		len = (int64) DatumGetDateADT(upper.val) - (int64) DatumGetDateADT(lower.val);
	else if (pg_sub_s64_overflow(DatumGetTimestampTz(upper.val), DatumGetTimestampTz(lower.val), &len))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("period %s is too long to prorate", RangeText(r))));
	return len;
}

static Datum
Prorate(FunctionCallInfo fcinfo, bool is_date)
{
	Price	   *price = PG_GETARG_PRICE_P(0);
	RangeType  *period = PG_GETARG_RANGE_P(1);
	RangeType  *part = PG_GETARG_RANGE_P(2);
	TypeCacheEntry *typcache = range_get_typcache(fcinfo, RangeTypeGetOid(period));
	int64		period_len;
	int64		part_len;

	if (RangeIsEmpty(period))
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("cannot prorate over an empty period")));
	period_len = RangeLength(typcache, period, NULL, is_date);
	if (period_len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("cannot prorate over an empty period"),
				 errdetail("Period %s has length zero.", RangeText(period))));
	if (RangeIsEmpty(part))
		PG_RETURN_PRICE_P(price_new(0, price->currency));
	part_len = RangeLength(typcache, part, period, is_date);

	PG_RETURN_PRICE_P(price_new(price_units_muldiv(price->units, part_len, period_len),
								price->currency));
}

/*
 * prorate(price, period daterange, part daterange): price * days(part) / days(period)
 */
Datum
prorate_daterange(PG_FUNCTION_ARGS)
{
	return Prorate(fcinfo, true);
}

/*
 * prorate(price, period tstzrange, part tstzrange): by microseconds
 */
Datum
prorate_tstzrange(PG_FUNCTION_ARGS)
{
	return Prorate(fcinfo, false);
}
