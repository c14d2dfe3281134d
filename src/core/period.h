/*-------------------------------------------------------------------------
 *
 * period.h
 *	  Billing periods (cadences) and the calendar arithmetic behind them.
 *
 * Plain C, no PostgreSQL headers: unit-tested and fuzzed on its own
 * (test/unit/test_period.c, test/fuzz/fuzz_period.c).  The fmgr wrappers
 * are in src/period.c.
 *
 * A billing period is a positive count of months or of days.  Years are
 * stored as 12 months and weeks as 7 days, so '1 year' = '12 months' and
 * '2 weeks' = '14 days' are the same value (equality is semantic).
 *
 * Dates are counted in days since 2000-01-01 in the proleptic Gregorian
 * calendar (PostgreSQL's DateADT convention), held in int64 so that no
 * intermediate result can overflow; the caller checks the final range.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_PERIOD_H
#define SUBBILLING_CORE_PERIOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum BillingUnit
{
	BILLING_UNIT_MONTH = 0,		/* count is a number of months */
	BILLING_UNIT_DAY = 1		/* count is a number of days */
} BillingUnit;

typedef struct BillingPeriod
{
	int32_t		count;			/* 1 .. PERIOD_MAX_MONTHS or PERIOD_MAX_DAYS */
	int32_t		unit;			/* a BillingUnit */
} BillingPeriod;

/* At most 1000 years: 12000 months, or 1000 years of 365 days */
#define PERIOD_MAX_MONTHS	12000
#define PERIOD_MAX_DAYS		365000

/* Longest text form ("365000 days", "1000 years") with room to spare */
#define PERIOD_FORMAT_MAX	32

typedef enum PeriodParseStatus
{
	PERIOD_PARSE_OK = 0,
	PERIOD_PARSE_SYNTAX,		/* not a count + unit, an alias or ISO 8601 */
	PERIOD_PARSE_MIXED,			/* ISO 8601 with more than one component */
	PERIOD_PARSE_NOT_POSITIVE,	/* count is zero or negative */
	PERIOD_PARSE_OUT_OF_RANGE	/* count above the 1000-year limit */
} PeriodParseStatus;

/*
 * Parse str[0..len) (need not be NUL-terminated; a NUL byte is just an
 * invalid character).  Accepted, case-insensitive, surrounding white space
 * ignored:
 *	 [+|-]N [ ] day|days|week|weeks|month|months|year|years
 *	 daily weekly monthly quarterly semiannually yearly annually
 *	 PnD PnW PnM PnY (ISO 8601, one component)
 */
extern PeriodParseStatus period_parse(const char *str, size_t len,
									  BillingPeriod *result);

/* True if bp is a valid value (unit known, count within limits). */
extern bool period_is_valid(BillingPeriod bp);

/* Canonical text form into buf (PERIOD_FORMAT_MAX bytes); returns its length. */
extern size_t period_format(BillingPeriod bp, char *buf);

/*
 * Total order: by average length in the Gregorian calendar (146097 days
 * per 4800 months), ties with months first.  Returns <0, 0, >0.
 */
extern int	period_cmp(BillingPeriod a, BillingPeriod b);

/* Packing into one int64 (the SQL type is pass-by-value like int8). */
extern int64_t period_pack(BillingPeriod bp);
extern bool period_unpack(int64_t packed, BillingPeriod *bp);

/* Calendar, days since 2000-01-01, proleptic Gregorian, astronomical years */
extern bool period_is_leap_year(int64_t year);
extern int	period_days_in_month(int64_t year, int month);
extern int64_t period_days_from_civil(int64_t year, int month, int day);
extern void period_civil_from_days(int64_t days, int64_t *year, int *month,
								   int *day);

/*
 * The n-th boundary from anchor (days since 2000-01-01), computed from the
 * anchor itself: month-based periods advance the anchor's year/month by
 * n * count months and clamp its day to the length of the target month;
 * day-based periods add n * count days.  Valid for |anchor| < 2^31 and
 * |n| <= 2^32 (no intermediate overflow).
 */
extern int64_t period_start_days(int64_t anchor, BillingPeriod bp, int64_t n);

/*
 * The index n of the period holding day d:
 * period_start_days(anchor, bp, n) <= d < period_start_days(anchor, bp, n + 1).
 * Negative when d is before the anchor.  Valid for |anchor|, |d| < 2^31.
 */
extern int64_t period_index_of(int64_t anchor, BillingPeriod bp, int64_t d);

#endif							/* SUBBILLING_CORE_PERIOD_H */
