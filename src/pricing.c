/*-------------------------------------------------------------------------
 *
 * pricing.c
 *	  Pricing models: tiered_price (graduated and volume tiers) and
 *	  package_price.
 *
 * Tiers come as an array of the composite subbilling.tier
 * (up_to numeric, unit_price price, flat_price price).  Tier i covers the
 * quantities above up_to of tier i - 1 (0 for the first) up to and
 * including its own up_to; up_to NULL (last tier only) means no limit.
 * The "current" tier is the first whose up_to is NULL or >= quantity, so a
 * quantity of 0 is in the first tier.
 *
 *	 graduated: every tier up to the current one is reached: its flat price
 *				plus its unit price times the units that fall into it
 *	 volume:	the current tier's flat price plus its unit price times the
 *				whole quantity
 *
 * The total is computed exactly in numeric (minor units) and rounded once,
 * half away from zero, to the currency's minor unit (price.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "price.h"

PG_FUNCTION_INFO_V1(tiered_price);
PG_FUNCTION_INFO_V1(package_price);

typedef enum TierMode
{
	TIER_GRADUATED,
	TIER_VOLUME
} TierMode;

typedef struct Tier
{
	Numeric		up_to;			/* NULL: no limit */
	Price	   *unit_price;		/* NULL: zero */
	Price	   *flat_price;		/* NULL: zero */
} Tier;

static int
NumCmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static char *
NumText(Numeric n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
}

static bool
NumIsFinite(Numeric n)
{
	return !numeric_is_nan(n) && !numeric_is_inf(n);
}

static void
CheckQuantity(Numeric q, const char *what)
{
	if (!NumIsFinite(q))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number, not %s", what, NumText(q))));
	if (NumCmp(q, int64_to_numeric(0)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what),
				 errdetail("The %s is %s.", what, NumText(q))));
}

/* The price's minor units as numeric, or 0 for NULL */
static Numeric
UnitsOf(Price *p)
{
	return int64_to_numeric(p != NULL ? p->units : 0);
}

/* Take the currency from the first price, check every other against it */
static void
TrackCurrency(Price **currency, Price *p)
{
	if (p == NULL)
		return;
	if (*currency == NULL)
		*currency = p;
	else
		price_check_same_currency(*currency, p);
}

/*
 * Read and validate the tiers array; returns the tiers and, via *currency,
 * a price carrying the common currency.
 */
static Tier *
ReadTiers(ArrayType *arr, int *ntiers, Price **currency)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Tier	   *tiers;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tiers must be a one-dimensional array")));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tiers must not be empty")));

	tiers = palloc(sizeof(Tier) * n);
	*currency = NULL;
	for (int i = 0; i < n; i++)
	{
		HeapTupleHeader t;
		bool		isnull;
		Datum		d;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tier %d is null", i + 1)));
		t = DatumGetHeapTupleHeader(elems[i]);

		d = GetAttributeByNum(t, 1, &isnull);
		tiers[i].up_to = isnull ? NULL : DatumGetNumeric(d);
		d = GetAttributeByNum(t, 2, &isnull);
		tiers[i].unit_price = isnull ? NULL : DatumGetPriceP(d);
		d = GetAttributeByNum(t, 3, &isnull);
		tiers[i].flat_price = isnull ? NULL : DatumGetPriceP(d);

		TrackCurrency(currency, tiers[i].unit_price);
		TrackCurrency(currency, tiers[i].flat_price);

		if (tiers[i].up_to == NULL)
		{
			if (i != n - 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("only the last tier may have no upper limit"),
						 errdetail("Tier %d of %d has up_to NULL.", i + 1, n)));
			continue;
		}
		if (!NumIsFinite(tiers[i].up_to))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("up_to of tier %d must be a finite number or NULL, not %s",
							i + 1, NumText(tiers[i].up_to))));
		if (i == 0 && NumCmp(tiers[i].up_to, int64_to_numeric(0)) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("up_to of tier 1 must be positive, not %s", NumText(tiers[i].up_to))));
		if (i > 0 && NumCmp(tiers[i].up_to, tiers[i - 1].up_to) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("up_to must be strictly ascending"),
					 errdetail("Tier %d has up_to %s, not above %s of tier %d.",
							   i + 1, NumText(tiers[i].up_to), NumText(tiers[i - 1].up_to), i)));
	}
	if (*currency == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tiers have no price"),
				 errdetail("At least one unit_price or flat_price must be given, to fix the currency.")));
	*ntiers = n;
	return tiers;
}

static TierMode
ParseMode(text *mode)
{
	char	   *m = text_to_cstring(mode);

	if (pg_strcasecmp(m, "graduated") == 0)
		return TIER_GRADUATED;
	if (pg_strcasecmp(m, "volume") == 0)
		return TIER_VOLUME;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown pricing mode \"%s\"", m),
			 errhint("The mode is \"graduated\" or \"volume\".")));
	return TIER_GRADUATED;		/* keep compiler quiet */
}

/*
 * tiered_price(quantity, tiers, mode): graduated or volume tiers
 */
Datum
tiered_price(PG_FUNCTION_ARGS)
{
	Numeric		quantity = PG_GETARG_NUMERIC(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	TierMode	mode = ParseMode(PG_GETARG_TEXT_PP(2));
	Price	   *currency;
	Tier	   *tiers;
	int			n;
	int			k;
	Numeric		total;
	Numeric		lower;

	CheckQuantity(quantity, "quantity");
	tiers = ReadTiers(arr, &n, &currency);

	/* the current tier: the first whose limit holds the quantity */
	for (k = 0; k < n; k++)
		if (tiers[k].up_to == NULL || NumCmp(quantity, tiers[k].up_to) <= 0)
			break;
	if (k == n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantity %s exceeds the last tier", NumText(quantity)),
				 errdetail("The last tier ends at %s; give it up_to NULL for no limit.",
						   NumText(tiers[n - 1].up_to))));

	if (mode == TIER_VOLUME)
		total = numeric_add_opt_error(UnitsOf(tiers[k].flat_price),
									  numeric_mul_opt_error(quantity, UnitsOf(tiers[k].unit_price), NULL),
									  NULL);
	else
	{
		total = int64_to_numeric(0);
		lower = int64_to_numeric(0);
		for (int i = 0; i <= k; i++)
		{
			Numeric		upper = i < k ? tiers[i].up_to : quantity;
			Numeric		units = numeric_sub_opt_error(upper, lower, NULL);

			total = numeric_add_opt_error(total, UnitsOf(tiers[i].flat_price), NULL);
			total = numeric_add_opt_error(total,
										  numeric_mul_opt_error(units, UnitsOf(tiers[i].unit_price), NULL),
										  NULL);
			lower = upper;
		}
	}

	/* one rounding at the end: round(1 * total) half away from zero, 22003 on overflow */
	PG_RETURN_PRICE_P(price_new(price_units_mul_numeric(1, total), currency->currency));
}

/*
 * package_price(quantity, package_size, package): ceil(quantity / size) packages
 */
Datum
package_price(PG_FUNCTION_ARGS)
{
	Numeric		quantity = PG_GETARG_NUMERIC(0);
	Numeric		size = PG_GETARG_NUMERIC(1);
	Price	   *package = PG_GETARG_PRICE_P(2);
	Numeric		packages;
	Numeric		rest;

	CheckQuantity(quantity, "quantity");
	if (!NumIsFinite(size) || NumCmp(size, int64_to_numeric(0)) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("package size must be positive, not %s", NumText(size))));

	/* exact: whole packages, plus one for any remainder (quantity >= 0, size > 0) */
	packages = DatumGetNumeric(DirectFunctionCall2(numeric_div_trunc, NumericGetDatum(quantity),
												   NumericGetDatum(size)));
	rest = numeric_mod_opt_error(quantity, size, NULL);
	if (NumCmp(rest, int64_to_numeric(0)) != 0)
		packages = numeric_add_opt_error(packages, int64_to_numeric(1), NULL);

	PG_RETURN_PRICE_P(price_new(price_units_mul_numeric(package->units, packages),
								package->currency));
}
