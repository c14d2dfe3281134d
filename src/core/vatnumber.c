/*-------------------------------------------------------------------------
 *
 * vatnumber.c
 *	  VAT identification numbers: normalisation and checks (see vatnumber.h).
 *
 *-------------------------------------------------------------------------
 */
#include "vatnumber.h"

#include <string.h>

/*
 * The national formats, one or more per country: D a digit, A a letter,
 * X a letter or digit, anything else itself.  Sources: the VIES
 * "VAT number validation" format table of the European Commission.
 */
typedef struct VatFormat
{
	const char *country;
	const char *patterns[10];
} VatFormat;

static const VatFormat vat_formats[] = {
	{"AT", {"UDDDDDDDD"}},
	{"BE", {"DDDDDDDDDD"}},
	{"BG", {"DDDDDDDDD", "DDDDDDDDDD"}},
	{"CY", {"DDDDDDDDA"}},
	{"CZ", {"DDDDDDDD", "DDDDDDDDD", "DDDDDDDDDD"}},
	{"DE", {"DDDDDDDDD"}},
	{"DK", {"DDDDDDDD"}},
	{"EE", {"DDDDDDDDD"}},
	{"EL", {"DDDDDDDDD"}},
	{"ES", {"XDDDDDDDX"}},
	{"FI", {"DDDDDDDD"}},
	{"FR", {"XXDDDDDDDDD"}},
	{"HR", {"DDDDDDDDDDD"}},
	{"HU", {"DDDDDDDD"}},
	{"IE", {"DDDDDDDA", "DDDDDDDAA", "DXDDDDDA"}},
	{"IT", {"DDDDDDDDDDD"}},
	{"LT", {"DDDDDDDDD", "DDDDDDDDDDDD"}},
	{"LU", {"DDDDDDDD"}},
	{"LV", {"DDDDDDDDDDD"}},
	{"MT", {"DDDDDDDD"}},
	{"NL", {"DDDDDDDDDBDD"}},
	{"NO", {"DDDDDDDDDMVA"}},
	{"PL", {"DDDDDDDDDD"}},
	{"PT", {"DDDDDDDDD"}},
	{"RO", {"DD", "DDD", "DDDD", "DDDDD", "DDDDDD", "DDDDDDD", "DDDDDDDD", "DDDDDDDDD", "DDDDDDDDDD"}},
	{"SE", {"DDDDDDDDDD01"}},
	{"SI", {"DDDDDDDD"}},
	{"SK", {"DDDDDDDDDD"}},
};

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
matches(const char *pattern, const char *s)
{
	size_t		n = strlen(pattern);

	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		p = pattern[i];
		char		c = s[i];

		if (p == 'D' ? !is_digit(c)
			: p == 'A' ? !is_upper(c)
			: p == 'X' ? !(is_digit(c) || is_upper(c))
			: c != p)
			return false;
	}
	return true;
}

static const VatFormat *
find_country(const char *cc)
{
	for (size_t i = 0; i < sizeof(vat_formats) / sizeof(vat_formats[0]); i++)
		if (strcmp(vat_formats[i].country, cc) == 0)
			return &vat_formats[i];
	return NULL;
}

/* Luhn over s[0..n): true if the last digit is the right check digit */
static bool
luhn_ok(const char *s, size_t n)
{
	int			sum = 0;

	for (size_t i = 0; i < n; i++)
	{
		int			d = s[n - 1 - i] - '0';

		if (i % 2 == 1)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return sum % 10 == 0;
}

/* weighted digit sum of s[0..n) */
static int
weighted(const char *s, const int *w, size_t n)
{
	int			sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += (s[i] - '0') * w[i];
	return sum;
}

/* the check digits of a number in its national format */
static bool
check_digits(const char *cc, const char *num)
{
	if (strcmp(cc, "SE") == 0)
		return luhn_ok(num, 10);
	if (strcmp(cc, "NO") == 0)
	{
		static const int w[8] = {3, 2, 7, 6, 5, 4, 3, 2};
		int			r = 11 - weighted(num, w, 8) % 11;

		if (r == 11)
			r = 0;
		return r != 10 && r == num[8] - '0';
	}
	if (strcmp(cc, "DK") == 0)
	{
		static const int w[8] = {2, 7, 6, 5, 4, 3, 2, 1};

		return num[0] != '0' && weighted(num, w, 8) % 11 == 0;
	}
	if (strcmp(cc, "FI") == 0)
	{
		static const int w[7] = {7, 9, 10, 5, 8, 4, 2};
		int			r = 11 - weighted(num, w, 7) % 11;

		if (r == 11)
			r = 0;
		return r != 10 && r == num[7] - '0';
	}
	if (strcmp(cc, "DE") == 0)
	{
		/* ISO 7064 MOD 11,10 */
		int			p = 10;
		int			c;

		if (num[0] == '0')
			return false;
		for (int i = 0; i < 8; i++)
		{
			int			s = (num[i] - '0' + p) % 10;

			if (s == 0)
				s = 10;
			p = (2 * s) % 11;
		}
		c = 11 - p;
		if (c == 10)
			c = 0;
		return c == num[8] - '0';
	}
	return true;
}

VatStatus
vat_normalize(const char *in, size_t len, const char *default_country, char *out)
{
	char		buf[VAT_NUMBER_MAX_LEN + 1];
	size_t		n = 0;
	char		cc[3];
	const char *num;
	const VatFormat *f;
	bool		format_ok = false;

	out[0] = '\0';
	/* upper case, separators dropped */
	for (size_t i = 0; i < len; i++)
	{
		char		c = in[i];

		if (c == ' ' || c == '.' || c == '-' || c == '\t')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char) (c - 'a' + 'A');
		if (!is_digit(c) && !is_upper(c))
			return VAT_BAD_CHARACTER;
		if (n >= VAT_NUMBER_MAX_LEN - 5)
			return VAT_TOO_LONG;
		buf[n++] = c;
	}
	buf[n] = '\0';
	if (n == 0)
		return VAT_EMPTY;

	/* the country: a two-letter prefix, else the default */
	if (n >= 2 && is_upper(buf[0]) && is_upper(buf[1]))
	{
		cc[0] = buf[0];
		cc[1] = buf[1];
		cc[2] = '\0';
		num = buf + 2;
	}
	else if (default_country != NULL && strlen(default_country) == 2
			 && is_upper(default_country[0]) && is_upper(default_country[1]))
	{
		memcpy(cc, default_country, 3);
		num = buf;
	}
	else
	{
		strcpy(out, buf);
		return VAT_NO_COUNTRY;
	}
	if (strcmp(cc, "GR") == 0)
		strcpy(cc, "EL");

	/* out: prefix and number, completed where the short form is common */
	strcpy(out, cc);
	strcat(out, num);
	if (strcmp(cc, "SE") == 0 && strlen(num) == 10)
		strcat(out, "01");
	else if (strcmp(cc, "NO") == 0 && strlen(num) == 9)
		strcat(out, "MVA");

	f = find_country(cc);
	if (f == NULL)
		return VAT_UNKNOWN_COUNTRY;
	for (int i = 0; i < 10 && f->patterns[i] != NULL; i++)
		if (matches(f->patterns[i], out + 2))
			format_ok = true;
	if (!format_ok)
		return VAT_BAD_FORMAT;
	if (!check_digits(cc, out + 2))
		return VAT_BAD_CHECK_DIGIT;
	return VAT_OK;
}

const char *
vat_status_text(VatStatus status)
{
	switch (status)
	{
		case VAT_OK:
			return "valid";
		case VAT_EMPTY:
			return "the number is empty";
		case VAT_TOO_LONG:
			return "the number is longer than any VAT number";
		case VAT_BAD_CHARACTER:
			return "only letters, digits, spaces, dots and hyphens are allowed";
		case VAT_NO_COUNTRY:
			return "the number has no country prefix and no country is known";
		case VAT_UNKNOWN_COUNTRY:
			return "the prefix is not an EU member state nor NO";
		case VAT_BAD_FORMAT:
			return "the number does not have its country's format";
		case VAT_BAD_CHECK_DIGIT:
			return "the check digits are wrong";
	}
	return "unknown";
}
