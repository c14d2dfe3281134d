/*-------------------------------------------------------------------------
 *
 * checkdigit.h
 *	  Check digits of payment references: Swedish OCR (Bankgirot),
 *	  Norwegian KID, Danish FI-kort (+71) payment ids and Finnish reference
 *	  numbers (viitenumero).
 *
 * Plain C, no PostgreSQL headers: unit-tested on its own
 * (test/unit/test_checkdigit.c).  The fmgr wrappers are in src/reference.c.
 *
 * Luhn (modulus 10): from the right, every second digit of the base
 * (starting with the rightmost) is doubled, two-digit products replaced by
 * their digit sum; the check digit makes the total a multiple of 10.
 *
 * Modulus 11 (KID): weights 2, 3, 4, 5, 6, 7, 2, 3, ... from the right;
 * check = 11 - (sum mod 11), where 11 becomes 0 and 10 becomes '-'.
 *
 * 7-3-1 (Finnish reference): weights 7, 3, 1, 7, 3, 1, ... from the right;
 * the check digit makes the total a multiple of 10.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_CHECKDIGIT_H
#define SUBBILLING_CORE_CHECKDIGIT_H

#include <stdbool.h>
#include <stddef.h>

/* Payment references are 2 to 25 characters long, check digit included */
#define REFERENCE_MIN_LEN	2
#define REFERENCE_MAX_LEN	25

typedef enum ReferenceStatus
{
	REFERENCE_OK = 0,
	REFERENCE_EMPTY,			/* the base has no digit */
	REFERENCE_NOT_DIGITS,		/* the base has a character other than 0-9 */
	REFERENCE_TOO_LONG			/* the reference would exceed 25 characters */
} ReferenceStatus;

typedef enum KidMethod
{
	KID_MOD10 = 0,				/* Luhn */
	KID_MOD11					/* weights 2..7, check digit 0-9 or '-' */
} KidMethod;

/* True if s[0..len) is non-empty and all ASCII digits. */
extern bool checkdigit_all_digits(const char *s, size_t len);

/* Luhn check digit ('0'..'9') for the digits s[0..len). */
extern char checkdigit_luhn(const char *s, size_t len);

/* Modulus-11 check character ('0'..'9' or '-') for the digits s[0..len). */
extern char checkdigit_mod11(const char *s, size_t len);

/*
 * Swedish OCR reference for base[0..len): base, then (if length_digit) the
 * total length mod 10, then the Luhn check digit over everything before it.
 * Writes a NUL-terminated string into out (REFERENCE_MAX_LEN + 1 bytes).
 */
extern ReferenceStatus ocr_build(const char *base, size_t len, bool length_digit,
								 char *out);

/*
 * True if ref[0..len) is 2..25 digits with a valid Luhn check digit and, if
 * length_digit, a second-to-last digit equal to len mod 10.
 */
extern bool ocr_is_valid(const char *ref, size_t len, bool length_digit);

/* Norwegian KID: base then its check character (see ocr_build for out). */
extern ReferenceStatus kid_build(const char *base, size_t len, KidMethod method,
								 char *out);

/* True if ref[0..len) is 2..25 characters: digits, then a valid check character. */
extern bool kid_is_valid(const char *ref, size_t len, KidMethod method);

/* A Finnish reference has 3 to 19 digits before its check digit */
#define FI_REFERENCE_MIN_BASE	3
#define FI_REFERENCE_MAX_BASE	19

/* A FI-kort (+71) payment id has 14 digits before its check digit */
#define FIK_BASE_LEN		14

/* 7-3-1 check digit ('0'..'9') for the digits s[0..len). */
extern char checkdigit_731(const char *s, size_t len);

/*
 * Finnish reference number: base (3 to 19 digits) then its 7-3-1 check
 * digit.  Returns false, writing nothing, for any other base; see ocr_build
 * for out.
 */
extern bool fi_reference_build(const char *base, size_t len, char *out);

/*
 * Danish FI-kort (+71) payment id: base (1 to 14 digits) zero-padded on the
 * left to 14 digits, then its Luhn check digit (15 digits).  Returns false,
 * writing nothing, for any other base; see ocr_build for out.
 */
extern bool fik_reference_build(const char *base, size_t len, char *out);

#endif							/* SUBBILLING_CORE_CHECKDIGIT_H */
