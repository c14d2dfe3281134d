/*-------------------------------------------------------------------------
 *
 * period.h
 *	  The billing_period type: a billing cadence ('1 month', '2 weeks').
 *
 * Eight bytes, passed by value like bigint: the core BillingPeriod (count
 * and unit, see src/core/period.h) packed into one int64.  Other C files of
 * the extension (billing, the worker) use the helpers below so that the
 * calendar and its range checks live in one place (src/period.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_PERIOD_H
#define SUBBILLING_PERIOD_H

#include "fmgr.h"
#include "utils/date.h"

#include "core/period.h"

/* Unpack and check a billing_period datum (elog on a corrupt value). */
extern BillingPeriod DatumGetBillingPeriod(Datum datum);
extern Datum BillingPeriodGetDatum(BillingPeriod bp);

#define PG_GETARG_BILLING_PERIOD(n)	DatumGetBillingPeriod(PG_GETARG_DATUM(n))
#define PG_RETURN_BILLING_PERIOD(x)	return BillingPeriodGetDatum(x)

/*
 * The n-th period boundary after anchor (n may be negative).  ereport(ERROR)
 * with 22023 if anchor is infinite and 22008 if the result is outside the
 * date range.
 */
extern DateADT billing_period_start(DateADT anchor, BillingPeriod bp, int64 n);

/* The index n of the period holding d; 22023 if anchor or d is infinite. */
extern int64 billing_period_index(DateADT anchor, BillingPeriod bp, DateADT d);

#endif							/* SUBBILLING_PERIOD_H */
