/*-------------------------------------------------------------------------
 *
 * price.h
 *	  The price type: an exact amount of money in one currency.
 *
 * Fixed length (16 bytes), passed by reference.  Other C files of the
 * extension (proration, pricing, billing) use the helpers below so that
 * overflow checks, currency checks and the one rounding rule live in one
 * place (src/price.c, on top of src/core/money.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_PRICE_H
#define SUBBILLING_PRICE_H

#include "fmgr.h"
#include "utils/numeric.h"

typedef struct Price
{
	int64		units;			/* amount in minor units of the currency */
	char		currency[4];	/* ISO 4217 code, upper case, NUL-terminated */
	int32		reserved;		/* reserved for future use, always zero */
} Price;

#define DatumGetPriceP(X)		((Price *) DatumGetPointer(X))
#define PricePGetDatum(X)		PointerGetDatum(X)
#define PG_GETARG_PRICE_P(n)	DatumGetPriceP(PG_GETARG_DATUM(n))
#define PG_RETURN_PRICE_P(x)	PG_RETURN_POINTER(x)

/* A new palloc'd price; currency must be a known upper-case code. */
extern Price *price_new(int64 units, const char *currency);

/* Minor-unit digits of the price's currency. */
extern int	price_exponent(const Price *p);

/* ereport(ERROR, 22000) unless a and b have the same currency. */
extern void price_check_same_currency(const Price *a, const Price *b);

/* a + b and a - b in minor units, ereport(ERROR, 22003) on overflow. */
extern int64 price_units_add(int64 a, int64 b);
extern int64 price_units_sub(int64 a, int64 b);

/* round(units * num / den) half away from zero; 22003 on overflow, 22012 if den = 0. */
extern int64 price_units_muldiv(int64 units, int64 num, int64 den);

/* round(units * factor) half away from zero; 22003 on overflow. */
extern int64 price_units_mul_numeric(int64 units, Numeric factor);

/*
 * round(units / divisor) half away from zero, exactly (no intermediate
 * rounding); 22012 if divisor = 0, 22023 if it is NaN or infinite, 22003 on
 * overflow.  (Added; the factor of price_units_mul_numeric is checked the
 * same way: 22023 if NaN or infinite.)
 */
extern int64 price_units_div_numeric(int64 units, Numeric divisor);

#endif							/* SUBBILLING_PRICE_H */
