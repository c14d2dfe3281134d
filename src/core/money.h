/*-------------------------------------------------------------------------
 *
 * money.h
 *	  Exact money in integer minor units: ISO 4217 currencies, parsing,
 *	  formatting, the one rounding rule and allocation.
 *
 * Plain C, no PostgreSQL headers: unit-tested and fuzzed on its own
 * (test/unit, test/fuzz).  The fmgr wrappers are in src/price.c.
 *
 * The one rounding rule: every division of money rounds half away from
 * zero to the currency's minor unit (2.5 -> 3, -2.5 -> -3).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_MONEY_H
#define SUBBILLING_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A currency of ISO 4217 (active codes with a defined minor unit). */
typedef struct CurrencyInfo
{
	char		code[4];		/* alphabetic code, upper case, NUL-terminated */
	int16_t		number;			/* numeric code */
	int8_t		exponent;		/* digits of the minor unit: 0, 2, 3 or 4 */
} CurrencyInfo;

/* Longest text form: sign, 19 digits, point, space, code, NUL, with room to spare */
#define MONEY_FORMAT_MAX 32

typedef enum MoneyParseStatus
{
	MONEY_PARSE_OK = 0,
	MONEY_PARSE_SYNTAX,			/* not "[sign]digits[.digits] CODE" */
	MONEY_PARSE_UNKNOWN_CURRENCY,	/* well-formed code, not in ISO 4217 */
	MONEY_PARSE_TOO_MANY_DECIMALS,	/* more fraction digits than the exponent */
	MONEY_PARSE_OVERFLOW		/* minor units do not fit in int64 */
} MoneyParseStatus;

/* Case-insensitive lookup of a 3-letter code; NULL if unknown. */
extern const CurrencyInfo *money_currency(const char *code, size_t len);

/* The table of currencies, sorted by code: count and i-th entry (NULL if out of range). */
extern int	money_currency_count(void);
extern const CurrencyInfo *money_currency_at(int i);

/* Parse "1234.50 SEK"; on success sets *units and *currency. */
extern MoneyParseStatus money_parse(const char *str, int64_t *units,
									const CurrencyInfo **currency);

/* Canonical text form into buf (MONEY_FORMAT_MAX bytes); returns its length. */
extern size_t money_format(int64_t units, const CurrencyInfo *currency, char *buf);

/*
 * *result = round(units * num / den), half away from zero; den != 0.
 * Returns false if the result does not fit in int64.
 */
extern bool money_muldiv(int64_t units, int64_t num, int64_t den, int64_t *result);

/*
 * *result = round(num / den), half away from zero; den != 0 and num is not
 * the most negative 128-bit value.  Returns false if den is 0 or the result
 * does not fit in int64.  (Averages: the sum of many int64 values by count.)
 */
extern bool money_div_round128(__int128 num, int64_t den, int64_t *result);

/*
 * Split total into n parts proportional to weights (each >= 0, sum > 0), by
 * largest remainder: parts sum exactly to total, each within one minor unit
 * of its exact share; ties go to the earlier weight.  A negative total
 * splits as the mirror image of the positive one.  Returns false on bad
 * arguments (n < 1, a negative weight, all weights zero) or if memory for
 * the n remainders cannot be had (malloc); the parts cannot overflow.
 */
extern bool money_allocate(int64_t total, const int64_t *weights, int n, int64_t *parts);

#endif							/* SUBBILLING_MONEY_H */
