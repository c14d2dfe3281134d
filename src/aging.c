/*-------------------------------------------------------------------------
 *
 * aging.c
 *	  subbilling.aging_buckets() (C symbol kpi_aging_amounts): the
 *	  receivables aging buckets of one kept account row
 *	  (subbilling_internal.kpi_aging) in one call, as the numeric amounts
 *	  ar_aging shows.
 *
 * The arithmetic is plain C in src/core/aging.c (aging.h has the
 * formulas).  This wrapper reads the arrays in place (no deconstruction),
 * checks them, and converts the six minor-unit amounts to numeric with the
 * currency's exponent.  The result depends on the arguments only (the
 * caller passes today), so the function is immutable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/numeric.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "core/aging.h"
#include "core/money.h"

PG_FUNCTION_INFO_V1(kpi_aging_amounts);

/* the elements of a one-dimensional array without nulls (0 for an empty one) */
static int
plain_array_length(ArrayType *a, const char *name)
{
	if (ARR_NDIM(a) == 0)
		return 0;
	if (ARR_NDIM(a) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	if (ARR_HASNULL(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain nulls", name)));
	return ARR_DIMS(a)[0];
}

/*
 * aging_buckets(due_dates date[], cum_minor bigint[], undated_minor
 * bigint, today date, currency text): current, overdue_1_30,
 * overdue_31_60, overdue_61_90, overdue_90_plus, total (numeric, major
 * units of the currency).
 */
Datum
kpi_aging_amounts(PG_FUNCTION_ARGS)
{
	ArrayType  *due_a = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *cum_a = PG_GETARG_ARRAYTYPE_P(1);
	int64		undated = PG_GETARG_INT64(2);
	DateADT		today = PG_GETARG_DATEADT(3);
	text	   *code = PG_GETARG_TEXT_PP(4);
	const CurrencyInfo *cur;
	TupleDesc	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;
	int			n;
	int64		amounts[AGING_BUCKETS];
	Datum		values[AGING_BUCKETS];
	bool		nulls[AGING_BUCKETS] = {false};
	AgingStatus st;

	if (ARR_ELEMTYPE(due_a) != DATEOID || ARR_ELEMTYPE(cum_a) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("due_dates must be date[] and cum_minor bigint[]")));
	n = plain_array_length(due_a, "due_dates");
	if (plain_array_length(cum_a, "cum_minor") != n + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cum_minor must have one element more than due_dates")));
	if (DATE_NOT_FINITE(today))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("today must be a finite date")));
	cur = money_currency(VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code));
	if (cur == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown currency code \"%s\"", text_to_cstring(code))));

	st = aging_buckets((const int32_t *) ARR_DATA_PTR(due_a), n, (const int64_t *) ARR_DATA_PTR(cum_a),
					   undated, today, amounts);
	if (st == AGING_NOT_ASCENDING)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("due_dates must be strictly ascending")));
	if (st == AGING_BAD_TODAY)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("today is out of range")));
	if (st != AGING_OK)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount out of range")));

	if (tupdesc == NULL)
	{
		TupleDesc	rt;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &rt) != TYPEFUNC_COMPOSITE || rt->natts != AGING_BUCKETS)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("aging_buckets must return a record of six numeric columns")));
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		tupdesc = BlessTupleDesc(CreateTupleDescCopy(rt));
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = tupdesc;
	}
	for (int b = 0; b < AGING_BUCKETS; b++)
		values[b] = NumericGetDatum(int64_div_fast_to_numeric(amounts[b], cur->exponent));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
