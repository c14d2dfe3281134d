/*-------------------------------------------------------------------------
 *
 * vatnumber.h
 *	  VAT identification numbers of the EU member states and Norway:
 *	  normalisation to the canonical form and checks of format and check
 *	  digits.
 *
 * Plain C, no PostgreSQL headers: unit-tested on its own
 * (test/unit/test_vatnumber.c).  The fmgr wrapper is in src/vatnumber.c.
 *
 * Canonical form: the two-letter prefix (Greece EL, as VIES writes it)
 * followed by the national number in upper case without separators;
 * Norway's ends in MVA (NO988077917MVA).  Input may carry spaces, dots and
 * hyphens, lower case, and may lack the prefix when a default country is
 * given; a Swedish organisation number of 10 digits gets its 01 suffix and
 * a Norwegian one its MVA.
 *
 * Check digits:
 *	  SE  12 digits, the first 10 valid under Luhn, ending in 01
 *	  NO  9 digits, weights 3 2 7 6 5 4 3 2, check = 11 - sum mod 11 (11 -> 0,
 *		  10 is never issued), then MVA
 *	  DK  8 digits, weights 2 7 6 5 4 3 2 1, sum divisible by 11
 *	  FI  8 digits, weights 7 9 10 5 8 4 2, check = 11 - sum mod 11 (11 -> 0,
 *		  10 is never issued)
 *	  DE  9 digits, first not 0, the last an ISO 7064 MOD 11,10 check digit
 *	  other member states: the national format only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_VATNUMBER_H
#define SUBBILLING_CORE_VATNUMBER_H

#include <stdbool.h>
#include <stddef.h>

/* the longest canonical number: prefix + 12 characters + MVA, with room */
#define VAT_NUMBER_MAX_LEN	20

typedef enum VatStatus
{
	VAT_OK = 0,
	VAT_EMPTY,					/* nothing but separators */
	VAT_TOO_LONG,				/* more characters than any VAT number has */
	VAT_BAD_CHARACTER,			/* a character other than A-Z, 0-9 and separators */
	VAT_NO_COUNTRY,				/* no prefix and no default country */
	VAT_UNKNOWN_COUNTRY,		/* a prefix that is no EU member state nor NO */
	VAT_BAD_FORMAT,				/* wrong length or characters for its country */
	VAT_BAD_CHECK_DIGIT			/* the format fits, the check digits do not */
} VatStatus;

/*
 * Normalise and check in[0..len).  default_country (two upper-case letters,
 * or NULL) is used when the input has no prefix.  On VAT_OK writes the
 * canonical form, NUL-terminated, into out (VAT_NUMBER_MAX_LEN + 1 bytes);
 * on any other status out holds the normalised characters seen so far (for
 * messages) and is NUL-terminated.
 */
extern VatStatus vat_normalize(const char *in, size_t len, const char *default_country,
							   char *out);

/* a short English description of a status, for messages */
extern const char *vat_status_text(VatStatus status);

#endif							/* SUBBILLING_CORE_VATNUMBER_H */
