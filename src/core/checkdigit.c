/*-------------------------------------------------------------------------
 *
 * checkdigit.c
 *	  Luhn, modulus-11 and 7-3-1 check digits; OCR, KID, FI-kort and
 *	  Finnish payment references.
 *
 *-------------------------------------------------------------------------
 */
#include "checkdigit.h"

#include <string.h>

bool
checkdigit_all_digits(const char *s, size_t len)
{
	size_t		i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

char
checkdigit_luhn(const char *s, size_t len)
{
	unsigned	sum = 0;
	bool		twice = true;	/* the rightmost base digit is doubled */
	size_t		i = len;

	while (i > 0)
	{
		unsigned	d = (unsigned) (s[--i] - '0');

		if (twice)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
		twice = !twice;
	}
	return (char) ('0' + (10 - sum % 10) % 10);
}

char
checkdigit_mod11(const char *s, size_t len)
{
	unsigned	sum = 0;
	unsigned	weight = 2;
	unsigned	check;
	size_t		i = len;

	while (i > 0)
	{
		sum += (unsigned) (s[--i] - '0') * weight;
		weight = weight == 7 ? 2 : weight + 1;
	}
	check = 11 - sum % 11;
	if (check == 11)
		return '0';
	if (check == 10)
		return '-';
	return (char) ('0' + check);
}

ReferenceStatus
ocr_build(const char *base, size_t len, bool length_digit, char *out)
{
	size_t		total = len + (length_digit ? 2 : 1);

	if (len == 0)
		return REFERENCE_EMPTY;
	if (!checkdigit_all_digits(base, len))
		return REFERENCE_NOT_DIGITS;
	if (total > REFERENCE_MAX_LEN)
		return REFERENCE_TOO_LONG;
	memcpy(out, base, len);
	if (length_digit)
		out[len++] = (char) ('0' + total % 10);
	out[len] = checkdigit_luhn(out, len);
	out[len + 1] = '\0';
	return REFERENCE_OK;
}

bool
ocr_is_valid(const char *ref, size_t len, bool length_digit)
{
	if (len < REFERENCE_MIN_LEN || len > REFERENCE_MAX_LEN)
		return false;
	if (!checkdigit_all_digits(ref, len))
		return false;
	if (length_digit && (len < 3 || ref[len - 2] != (char) ('0' + len % 10)))
		return false;
	return checkdigit_luhn(ref, len - 1) == ref[len - 1];
}

ReferenceStatus
kid_build(const char *base, size_t len, KidMethod method, char *out)
{
	if (len == 0)
		return REFERENCE_EMPTY;
	if (!checkdigit_all_digits(base, len))
		return REFERENCE_NOT_DIGITS;
	if (len + 1 > REFERENCE_MAX_LEN)
		return REFERENCE_TOO_LONG;
	memcpy(out, base, len);
	out[len] = method == KID_MOD11 ? checkdigit_mod11(base, len) : checkdigit_luhn(base, len);
	out[len + 1] = '\0';
	return REFERENCE_OK;
}

bool
kid_is_valid(const char *ref, size_t len, KidMethod method)
{
	if (len < REFERENCE_MIN_LEN || len > REFERENCE_MAX_LEN)
		return false;
	if (!checkdigit_all_digits(ref, len - 1))
		return false;
	if (method == KID_MOD11)
		return checkdigit_mod11(ref, len - 1) == ref[len - 1];
	return checkdigit_luhn(ref, len - 1) == ref[len - 1];
}

/* Finnish and Danish references */

char
checkdigit_731(const char *s, size_t len)
{
	static const unsigned weights[3] = {7, 3, 1};
	unsigned	sum = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		sum += (unsigned) (s[len - 1 - i] - '0') * weights[i % 3];
	return (char) ('0' + (10 - sum % 10) % 10);
}

bool
fi_reference_build(const char *base, size_t len, char *out)
{
	if (len < FI_REFERENCE_MIN_BASE || len > FI_REFERENCE_MAX_BASE ||
		!checkdigit_all_digits(base, len))
		return false;
	memcpy(out, base, len);
	out[len] = checkdigit_731(base, len);
	out[len + 1] = '\0';
	return true;
}

bool
fik_reference_build(const char *base, size_t len, char *out)
{
	size_t		pad;

	if (len > FIK_BASE_LEN || !checkdigit_all_digits(base, len))
		return false;
	pad = FIK_BASE_LEN - len;
	memset(out, '0', pad);
	memcpy(out + pad, base, len);
	out[FIK_BASE_LEN] = checkdigit_luhn(out, FIK_BASE_LEN);
	out[FIK_BASE_LEN + 1] = '\0';
	return true;
}
