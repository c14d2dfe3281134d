/*-------------------------------------------------------------------------
 *
 * aging.h
 *	  Receivables aging buckets from running totals over due dates.
 *
 * Plain C, no PostgreSQL headers: unit-tested on its own
 * (test/unit/test_aging.c).  The fmgr wrapper is in src/aging.c; the kept
 * rows it reads are subbilling_internal.kpi_aging (sql/parts/900_kpis.sql).
 *
 * An account's open items in one currency are kept as the distinct due
 * dates, ascending (due[0 .. n-1], days since any fixed epoch), and the
 * running open amount in minor units: cum[0] = 0, cum[k + 1] = the amount
 * due on or before due[k].  The amount due on or before day x is cum[j],
 * j = the number of due dates <= x (binary search).  With today t:
 *
 *	 current	= cum[n] - due_by(t - 1)			(due today or later)
 *	 1-30		= due_by(t - 1)  - due_by(t - 31)
 *	 31-60		= due_by(t - 31) - due_by(t - 61)
 *	 61-90		= due_by(t - 61) - due_by(t - 91)
 *	 over 90	= due_by(t - 91)
 *	 total		= cum[n] + the amount without a due date
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_AGING_H
#define SUBBILLING_CORE_AGING_H

#include <stdint.h>

/* the buckets, in the order of ar_aging's columns */
#define AGING_BUCKETS 6

typedef enum AgingStatus
{
	AGING_OK = 0,
	AGING_NOT_ASCENDING,		/* the due dates are not strictly ascending */
	AGING_BAD_TODAY,			/* today is too close to the day range's ends */
	AGING_OVERFLOW				/* a difference or the total does not fit in int64 */
} AgingStatus;

/*
 * The six amounts (minor units) into out[]: current, 1-30, 31-60, 61-90,
 * over 90 days past due, total.  due has n entries, cum n + 1.  Nothing is
 * written unless AGING_OK is returned.
 */
extern AgingStatus aging_buckets(const int32_t *due, int n, const int64_t *cum,
								 int64_t undated, int32_t today, int64_t out[AGING_BUCKETS]);

#endif							/* SUBBILLING_CORE_AGING_H */
