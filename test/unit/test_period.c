/*
 * Unit tests of src/core/period.c: parsing, formatting, ordering, the
 * calendar and period boundaries.  Prints TAP.
 */
#include <stdio.h>
#include <string.h>

#include "period.h"
#include "tap.h"

static BillingPeriod
bp(int32_t count, int32_t unit)
{
	BillingPeriod p;

	p.count = count;
	p.unit = unit;
	return p;
}

/* printable copy of s for a test name: control characters as \n, \t, \0 ... */
static const char *
printable(const char *s, size_t len)
{
	static char buf[128];
	size_t		i,
				o = 0;

	for (i = 0; i < len && o < sizeof(buf) - 3; i++)
	{
		char		c = s[i];

		if (c == '\n' || c == '\t' || c == '\0' || c == '\r' || c == '\f' || c == '\v')
		{
			buf[o++] = '\\';
			buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\0' ? '0' : c == '\r' ? 'r' : c == '\f' ? 'f' : 'v';
		}
		else
			buf[o++] = c;
	}
	buf[o] = '\0';
	return buf;
}

static PeriodParseStatus
parse(const char *s, BillingPeriod *out)
{
	return period_parse(s, strlen(s), out);
}

/* input parses to (count, unit) and formats as canonical */
static void
check_parse(const char *in, int32_t count, int32_t unit, const char *canonical)
{
	BillingPeriod p = {0, 0};
	char		buf[PERIOD_FORMAT_MAX];
	char		name[160];
	PeriodParseStatus st = parse(in, &p);

	snprintf(name, sizeof(name), "parse \"%s\" -> %s", printable(in, strlen(in)), canonical);
	if (st != PERIOD_PARSE_OK || p.count != count || p.unit != unit)
	{
		ok(0, name);
		printf("# status %d count %d unit %d\n", st, p.count, p.unit);
		return;
	}
	period_format(p, buf);
	ok(strcmp(buf, canonical) == 0, name);
	if (strcmp(buf, canonical) != 0)
		printf("# got \"%s\"\n", buf);
}

static void
check_error(const char *in, PeriodParseStatus expected)
{
	BillingPeriod p;
	char		name[160];
	PeriodParseStatus st = parse(in, &p);

	snprintf(name, sizeof(name), "parse \"%s\" gives status %d", printable(in, strlen(in)), expected);
	ok(st == expected, name);
	if (st != expected)
		printf("# got status %d\n", st);
}

static int64_t
ymd(int64_t y, int m, int d)
{
	return period_days_from_civil(y, m, d);
}

static void
check_start(int64_t anchor, BillingPeriod p, int64_t n, int64_t expected, const char *name)
{
	int64_t		got = period_start_days(anchor, p, n);

	ok(got == expected, name);
	if (got != expected)
	{
		int64_t		y;
		int			m,
					d;

		period_civil_from_days(got, &y, &m, &d);
		printf("# got %lld-%02d-%02d\n", (long long) y, m, d);
	}
}

int
main(void)
{
	BillingPeriod p,
				q;
	char		buf[PERIOD_FORMAT_MAX];
	int			i;
	int			good;

	/* every text form, alias and ISO form */
	check_parse("1 month", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("3 months", 3, BILLING_UNIT_MONTH, "3 months");
	check_parse("1 year", 12, BILLING_UNIT_MONTH, "1 year");
	check_parse("2 weeks", 14, BILLING_UNIT_DAY, "2 weeks");
	check_parse("14 days", 14, BILLING_UNIT_DAY, "2 weeks");
	check_parse("1 day", 1, BILLING_UNIT_DAY, "1 day");
	check_parse("10 days", 10, BILLING_UNIT_DAY, "10 days");
	check_parse("12 months", 12, BILLING_UNIT_MONTH, "1 year");
	check_parse("18 months", 18, BILLING_UNIT_MONTH, "18 months");
	check_parse("24 months", 24, BILLING_UNIT_MONTH, "2 years");
	check_parse("7 days", 7, BILLING_UNIT_DAY, "1 week");
	check_parse("1 months", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("3 month", 3, BILLING_UNIT_MONTH, "3 months");
	check_parse("  2 Years\t", 24, BILLING_UNIT_MONTH, "2 years");
	check_parse("1MONTH", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("+1 week", 7, BILLING_UNIT_DAY, "1 week");
	check_parse("007 days", 7, BILLING_UNIT_DAY, "1 week");
	check_parse("1 \n  day", 1, BILLING_UNIT_DAY, "1 day");
	check_parse("daily", 1, BILLING_UNIT_DAY, "1 day");
	check_parse("weekly", 7, BILLING_UNIT_DAY, "1 week");
	check_parse("monthly", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("quarterly", 3, BILLING_UNIT_MONTH, "3 months");
	check_parse("semiannually", 6, BILLING_UNIT_MONTH, "6 months");
	check_parse("yearly", 12, BILLING_UNIT_MONTH, "1 year");
	check_parse("ANNUALLY", 12, BILLING_UNIT_MONTH, "1 year");
	check_parse(" Monthly ", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("P1M", 1, BILLING_UNIT_MONTH, "1 month");
	check_parse("P3M", 3, BILLING_UNIT_MONTH, "3 months");
	check_parse("P1Y", 12, BILLING_UNIT_MONTH, "1 year");
	check_parse("P2W", 14, BILLING_UNIT_DAY, "2 weeks");
	check_parse("P14D", 14, BILLING_UNIT_DAY, "2 weeks");
	check_parse("p6m", 6, BILLING_UNIT_MONTH, "6 months");
	check_parse("P1000Y", 12000, BILLING_UNIT_MONTH, "1000 years");
	check_parse("12000 months", 12000, BILLING_UNIT_MONTH, "1000 years");
	check_parse("365000 days", 365000, BILLING_UNIT_DAY, "365000 days");
	check_parse("52142 weeks", 364994, BILLING_UNIT_DAY, "52142 weeks");

	/* every malformed class */
	check_error("", PERIOD_PARSE_SYNTAX);
	check_error("   ", PERIOD_PARSE_SYNTAX);
	check_error("month", PERIOD_PARSE_SYNTAX);
	check_error("1", PERIOD_PARSE_SYNTAX);
	check_error("1 fortnight", PERIOD_PARSE_SYNTAX);
	check_error("1.5 months", PERIOD_PARSE_SYNTAX);
	check_error("1 month 2 days", PERIOD_PARSE_SYNTAX);
	check_error("one month", PERIOD_PARSE_SYNTAX);
	check_error("1 mon", PERIOD_PARSE_SYNTAX);
	check_error("-", PERIOD_PARSE_SYNTAX);
	check_error("- 1 month", PERIOD_PARSE_SYNTAX);
	check_error("monthly monthly", PERIOD_PARSE_SYNTAX);
	check_error("P", PERIOD_PARSE_SYNTAX);
	check_error("P1", PERIOD_PARSE_SYNTAX);
	check_error("PM", PERIOD_PARSE_SYNTAX);
	check_error("P1X", PERIOD_PARSE_SYNTAX);
	check_error("P1M ", PERIOD_PARSE_OK);
	check_error("P1 M", PERIOD_PARSE_SYNTAX);
	check_error("PT1H", PERIOD_PARSE_SYNTAX);
	check_error("P-1M", PERIOD_PARSE_SYNTAX);
	check_error("P1M!", PERIOD_PARSE_SYNTAX);
	check_error("P1Y2M", PERIOD_PARSE_MIXED);
	check_error("P1MT2H", PERIOD_PARSE_MIXED);
	check_error("0 months", PERIOD_PARSE_NOT_POSITIVE);
	check_error("-1 month", PERIOD_PARSE_NOT_POSITIVE);
	check_error("-0 days", PERIOD_PARSE_NOT_POSITIVE);
	check_error("-99999999999999999999 years", PERIOD_PARSE_NOT_POSITIVE);
	check_error("P0D", PERIOD_PARSE_NOT_POSITIVE);
	check_error("1001 years", PERIOD_PARSE_OUT_OF_RANGE);
	check_error("12001 months", PERIOD_PARSE_OUT_OF_RANGE);
	check_error("365001 days", PERIOD_PARSE_OUT_OF_RANGE);
	check_error("52143 weeks", PERIOD_PARSE_OUT_OF_RANGE);
	check_error("99999999999999999999999999 days", PERIOD_PARSE_OUT_OF_RANGE);
	check_error("P99999999999999999999Y", PERIOD_PARSE_OUT_OF_RANGE);
	ok(period_parse("1 month\0x", 9, &p) == PERIOD_PARSE_SYNTAX, "embedded NUL is a syntax error");
	ok(period_parse("1 monthXYZ", 7, &p) == PERIOD_PARSE_OK && p.count == 1,
	   "parse respects the length argument");

	/* round trip over every valid value */
	good = 1;
	for (i = 1; i <= PERIOD_MAX_MONTHS + PERIOD_MAX_DAYS; i++)
	{
		size_t		len;

		p = i <= PERIOD_MAX_MONTHS ? bp(i, BILLING_UNIT_MONTH)
			: bp(i - PERIOD_MAX_MONTHS, BILLING_UNIT_DAY);
		len = period_format(p, buf);
		if (len != strlen(buf) || period_parse(buf, len, &q) != PERIOD_PARSE_OK ||
			q.count != p.count || q.unit != p.unit)
		{
			printf("# round trip failed for %d/%d \"%s\"\n", p.count, p.unit, buf);
			good = 0;
			break;
		}
	}
	ok(good, "format -> parse round-trips every valid value");

	/* validity and packing */
	ok(!period_is_valid(bp(0, BILLING_UNIT_MONTH)), "0 months is not valid");
	ok(!period_is_valid(bp(12001, BILLING_UNIT_MONTH)), "12001 months is not valid");
	ok(period_is_valid(bp(365000, BILLING_UNIT_DAY)), "365000 days is valid");
	ok(!period_is_valid(bp(1, 2)), "unit 2 is not valid");
	ok(period_unpack(period_pack(bp(3, BILLING_UNIT_MONTH)), &p) && p.count == 3 &&
	   p.unit == BILLING_UNIT_MONTH, "pack/unpack 3 months");
	ok(period_unpack(period_pack(bp(14, BILLING_UNIT_DAY)), &p) && p.count == 14 &&
	   p.unit == BILLING_UNIT_DAY, "pack/unpack 14 days");
	ok(!period_unpack(-1, &p), "unpack -1 fails");
	ok(!period_unpack(INT64_C(2) << 32 | 1, &p), "unpack unit 2 fails");
	ok(!period_unpack(0, &p), "unpack 0 fails");

	/* ordering */
	ok(period_cmp(bp(1, BILLING_UNIT_MONTH), bp(3, BILLING_UNIT_MONTH)) < 0, "1 month < 3 months");
	ok(period_cmp(bp(12, BILLING_UNIT_MONTH), bp(365, BILLING_UNIT_DAY)) > 0, "1 year > 365 days");
	ok(period_cmp(bp(12, BILLING_UNIT_MONTH), bp(366, BILLING_UNIT_DAY)) < 0, "1 year < 366 days");
	ok(period_cmp(bp(1, BILLING_UNIT_MONTH), bp(30, BILLING_UNIT_DAY)) > 0, "1 month > 30 days");
	ok(period_cmp(bp(1, BILLING_UNIT_MONTH), bp(31, BILLING_UNIT_DAY)) < 0, "1 month < 31 days");
	ok(period_cmp(bp(1600, BILLING_UNIT_MONTH), bp(48699, BILLING_UNIT_DAY)) < 0 &&
	   period_cmp(bp(48699, BILLING_UNIT_DAY), bp(1600, BILLING_UNIT_MONTH)) > 0,
	   "equal average length: months first");
	ok(period_cmp(bp(7, BILLING_UNIT_DAY), bp(7, BILLING_UNIT_DAY)) == 0, "1 week = 1 week");
	good = 1;
	for (i = 0; i < 100000; i++)
	{
		BillingPeriod a = tap_rng() % 2 ? bp(1 + tap_rng() % PERIOD_MAX_MONTHS, BILLING_UNIT_MONTH)
		: bp(1 + tap_rng() % PERIOD_MAX_DAYS, BILLING_UNIT_DAY);
		BillingPeriod b = tap_rng() % 2 ? bp(1 + tap_rng() % PERIOD_MAX_MONTHS, BILLING_UNIT_MONTH)
		: bp(1 + tap_rng() % PERIOD_MAX_DAYS, BILLING_UNIT_DAY);
		int			ab = period_cmp(a, b);
		int			ba = period_cmp(b, a);
		int			same = a.count == b.count && a.unit == b.unit;

		if ((ab > 0) != (ba < 0) || (ab == 0) != same || (ba == 0) != same)
		{
			good = 0;
			break;
		}
	}
	ok(good, "cmp is antisymmetric and 0 only for equal values (100000 random pairs)");

	/* calendar */
	ok(ymd(2000, 1, 1) == 0, "2000-01-01 is day 0");
	ok(ymd(1970, 1, 1) == -10957, "1970-01-01 is day -10957");
	ok(ymd(2024, 2, 29) == 8825, "2024-02-29 is day 8825");
	ok(ymd(-4713, 11, 24) == -2451545, "4714-11-24 BC (Julian day 0) is day -2451545");
	ok(ymd(5874898, 1, 1) == 2147483494 - 2451545, "5874898-01-01 is day 2145031949");
	ok(ymd(2000, 3, 1) == 60, "2000-03-01 is day 60 (2000 is a leap year)");
	ok(ymd(1900, 3, 1) - ymd(1900, 2, 28) == 1, "1900 is not a leap year");
	ok(period_days_in_month(2024, 2) == 29 && period_days_in_month(2023, 2) == 28 &&
	   period_days_in_month(2100, 2) == 28 && period_days_in_month(2000, 2) == 29 &&
	   period_days_in_month(2024, 4) == 30 && period_days_in_month(2024, 12) == 31,
	   "days in month");
	good = 1;
	{
		int64_t		day;
		int64_t		y = -4714,
					py;
		int			m = 11,
					d = 23,
					pm,
					pd;

		for (day = -2451545; day < 2500000; day++)
		{
			py = y;
			pm = m;
			pd = d;
			period_civil_from_days(day, &y, &m, &d);
			/* the day after (py, pm, pd) */
			if (!(y == py && m == pm && d == pd + 1) &&
				!(y == py && m == pm + 1 && d == 1 && pd == period_days_in_month(py, pm)) &&
				!(y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31) &&
				day != -2451545)
				good = 0;
			if (ymd(y, m, d) != day)
				good = 0;
			if (!good)
			{
				printf("# calendar broken at day %lld\n", (long long) day);
				break;
			}
		}
	}
	ok(good, "civil_from_days and days_from_civil agree, day by day, 4714 BC .. 8845 AD");
	good = 1;
	for (i = 0; i < 200000; i++)
	{
		int64_t		day = (int64_t) (tap_rng() % (2147483494ULL)) - 2451545;
		int64_t		y;
		int			m,
					d;

		period_civil_from_days(day, &y, &m, &d);
		if (m < 1 || m > 12 || d < 1 || d > period_days_in_month(y, m) || ymd(y, m, d) != day)
		{
			good = 0;
			break;
		}
	}
	ok(good, "calendar round-trips 200000 random days across the PostgreSQL date range");

	/* period boundaries */
	p = bp(1, BILLING_UNIT_MONTH);
	check_start(ymd(2024, 1, 31), p, 0, ymd(2024, 1, 31), "2024-01-31 monthly n=0");
	check_start(ymd(2024, 1, 31), p, 1, ymd(2024, 2, 29), "2024-01-31 monthly n=1 -> 2024-02-29");
	check_start(ymd(2024, 1, 31), p, 2, ymd(2024, 3, 31), "2024-01-31 monthly n=2 -> 2024-03-31");
	check_start(ymd(2024, 1, 31), p, 3, ymd(2024, 4, 30), "2024-01-31 monthly n=3 -> 2024-04-30");
	check_start(ymd(2024, 1, 31), p, 13, ymd(2025, 2, 28), "2024-01-31 monthly n=13 -> 2025-02-28");
	check_start(ymd(2024, 1, 31), p, -1, ymd(2023, 12, 31), "2024-01-31 monthly n=-1 -> 2023-12-31");
	check_start(ymd(2024, 1, 31), p, -2, ymd(2023, 11, 30), "2024-01-31 monthly n=-2 -> 2023-11-30");
	check_start(ymd(2024, 1, 31), p, -11, ymd(2023, 2, 28), "2024-01-31 monthly n=-11 -> 2023-02-28");
	p = bp(12, BILLING_UNIT_MONTH);
	check_start(ymd(2024, 2, 29), p, 1, ymd(2025, 2, 28), "2024-02-29 yearly n=1 -> 2025-02-28");
	check_start(ymd(2024, 2, 29), p, 4, ymd(2028, 2, 29), "2024-02-29 yearly n=4 -> 2028-02-29");
	check_start(ymd(2024, 2, 29), p, -4, ymd(2020, 2, 29), "2024-02-29 yearly n=-4 -> 2020-02-29");
	check_start(ymd(2024, 2, 29), p, 76, ymd(2100, 2, 28), "2024-02-29 yearly n=76 -> 2100-02-28");
	p = bp(3, BILLING_UNIT_MONTH);
	check_start(ymd(2023, 11, 30), p, 1, ymd(2024, 2, 29), "2023-11-30 quarterly n=1 -> 2024-02-29");
	check_start(ymd(2023, 11, 30), p, 2, ymd(2024, 5, 30), "2023-11-30 quarterly n=2 -> 2024-05-30");
	check_start(ymd(2023, 11, 30), p, -4, ymd(2022, 11, 30), "2023-11-30 quarterly n=-4");
	p = bp(14, BILLING_UNIT_DAY);
	check_start(ymd(2024, 1, 1), p, 2, ymd(2024, 1, 29), "2024-01-01 every 2 weeks n=2");
	check_start(ymd(2024, 1, 1), p, -1, ymd(2023, 12, 18), "2024-01-01 every 2 weeks n=-1");
	check_start(0, bp(12000, BILLING_UNIT_MONTH), 2147483647,
				ymd(2000 + INT64_C(1000) * 2147483647, 1, 1), "no overflow at the extremes");

	/* period_index_of brackets d between consecutive boundaries */
	good = 1;
	for (i = 0; i < 300000 && good; i++)
	{
		static const BillingPeriod periods[] = {
			{1, BILLING_UNIT_MONTH}, {3, BILLING_UNIT_MONTH}, {12, BILLING_UNIT_MONTH},
			{7, BILLING_UNIT_MONTH}, {1, BILLING_UNIT_DAY}, {14, BILLING_UNIT_DAY},
			{30, BILLING_UNIT_DAY}, {12000, BILLING_UNIT_MONTH}, {365000, BILLING_UNIT_DAY},
		};
		BillingPeriod pp = periods[i % 9];
		int64_t		span = i % 3 == 0 ? 2000000 : 5000;
		int64_t		anchor = (int64_t) (tap_rng() % 40000) - 20000;
		int64_t		d = anchor + (int64_t) (tap_rng() % (2 * span)) - span;
		int64_t		n = period_index_of(anchor, pp, d);
		int64_t		lo = period_start_days(anchor, pp, n);
		int64_t		hi = period_start_days(anchor, pp, n + 1);

		if (!(lo <= d && d < hi) || (d >= anchor) != (n >= 0))
		{
			printf("# index_of anchor %lld d %lld period %d/%d: n %lld [%lld, %lld)\n",
				   (long long) anchor, (long long) d, pp.count, pp.unit, (long long) n,
				   (long long) lo, (long long) hi);
			good = 0;
		}
	}
	ok(good, "period_index_of: start(n) <= d < start(n + 1), 300000 random cases");

	return tap_done();
}
