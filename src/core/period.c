/*-------------------------------------------------------------------------
 *
 * period.c
 *	  Billing periods: parsing, formatting, ordering and the calendar.
 *
 * Plain C, no PostgreSQL headers, no locale: only ASCII letters are folded
 * to lower case and only ASCII white space is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "period.h"

#include <stdio.h>
#include <string.h>

/* Counts above this are out of range whatever the unit; keeps parsing overflow-free */
#define PERIOD_COUNT_CAP	INT64_C(1000000000000)

typedef struct PeriodWord
{
	const char *word;
	int32_t		count;			/* count of the alias, or multiplier of a unit */
	int32_t		unit;
} PeriodWord;

/* Aliases: the whole input is one word */
static const PeriodWord period_aliases[] = {
	{"daily", 1, BILLING_UNIT_DAY},
	{"weekly", 7, BILLING_UNIT_DAY},
	{"monthly", 1, BILLING_UNIT_MONTH},
	{"quarterly", 3, BILLING_UNIT_MONTH},
	{"semiannually", 6, BILLING_UNIT_MONTH},
	{"yearly", 12, BILLING_UNIT_MONTH},
	{"annually", 12, BILLING_UNIT_MONTH},
};

/* Units after a count: count is multiplied by the entry's count */
static const PeriodWord period_units[] = {
	{"day", 1, BILLING_UNIT_DAY},
	{"days", 1, BILLING_UNIT_DAY},
	{"week", 7, BILLING_UNIT_DAY},
	{"weeks", 7, BILLING_UNIT_DAY},
	{"month", 1, BILLING_UNIT_MONTH},
	{"months", 1, BILLING_UNIT_MONTH},
	{"year", 12, BILLING_UNIT_MONTH},
	{"years", 12, BILLING_UNIT_MONTH},
};

#define lengthof_array(a) (sizeof(a) / sizeof((a)[0]))

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char
to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of s[0..len) with a lower-case word */
static bool
word_equals(const char *s, size_t len, const char *word)
{
	size_t		i;

	if (strlen(word) != len)
		return false;
	for (i = 0; i < len; i++)
		if (to_lower(s[i]) != word[i])
			return false;
	return true;
}

static const PeriodWord *
find_word(const PeriodWord *words, size_t nwords, const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < nwords; i++)
		if (word_equals(s, len, words[i].word))
			return &words[i];
	return NULL;
}

/*
 * Read decimal digits at *p (at least one), saturating at PERIOD_COUNT_CAP.
 * Returns false if there is no digit.
 */
static bool
read_count(const char **p, const char *end, int64_t *count)
{
	int64_t		v = 0;
	const char *s = *p;

	if (s >= end || !is_digit(*s))
		return false;
	while (s < end && is_digit(*s))
	{
		if (v <= PERIOD_COUNT_CAP)
			v = v * 10 + (*s - '0');
		s++;
	}
	*p = s;
	*count = v;
	return true;
}

/* Scale a parsed count to months or days and check the limits */
static PeriodParseStatus
finish_period(int64_t count, const PeriodWord *unit, BillingPeriod *result)
{
	int64_t		value;
	int64_t		max;

	if (count <= 0)
		return PERIOD_PARSE_NOT_POSITIVE;
	if (count > PERIOD_COUNT_CAP)
		return PERIOD_PARSE_OUT_OF_RANGE;
	value = count * unit->count;	/* < 2^40 * 12: no overflow */
	max = unit->unit == BILLING_UNIT_MONTH ? PERIOD_MAX_MONTHS : PERIOD_MAX_DAYS;
	if (value > max)
		return PERIOD_PARSE_OUT_OF_RANGE;
	result->count = (int32_t) value;
	result->unit = unit->unit;
	return PERIOD_PARSE_OK;
}

/* ISO 8601 "PnY", "PnM", "PnW", "PnD"; p points just after the 'P' */
static PeriodParseStatus
parse_iso(const char *p, const char *end, BillingPeriod *result)
{
	static const PeriodWord iso_units[] = {
		{"y", 12, BILLING_UNIT_MONTH},
		{"m", 1, BILLING_UNIT_MONTH},
		{"w", 7, BILLING_UNIT_DAY},
		{"d", 1, BILLING_UNIT_DAY},
	};
	const PeriodWord *unit;
	int64_t		count;

	if (!read_count(&p, end, &count))
		return PERIOD_PARSE_SYNTAX;
	if (p >= end)
		return PERIOD_PARSE_SYNTAX;
	unit = find_word(iso_units, lengthof_array(iso_units), p, 1);
	if (unit == NULL)
		return PERIOD_PARSE_SYNTAX;
	p++;
	if (p < end)
	{
		/* another date component, or a time part: P1Y2M, P1MT12H */
		if (is_digit(*p) || to_lower(*p) == 't')
			return PERIOD_PARSE_MIXED;
		return PERIOD_PARSE_SYNTAX;
	}
	return finish_period(count, unit, result);
}

PeriodParseStatus
period_parse(const char *str, size_t len, BillingPeriod *result)
{
	const char *p = str;
	const char *end = str + len;
	const char *word;
	const PeriodWord *unit;
	int64_t		count;
	bool		negative = false;

	while (p < end && is_space(*p))
		p++;
	while (end > p && is_space(end[-1]))
		end--;
	if (p == end)
		return PERIOD_PARSE_SYNTAX;

	/* an alias: the whole input is one known word */
	unit = find_word(period_aliases, lengthof_array(period_aliases), p, (size_t) (end - p));
	if (unit != NULL)
	{
		result->count = unit->count;
		result->unit = unit->unit;
		return PERIOD_PARSE_OK;
	}

	/* ISO 8601 duration */
	if (to_lower(*p) == 'p')
		return parse_iso(p + 1, end, result);

	/* [sign] count [white space] unit */
	if (*p == '+' || *p == '-')
	{
		negative = (*p == '-');
		p++;
	}
	if (!read_count(&p, end, &count))
		return PERIOD_PARSE_SYNTAX;
	while (p < end && is_space(*p))
		p++;
	word = p;
	while (p < end && is_alpha(*p))
		p++;
	if (p != end || p == word)
		return PERIOD_PARSE_SYNTAX;
	unit = find_word(period_units, lengthof_array(period_units), word, (size_t) (p - word));
	if (unit == NULL)
		return PERIOD_PARSE_SYNTAX;
	if (negative && count > 0)
		return PERIOD_PARSE_NOT_POSITIVE;
	return finish_period(count, unit, result);
}

bool
period_is_valid(BillingPeriod bp)
{
	switch (bp.unit)
	{
		case BILLING_UNIT_MONTH:
			return bp.count >= 1 && bp.count <= PERIOD_MAX_MONTHS;
		case BILLING_UNIT_DAY:
			return bp.count >= 1 && bp.count <= PERIOD_MAX_DAYS;
		default:
			return false;
	}
}

size_t
period_format(BillingPeriod bp, char *buf)
{
	const char *unit;
	int32_t		n = bp.count;
	int			len;

	if (bp.unit == BILLING_UNIT_MONTH)
	{
		if (n % 12 == 0)
		{
			n /= 12;
			unit = "year";
		}
		else
			unit = "month";
	}
	else
	{
		if (n % 7 == 0)
		{
			n /= 7;
			unit = "week";
		}
		else
			unit = "day";
	}
	len = snprintf(buf, PERIOD_FORMAT_MAX, "%d %s%s", (int) n, unit, n == 1 ? "" : "s");
	return (size_t) len;
}

int
period_cmp(BillingPeriod a, BillingPeriod b)
{
	int64_t		la,
				lb;

	if (a.unit == b.unit)
		return (a.count > b.count) - (a.count < b.count);

	/*
	 * Months against days: 4800 months = 146097 days (the Gregorian cycle),
	 * so compare count * 146097 (months) with count * 4800 (days).
	 */
	la = (int64_t) a.count * (a.unit == BILLING_UNIT_MONTH ? 146097 : 4800);
	lb = (int64_t) b.count * (b.unit == BILLING_UNIT_MONTH ? 146097 : 4800);
	if (la != lb)
		return (la > lb) - (la < lb);
	/* same average length: months sort first */
	return a.unit == BILLING_UNIT_MONTH ? -1 : 1;
}

int64_t
period_pack(BillingPeriod bp)
{
	return ((int64_t) bp.unit << 32) | (int64_t) (uint32_t) bp.count;
}

bool
period_unpack(int64_t packed, BillingPeriod *bp)
{
	bp->unit = (int32_t) (packed >> 32);
	bp->count = (int32_t) (uint32_t) (packed & INT64_C(0xFFFFFFFF));
	return period_is_valid(*bp) && period_pack(*bp) == packed;
}

/* Floor division and modulo for a positive divisor */
static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t		q = a / b;

	if ((a % b) != 0 && a < 0)
		q--;
	return q;
}

bool
period_is_leap_year(int64_t year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int
period_days_in_month(int64_t year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month == 2 && period_is_leap_year(year))
		return 29;
	return days[month - 1];
}

/*
 * Days from 2000-01-01.  The year is taken to start on March 1st so that the
 * leap day is the last day of its year; a 400-year cycle has 146097 days.
 * 2000-03-01 is day 60 after 2000-01-01.
 */
int64_t
period_days_from_civil(int64_t year, int month, int day)
{
	int64_t		y = month <= 2 ? year - 1 : year;
	int64_t		cycle = floor_div(y - 2000, 400);
	int64_t		yoc = (y - 2000) - cycle * 400; /* year of cycle, 0..399 */
	int			mp = month <= 2 ? month + 9 : month - 3;	/* March = 0 */
	int64_t		doy = (153 * mp + 2) / 5 + day - 1; /* day of March-based year */
	int64_t		doc = yoc * 365 + yoc / 4 - yoc / 100 + doy;	/* day of cycle */

	return cycle * 146097 + doc + 60;
}

void
period_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
	int64_t		z = days - 60;	/* days from 2000-03-01 */
	int64_t		cycle = floor_div(z, 146097);
	int64_t		doc = z - cycle * 146097;	/* 0..146096 */
	int64_t		yoc = (doc - doc / 1460 + doc / 36524 - doc / 146096) / 365;
	int64_t		doy = doc - (yoc * 365 + yoc / 4 - yoc / 100);
	int64_t		mp = (5 * doy + 2) / 153;
	int			m = (int) (mp < 10 ? mp + 3 : mp - 9);

	*day = (int) (doy - (153 * mp + 2) / 5 + 1);
	*month = m;
	*year = 2000 + cycle * 400 + yoc + (m <= 2 ? 1 : 0);
}

int64_t
period_start_days(int64_t anchor, BillingPeriod bp, int64_t n)
{
	int64_t		year;
	int			month;
	int			day;
	int64_t		total;
	int64_t		ty;
	int			tm;
	int			dim;

	if (bp.unit == BILLING_UNIT_DAY)
		return anchor + n * bp.count;

	period_civil_from_days(anchor, &year, &month, &day);
	total = year * 12 + (month - 1) + n * bp.count;
	ty = floor_div(total, 12);
	tm = (int) (total - ty * 12) + 1;
	dim = period_days_in_month(ty, tm);
	return period_days_from_civil(ty, tm, day < dim ? day : dim);
}

int64_t
period_index_of(int64_t anchor, BillingPeriod bp, int64_t d)
{
	int64_t		n;

	if (bp.unit == BILLING_UNIT_DAY)
		return floor_div(d - anchor, bp.count);
	else
	{
		int64_t		ya,
					yd;
		int			ma,
					md,
					da,
					dd;

		period_civil_from_days(anchor, &ya, &ma, &da);
		period_civil_from_days(d, &yd, &md, &dd);

		/*
		 * Boundary n falls in month ma + n * count (its day clamped), so this
		 * n is at most one too high; the loops settle it.
		 */
		n = floor_div((yd * 12 + md) - (ya * 12 + ma), bp.count);
		while (period_start_days(anchor, bp, n) > d)
			n--;
		while (period_start_days(anchor, bp, n + 1) <= d)
			n++;
		return n;
	}
}
