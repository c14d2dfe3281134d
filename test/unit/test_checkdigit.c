/*
 * Unit tests of src/core/checkdigit.c: Luhn, modulus 11 and 7-3-1; OCR,
 * KID, FI-kort and Finnish references.  Prints TAP.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "checkdigit.h"
#include "tap.h"

static void
check_ocr(const char *base, int length_digit, const char *expected)
{
	char		out[REFERENCE_MAX_LEN + 1];
	char		name[120];
	ReferenceStatus st = ocr_build(base, strlen(base), length_digit, out);

	snprintf(name, sizeof(name), "ocr(%s, %s) = %s", base, length_digit ? "true" : "false",
			 expected);
	ok(st == REFERENCE_OK && strcmp(out, expected) == 0, name);
	if (st != REFERENCE_OK || strcmp(out, expected) != 0)
		printf("# status %d, got %s\n", st, st == REFERENCE_OK ? out : "-");
}

static void
check_kid(const char *base, KidMethod method, const char *expected)
{
	char		out[REFERENCE_MAX_LEN + 1];
	char		name[120];
	ReferenceStatus st = kid_build(base, strlen(base), method, out);

	snprintf(name, sizeof(name), "kid(%s, %s) = %s", base, method == KID_MOD11 ? "mod11" : "mod10",
			 expected);
	ok(st == REFERENCE_OK && strcmp(out, expected) == 0, name);
	if (st != REFERENCE_OK || strcmp(out, expected) != 0)
		printf("# status %d, got %s\n", st, st == REFERENCE_OK ? out : "-");
}

/* single-character substitutions of a valid reference must all be invalid */
static int
single_errors_detected(const char *ref, int ocr, int flag)
{
	char		copy[REFERENCE_MAX_LEN + 1];
	size_t		len = strlen(ref);
	size_t		i;
	const char *alphabet = "0123456789-";

	for (i = 0; i < len; i++)
	{
		const char *c;

		for (c = alphabet; *c; c++)
		{
			int			valid;

			if (*c == ref[i])
				continue;
			strcpy(copy, ref);
			copy[i] = *c;
			valid = ocr ? ocr_is_valid(copy, len, flag) : kid_is_valid(copy, len, (KidMethod) flag);
			if (valid)
			{
				printf("# %s is valid, changed from %s\n", copy, ref);
				return 0;
			}
		}
	}
	return 1;
}

static void
check_fi(const char *base, const char *expected)
{
	char		out[REFERENCE_MAX_LEN + 1];

	if (expected == NULL)
		okf(!fi_reference_build(base, strlen(base), out), "fi(%s) is refused", base);
	else
		okf(fi_reference_build(base, strlen(base), out) && strcmp(out, expected) == 0,
			"fi(%s) = %s", base, expected);
}

static void
check_fik(const char *base, const char *expected)
{
	char		out[REFERENCE_MAX_LEN + 1];

	if (expected == NULL)
		okf(!fik_reference_build(base, strlen(base), out), "fik(%s) is refused", base);
	else
		okf(fik_reference_build(base, strlen(base), out) && strcmp(out, expected) == 0,
			"fik(%s) = %s", base, expected);
}

/*
 * Finnish references and FI-kort payment ids: published and hand-worked
 * values, refused bases, and properties over random bases.
 */
static void
test_fi_fik(void)
{
	char		out[REFERENCE_MAX_LEN + 1];
	char		padded[FIK_BASE_LEN + 1];
	int			i;
	int			good = 1;

	/* 7-3-1 from the right: 3*7 + 2*3 + 1*1 = 28 -> 2 (the banks' example 1232) */
	ok(checkdigit_731("123", 3) == '2', "7-3-1 123 -> 2");
	ok(checkdigit_731("1234561", 7) == '4', "7-3-1 1234561 -> 4");
	ok(checkdigit_731("000", 3) == '0', "7-3-1 000 -> 0");
	ok(checkdigit_731("100", 3) == '9', "7-3-1 100 -> 9 (sum 1)");
	check_fi("123", "1232");
	check_fi("1234561", "12345614");
	check_fi("1234567890123456789", "12345678901234567894");
	check_fi("12", NULL);
	check_fi("", NULL);
	check_fi("12345678901234567890", NULL);
	check_fi("12a", NULL);
	check_fi("-123", NULL);
	check_fi(" 123", NULL);

	check_fik("1", "000000000000018");
	check_fik("12345678901234", "123456789012347");
	check_fik("0", "000000000000000");
	check_fik("", NULL);
	check_fik("123456789012345", NULL);
	check_fik("12a", NULL);
	check_fik("+71", NULL);

	for (i = 0; i < 20000 && good; i++)
	{
		char		base[FI_REFERENCE_MAX_BASE + 1];
		size_t		len = 1 + (unsigned) (tap_rng() % FI_REFERENCE_MAX_BASE);
		size_t		j;
		int			fi_ok;

		for (j = 0; j < len; j++)
			base[j] = (char) ('0' + (unsigned) (tap_rng() % 10));
		base[len] = '\0';

		/* Finnish: 3..19 digits accepted; every single-digit change detected */
		fi_ok = fi_reference_build(base, len, out);
		if (fi_ok != (len >= FI_REFERENCE_MIN_BASE))
			good = 0;
		if (fi_ok)
		{
			if (strlen(out) != len + 1 || strncmp(out, base, len) != 0)
				good = 0;
			for (j = 0; j < len && good; j++)
			{
				char		copy[REFERENCE_MAX_LEN + 1];

				strcpy(copy, out);
				copy[j] = (char) ('0' + (copy[j] - '0' + 1 + (unsigned) (tap_rng() % 9)) % 10);
				if (checkdigit_731(copy, len) == out[len])
					good = 0;
			}
		}

		/* FI-kort: the OCR reference (no length digit) of the zero-padded base */
		if (len <= FIK_BASE_LEN)
		{
			memset(padded, '0', FIK_BASE_LEN - len);
			memcpy(padded + FIK_BASE_LEN - len, base, len);
			padded[FIK_BASE_LEN] = '\0';
			if (!fik_reference_build(base, len, out) || strlen(out) != FIK_BASE_LEN + 1 ||
				strncmp(out, padded, FIK_BASE_LEN) != 0 || !ocr_is_valid(out, strlen(out), 0))
				good = 0;
		}
		else if (fik_reference_build(base, len, out))
			good = 0;
		if (!good)
			printf("# failed for base %s\n", base);
	}
	ok(good, "20000 random bases: Finnish and FI-kort references have the right length and check digit, single-digit changes are detected");
}

int
main(void)
{
	char		out[REFERENCE_MAX_LEN + 1];
	int			i;
	int			good;

	/* published Luhn examples */
	ok(checkdigit_luhn("7992739871", 10) == '3', "Luhn 7992739871 -> 3 (textbook example)");
	ok(checkdigit_luhn("811218987", 9) == '6', "Luhn 811218987 -> 6 (Swedish personnummer 811218-9876)");
	ok(checkdigit_luhn("60224", 5) == '3', "Luhn 60224 -> 3 (KID 602243)");
	ok(checkdigit_luhn("0", 1) == '0', "Luhn 0 -> 0");
	ok(checkdigit_luhn("5", 1) == '9', "Luhn 5 -> 9 (5*2=10 -> 1, check 9)");

	/* published modulus-11 examples (weights 2..7 from the right) */
	ok(checkdigit_mod11("1374813", 7) == '6', "mod11 1374813 -> 6 (Danish CVR 13748136)");
	ok(checkdigit_mod11("3112995671", 10) == '5',
	   "mod11 3112995671 -> 5 (Norwegian fodselsnummer 31129956715, second check digit)");
	ok(checkdigit_mod11("6", 1) == '-', "mod11 6 -> - (remainder 1)");
	ok(checkdigit_mod11("0", 1) == '0', "mod11 0 -> 0 (remainder 0)");
	ok(checkdigit_mod11("1234567", 7) == '4', "mod11 1234567 -> 4 (sum 106, remainder 7)");
	ok(checkdigit_mod11("14", 2) == '0', "mod11 14 -> 0 (sum 11, remainder 0)");

	/* OCR */
	check_ocr("12345", 1, "1234574");
	check_ocr("12345", 0, "123455");
	check_ocr("7992739871", 0, "79927398713");
	check_ocr("12345678", 1, "1234567806");
	check_ocr("1", 1, "133");
	check_ocr("1", 0, "18");
	check_ocr("12345678901234567890123", 1, "1234567890123456789012357");
	check_ocr("123456789012345678901234", 0, "1234567890123456789012340");
	ok(ocr_build("", 0, 1, out) == REFERENCE_EMPTY, "ocr: empty base");
	ok(ocr_build("12a4", 4, 1, out) == REFERENCE_NOT_DIGITS, "ocr: letters");
	ok(ocr_build("12 4", 4, 0, out) == REFERENCE_NOT_DIGITS, "ocr: space");
	ok(ocr_build("-123", 4, 0, out) == REFERENCE_NOT_DIGITS, "ocr: sign");
	ok(ocr_build("123456789012345678901234", 24, 1, out) == REFERENCE_TOO_LONG,
	   "ocr: 24 digits + length + check is too long");
	ok(ocr_build("1234567890123456789012345", 25, 0, out) == REFERENCE_TOO_LONG,
	   "ocr: 25 digits + check is too long");
	ok(ocr_is_valid("1234574", 7, 0) && ocr_is_valid("1234574", 7, 1), "ocr valid 1234574");
	ok(ocr_is_valid("123455", 6, 0) && !ocr_is_valid("123455", 6, 1),
	   "ocr 123455 valid, but its length digit is wrong");
	ok(!ocr_is_valid("1234575", 7, 0), "ocr 1234575 invalid");
	ok(!ocr_is_valid("0", 1, 0), "ocr: 1 digit is too short");
	ok(ocr_is_valid("00", 2, 0), "ocr: 00 is valid");
	ok(!ocr_is_valid("12345678901234567890123459", 26, 0), "ocr: 26 digits too long");
	ok(!ocr_is_valid("123 455", 7, 0), "ocr: space invalid");
	ok(!ocr_is_valid("", 0, 0), "ocr: empty invalid");

	/* KID */
	check_kid("60224", KID_MOD10, "602243");
	check_kid("1374813", KID_MOD11, "13748136");
	check_kid("6", KID_MOD11, "6-");
	check_kid("1234567", KID_MOD11, "12345674");
	check_kid("14", KID_MOD11, "140");
	check_kid("000000000000000000000001", KID_MOD10, "0000000000000000000000018");
	ok(kid_build("1234567890123456789012345", 25, KID_MOD10, out) == REFERENCE_TOO_LONG,
	   "kid: 25 digits + check is too long");
	ok(kid_build("", 0, KID_MOD11, out) == REFERENCE_EMPTY, "kid: empty base");
	ok(kid_build("12-", 3, KID_MOD11, out) == REFERENCE_NOT_DIGITS, "kid: '-' in base");
	ok(kid_is_valid("6-", 2, KID_MOD11), "kid 6- valid mod11");
	ok(!kid_is_valid("6-", 2, KID_MOD10), "kid 6- not valid mod10");
	ok(!kid_is_valid("-6", 2, KID_MOD11), "kid -6 not valid");
	ok(!kid_is_valid("--", 2, KID_MOD11), "kid -- not valid");
	ok(!kid_is_valid("0", 1, KID_MOD10), "kid: too short");

	/* properties over many random bases */
	good = 1;
	for (i = 0; i < 20000 && good; i++)
	{
		char		base[REFERENCE_MAX_LEN + 1];
		size_t		len = 1 + (unsigned) (tap_rng() % 23);
		size_t		j;

		for (j = 0; j < len; j++)
			base[j] = (char) ('0' + (unsigned) (tap_rng() % 10));
		base[len] = '\0';
		if (ocr_build(base, len, 1, out) != REFERENCE_OK || !ocr_is_valid(out, strlen(out), 1) ||
			strncmp(out, base, len) != 0 || !single_errors_detected(out, 1, 0))
			good = 0;
		if (ocr_build(base, len, 0, out) != REFERENCE_OK || !ocr_is_valid(out, strlen(out), 0) ||
			!single_errors_detected(out, 1, 0))
			good = 0;
		if (kid_build(base, len, KID_MOD10, out) != REFERENCE_OK ||
			!kid_is_valid(out, strlen(out), KID_MOD10) ||
			!single_errors_detected(out, 0, KID_MOD10))
			good = 0;
		if (kid_build(base, len, KID_MOD11, out) != REFERENCE_OK ||
			!kid_is_valid(out, strlen(out), KID_MOD11) ||
			!single_errors_detected(out, 0, KID_MOD11))
			good = 0;
		if (!good)
			printf("# failed for base %s\n", base);
	}
	ok(good, "20000 random bases: OCR/KID references are valid and every single-character change is detected");

	test_fi_fik();

	return tap_done();
}
