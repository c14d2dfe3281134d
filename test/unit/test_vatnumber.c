/*
 * Unit tests of src/core/vatnumber.c: normalisation and the format and
 * check-digit rules of SE, NO, DK, FI, DE and the other member states.
 * Prints TAP.
 */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "vatnumber.h"

static void
valid(const char *in, const char *country, const char *canonical)
{
	char		out[VAT_NUMBER_MAX_LEN + 1];
	VatStatus	st = vat_normalize(in, strlen(in), country, out);

	okf(st == VAT_OK && strcmp(out, canonical) == 0, "\"%s\" (%s) -> %s", in,
		country ? country : "no country", canonical);
	if (st != VAT_OK || strcmp(out, canonical) != 0)
		printf("# status %d (%s), out %s\n", st, vat_status_text(st), out);
}

static void
invalid(const char *in, const char *country, VatStatus expected)
{
	char		out[VAT_NUMBER_MAX_LEN + 1];
	VatStatus	st = vat_normalize(in, strlen(in), country, out);

	okf(st == expected, "\"%s\" (%s) refused: %s", in, country ? country : "no country",
		vat_status_text(expected));
	if (st != expected)
		printf("# got status %d (%s), out %s\n", st, vat_status_text(st), out);
}

/* every single-digit change of a valid number's digits is caught */
static void
single_errors(const char *canonical, size_t from, size_t to)
{
	char		copy[VAT_NUMBER_MAX_LEN + 1];
	char		out[VAT_NUMBER_MAX_LEN + 1];
	int			missed = 0;

	for (size_t i = from; i < to; i++)
		for (char c = '0'; c <= '9'; c++)
		{
			if (canonical[i] == c)
				continue;
			strcpy(copy, canonical);
			copy[i] = c;
			if (vat_normalize(copy, strlen(copy), NULL, out) == VAT_OK)
				missed++;
		}
	okf(missed == 0, "%s: every single-digit error is detected (missed %d)", canonical, missed);
}

int
main(void)
{
	/* Sweden: organisation number + 01, Luhn over the first 10 digits */
	valid("SE556677889901", NULL, "SE556677889901");
	valid("se 5566778899 01", NULL, "SE556677889901");
	valid("556677-8899", "SE", "SE556677889901");
	valid("556677889901", "SE", "SE556677889901");
	invalid("SE556677889801", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("SE556677889902", NULL, VAT_BAD_FORMAT);
	invalid("SE55667788", NULL, VAT_BAD_FORMAT);
	single_errors("SE556677889901", 2, 12);

	/* Norway: 9 digits, mod 11 with weights 3 2 7 6 5 4 3 2, then MVA */
	valid("NO988077917MVA", NULL, "NO988077917MVA");
	valid("988 077 917", "NO", "NO988077917MVA");
	valid("no 988077917 mva", NULL, "NO988077917MVA");
	invalid("NO988077918MVA", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("NO98807791MVA", NULL, VAT_BAD_FORMAT);
	single_errors("NO988077917MVA", 2, 11);

	/* Denmark: 8 digits, weights 2 7 6 5 4 3 2 1, sum divisible by 11 */
	valid("DK13585628", NULL, "DK13585628");
	valid("13 58 56 28", "DK", "DK13585628");
	invalid("DK13585629", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("DK1358562", NULL, VAT_BAD_FORMAT);
	single_errors("DK13585628", 2, 10);

	/* Finland: 8 digits, weights 7 9 10 5 8 4 2, check = 11 - sum mod 11 */
	valid("FI01120389", NULL, "FI01120389");
	valid("0112038-9", "FI", "FI01120389");
	invalid("FI01120388", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("FI0112038", NULL, VAT_BAD_FORMAT);
	single_errors("FI01120389", 2, 10);

	/* Germany: 9 digits, ISO 7064 MOD 11,10 */
	valid("DE136695976", NULL, "DE136695976");
	valid("de 136 695 976", NULL, "DE136695976");
	invalid("DE136695977", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("DE036695976", NULL, VAT_BAD_CHECK_DIGIT);
	invalid("DE13669597", NULL, VAT_BAD_FORMAT);
	single_errors("DE136695976", 3, 11);

	/* other member states: formats */
	valid("ATU13585627", NULL, "ATU13585627");
	valid("NL004495445B01", NULL, "NL004495445B01");
	valid("GR094259216", NULL, "EL094259216");
	valid("EL094259216", NULL, "EL094259216");
	valid("FRXX123456789", NULL, "FRXX123456789");
	valid("IE6388047V", NULL, "IE6388047V");
	valid("IE1234567WA", NULL, "IE1234567WA");
	valid("ESB12345674", NULL, "ESB12345674");
	valid("RO18", NULL, "RO18");
	valid("BE0123456789", NULL, "BE0123456789");
	invalid("AT13585627", NULL, VAT_BAD_FORMAT);
	invalid("NL004495445C01", NULL, VAT_BAD_FORMAT);
	invalid("IT1234567890", NULL, VAT_BAD_FORMAT);
	invalid("PL12345678901", NULL, VAT_BAD_FORMAT);

	/* bad input */
	invalid("", "SE", VAT_EMPTY);
	invalid(" - . ", "SE", VAT_EMPTY);
	invalid("SE5566778899/01", NULL, VAT_BAD_CHARACTER);
	invalid("SE55667788990\xc3\xa5", NULL, VAT_BAD_CHARACTER);
	invalid("5566778899", NULL, VAT_NO_COUNTRY);
	invalid("US123456789", NULL, VAT_UNKNOWN_COUNTRY);
	invalid("GB123456789", NULL, VAT_UNKNOWN_COUNTRY);
	invalid("SE55667788990155667788990155667788", NULL, VAT_TOO_LONG);

	return tap_done();
}
