/*
 * Unit tests of src/core/autogiro.c: the Autogiro payment-claim writer
 * (every position of its records) and the reader of payment
 * specifications and mandate advices over the samples of test/bankfiles
 * (make_autogiro_samples.py) and mutations of them.  Prints TAP; run from
 * the top of the tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autogiro.h"
#include "tap.h"

static char *
load(const char *name, size_t *len)
{
	char		path[256];
	FILE	   *fp;
	char	   *buf;
	long		size;

	snprintf(path, sizeof(path), "test/bankfiles/%s.txt", name);
	fp = fopen(path, "rb");
	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
		fseek(fp, 0, SEEK_SET) != 0)
	{
		printf("Bail out! cannot read %s (run from the top of the tree)\n", path);
		exit(1);
	}
	buf = malloc((size_t) size + 1);
	if (buf == NULL || fread(buf, 1, (size_t) size, fp) != (size_t) size)
	{
		printf("Bail out! cannot read %s\n", path);
		exit(1);
	}
	fclose(fp);
	buf[size] = '\0';
	*len = (size_t) size;
	return buf;
}

static void
fails(const char *data, size_t len, int line, const char *reason, const char *name)
{
	AutogiroFile f;
	BankFileError err;
	bool		accepted = autogiro_parse(data, len, &f, &err);

	okf(!accepted && err.line == line && strstr(err.reason, reason) != NULL,
		"%s: line %d, \"%s\"", name, line, reason);
	if (accepted)
	{
		printf("#   accepted\n");
		autogiro_free(&f);
	}
	else if (err.line != line || strstr(err.reason, reason) == NULL)
		printf("#   got line %d: %s\n", err.line, err.reason);
	else
		ok(f.records == NULL && f.nrecords == 0, "  a failed parse leaves nothing allocated");
}

static void
test_writer(void)
{
	AutogiroClaim c[2] = {
		{20250328, "1001", 125000, "2025-000011", false},
		{20250331, "8327912345678", 999999999999, "", false},
	};
	char	   *out;
	size_t		len;
	BankFileError err;

	ok(autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err), "two claims written");
	is_int((long long) len, 3 * 82, "three records of 80 characters and CR LF");
	/* opening record: 01, date, AUTOGIRO, blanks, customer number 63-68, bankgiro 69-78 */
	ok(memcmp(out, "0120250320AUTOGIRO", 18) == 0, "01: date written (3-10), AUTOGIRO (11-18)");
	{
		int			i,
					blank = 1;

		for (i = 18; i < 62; i++)
			blank &= out[i] == ' ';
		ok(blank, "01: positions 19-62 blank");
	}
	ok(memcmp(out + 62, "1234560009912346  \r\n", 20) == 0, "01: customer number (63-68), bankgiro zero-filled (69-78), blanks, CR LF");
	/* claim: 82, due date, period 0, 3 blank repetitions, blank, payer 16, amount 12, bankgiro, reference */
	ok(memcmp(out + 82, "82202503280    0000000000001001000000125000000991234620", 55) == 0,
	   "82: due date (3-10), once (11), repetitions blank (12-14), payer number (16-31), amount in öre (32-43), bankgiro (44-53)");
	ok(memcmp(out + 82 + 53, "2025-000011                \r\n", 29) == 0, "82: reference left-aligned (54-69), blanks to 80");
	ok(memcmp(out + 164 + 15, "0008327912345678999999999999", 28) == 0, "82: the longest payer number and amount fit");
	free(out);

	c[0].amount = 0;
	ok(!autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err) && err.line == 1 &&
	   strstr(err.reason, "amount 0 öre is not between 1 and 999999999999") != NULL, "amount 0 refused, claim 1");
	c[0].amount = 100;
	c[1].amount = AUTOGIRO_MAX_AMOUNT + 1;
	ok(!autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err) && err.line == 2,
	   "an amount of 13 digits refused, claim 2");
	c[1].amount = 100;
	strcpy(c[1].payer_number, "12345678901234567" + 1);
	ok(autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err), "a 16-digit payer number fits");
	free(out);
	strcpy(c[1].payer_number, "12a4");
	ok(!autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err) && err.line == 2 &&
	   strstr(err.reason, "payer number \"12a4\" is not 1-16 digits") != NULL, "a payer number with a letter refused");
	strcpy(c[1].payer_number, "1");
	strcpy(c[1].reference, "ref\ttab");
	ok(!autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err) &&
	   strstr(err.reason, "control character (0x09)") != NULL, "a reference with a TAB refused");
	strcpy(c[1].reference, "");
	c[1].due_date = 20250230;
	ok(!autogiro_write_claims(20250320, "123456", "9912346", c, 2, &out, &len, &err) &&
	   strstr(err.reason, "due date 20250230 is not a valid date") != NULL, "30 February refused");
	c[1].due_date = 20250331;
	ok(!autogiro_write_claims(20250320, "12345", "9912346", c, 2, &out, &len, &err) && err.line == 0,
	   "a customer number of 5 digits refused");
	ok(!autogiro_write_claims(20250320, "123456", "12345678901", c, 2, &out, &len, &err) && err.line == 0,
	   "a bankgiro number of 11 digits refused");
	ok(autogiro_write_claims(20250320, "123456", "9912346", c, 0, &out, &len, &err) && len == 82,
	   "no claims: the opening record alone");
	free(out);
}

static void
test_outgoing(void)
{
	AutogiroClaim c[2] = {
		{20250328, "1001", 125000, "2025-000011", false},
		{20250405, "1001", 25000, "2025-000011", true},
	};
	char	   *out;
	size_t		len;
	BankFileError err;

	ok(autogiro_write_claims(20250401, "123456", "9912346", c, 2, &out, &len, &err), "a claim and an outgoing payment written");
	is_int((long long) len, 3 * 82, "three records");
	ok(memcmp(out + 82, "82", 2) == 0, "the claim: 82");
	ok(memcmp(out + 164, "3220250405", 10) == 0, "the outgoing payment: 32 and its date");
	ok(memcmp(out + 164 + 10, out + 82 + 10, 21) == 0, "  period code, repetitions and payer number as a claim's");
	ok(memcmp(out + 164 + 31, "000000025000", 12) == 0, "  its amount in öre (32-43)");
	ok(memcmp(out + 164 + 43, "0009912346" "2025-000011", 21) == 0, "  the bankgiro and reference as a claim's");
	free(out);
}

static void
test_payments(void)
{
	size_t		len;
	char	   *d = load("autogiro_payments", &len);
	AutogiroFile f;
	BankFileError err;

	if (!ok(autogiro_parse(d, len, &f, &err), "autogiro_payments: accepted"))
		printf("#   line %d: %s\n", err.line, err.reason);
	else
	{
		int			approved = 0;
		int64_t		sum = 0;
		int			i;

		is_int(f.kind, AUTOGIRO_PAYMENTS, "a payment specification");
		is_int(f.written_on, 20250328, "written on 2025-03-28 (25-32)");
		is_str(f.customer_number, "123456", "customer number");
		is_str(f.bankgiro, "9912346", "bankgiro without zeros");
		is_int(f.nrecords, 5, "five claims answered");
		is_int(f.sections, 1, "one incoming section");
		is_int(f.lines, 8, "eight lines");
		for (i = 0; i < f.nrecords; i++)
			if (f.records[i].status == 0)
			{
				approved++;
				sum += f.records[i].amount;
			}
		is_int(approved, 2, "two approved (status 0), as the section's count says");
		is_int(sum, 174900, "1250.00 + 499.00 approved, as the section's amount says");
		is_str(f.records[0].payer_number, "1001", "first: payer number 1001");
		is_int(f.records[0].amount, 125000, "first: 1250.00");
		is_str(f.records[0].reference, "2025-000011", "first: reference");
		is_int(f.records[0].date, 20250328, "first: payment date");
		is_int(f.records[0].settled_on, 20250328, "first: the section's date");
		is_int(f.records[0].section_serial, 17, "first: the section's serial");
		is_int(f.records[1].status, 1, "second: 1, insufficient funds");
		is_int(f.records[3].status, 2, "fourth: 2, no mandate");
		is_int(f.records[4].status, 9, "fifth: 9, renewed attempt");
		autogiro_free(&f);
	}
	/* mutations */
	{
		char	   *m = malloc(len);

#define RESET() memcpy(m, d, len)
#define AT(line, pos) (m + ((line) - 1) * 82 + (pos) - 1)
		RESET();
		memcpy(AT(2, 72), "00000003", 8);
		fails(m, len, 8, "the section opened on line 2 counts 3 approved records; it has 2.", "section count");
		RESET();
		*AT(4, 80) = '0';
		fails(m, len, 8, "counts 2 approved records; it has 3.", "a rejection turned approval");
		RESET();
		memcpy(AT(2, 51), "000000000000174901", 18);
		fails(m, len, 8, "says 174901 öre approved; its approved records add up to 174900.", "section amount");
		RESET();
		memcpy(AT(8, 21), "000000000003", 12);
		fails(m, len, 8, "the end record's number of approved incoming payments is 3; the file has 2.", "end record count");
		RESET();
		*AT(3, 80) = '5';
		fails(m, len, 3, "status (position 80) \"5\" is not 0 (approved)", "unknown status");
		RESET();
		memcpy(AT(3, 3), "20250230", 8);
		fails(m, len, 3, "payment date (positions 3-10) is not a valid date: \"20250230\".", "bad date");
		RESET();
		memcpy(AT(3, 32), "00000012500O", 12);
		fails(m, len, 3, "amount (positions 32-43) is not numeric", "letter in an amount");
		RESET();
		memcpy(AT(2, 1), "16", 2);
		fails(m, len, 3, "a 82 record outside a section opened by a 15 record.", "82 in an outgoing section");
		RESET();
		memcpy(AT(1, 45), "AVVISADE BET UPPDR  ", 20);
		fails(m, len, 2, "a report of rejected payment orders has rejected payments (82, 32) and an end record (09), not 15.",
			  "a specification's sections under a rejection report's opening");
		RESET();
		memcpy(AT(1, 45), "MAKULERING/ANDRING  ", 20);
		fails(m, len, 1, "an Autogiro file of another kind", "a cancellation report is not read");
		RESET();
		memcpy(AT(1, 1), "01BGMAX   ", 10);
		fails(m, len, 1, "must begin with an Autogiro opening record", "a BgMax file");
		fails(m, 0, 1, "the file is empty.", "empty file");
		RESET();
		fails(m, 82 * 7, 7, "the file ends without an end record (09).", "no end record");
		RESET();
		memcpy(AT(5, 1), "99", 2);
		fails(m, len, 5, "unknown transaction code 99", "unknown code");
		/* right-trimmed records are padded back; LF line ends read the same */
		{
			char	   *t = malloc(len);
			size_t		tl = 0;
			int			k;
			AutogiroFile g;

			for (k = 0; k < 8; k++)
			{
				const char *l = d + k * 82;
				int			n = 80;

				while (n > 0 && l[n - 1] == ' ')
					n--;
				memcpy(t + tl, l, (size_t) n);
				tl += (size_t) n;
				t[tl++] = '\n';
			}
			ok(autogiro_parse(t, tl, &g, &err) && g.nrecords == 5 && g.padded == 2 && g.padded_line == 2 &&
			   g.records[2].amount == 49900, "right-trimmed records with LF line ends: read the same, lines 2 and 8 padded back");
			if (g.records)
				autogiro_free(&g);
			free(t);
		}
#undef RESET
#undef AT
		free(m);
	}
	free(d);
}

static void
test_mandates(void)
{
	size_t		len;
	char	   *d = load("autogiro_mandates", &len);
	AutogiroFile f;
	BankFileError err;

	if (!ok(autogiro_parse(d, len, &f, &err), "autogiro_mandates: accepted"))
		printf("#   line %d: %s\n", err.line, err.reason);
	else
	{
		is_int(f.kind, AUTOGIRO_MANDATES, "a mandate advice");
		is_int(f.written_on, 20250320, "written on 2025-03-20");
		is_int(f.nrecords, 3, "three mandate records");
		is_str(f.records[0].payer_number, "1001", "first: payer number");
		is_str(f.records[0].account, "3300001234567", "first: account without zeros");
		is_str(f.records[0].id_number, "197001011234", "first: personal number");
		is_int(f.records[0].info, 4, "first: information code 04");
		is_int(f.records[0].status, 32, "first: status 32, new mandate");
		is_int(f.records[2].status, 2, "third: status 02, cancelled");
		is_int(f.records[2].date, 20250320, "third: date");
		autogiro_free(&f);
	}
	{
		char	   *m = malloc(len);

		memcpy(m, d, len);
		memcpy(m + 4 * 82 + 14, "0000004", 7);
		fails(m, len, 5, "the end record counts 4 mandate records (73); the file has 3.", "mandate count");
		memcpy(m, d, len);
		memcpy(m + 82, "82", 2);
		fails(m, len, 2, "a mandate advice has mandate records (73)", "a claim in a mandate advice");
		free(m);
	}
	free(d);
}

static void
test_rejections(void)
{
	size_t		len;
	char	   *d = load("autogiro_rejections", &len);
	AutogiroFile f;
	BankFileError err;

	if (!ok(autogiro_parse(d, len, &f, &err), "autogiro_rejections: accepted"))
		printf("#   line %d: %s\n", err.line, err.reason);
	else
	{
		is_int(f.kind, AUTOGIRO_REJECTIONS, "a report of rejected payment orders");
		is_int(f.written_on, 20250326, "written on 2025-03-26 (25-32)");
		is_str(f.customer_number, "123456", "customer number");
		is_int(f.nrecords, 3, "three rejected orders");
		is_int(f.lines, 5, "five lines");
		is_int(f.records[0].code, 82, "first: a claim (82)");
		is_int(f.records[0].date, 20250328, "first: its payment date (3-10)");
		is_str(f.records[0].payer_number, "1002", "first: payer number (15-30)");
		is_int(f.records[0].amount, 30000, "first: 300.00 (31-42)");
		is_str(f.records[0].reference, "2025-000012", "first: reference (43-58)");
		is_int(f.records[0].status, 1, "first: comment 01, no mandate (59-60)");
		is_str(f.records[0].bankgiro, "9912346", "first: the opening's bankgiro");
		is_int(f.records[1].status, 2, "second: comment 02, account closed");
		is_int(f.records[2].code, 32, "third: an outgoing payment (32)");
		is_int(f.records[2].status, 13, "third: comment 13, date passed");
		is_int(f.records[2].settled_on, 0, "no settlement date in a rejection");
		autogiro_free(&f);
	}
	{
		char	   *m = malloc(len);

#define RESET() memcpy(m, d, len)
#define AT(line, pos) (m + ((line) - 1) * 82 + (pos) - 1)
		RESET();
		memcpy(AT(5, 33), "000003", 6);
		fails(m, len, 5, "the end record counts 3 rejected incoming (82) payments; the file has 2.", "82 count");
		RESET();
		memcpy(AT(5, 21), "000000005001", 12);
		fails(m, len, 5, "the end record says 5001 öre of rejected outgoing (32) payments; they add up to 5000.", "32 amount");
		RESET();
		memcpy(AT(5, 39), "000000044999", 12);
		fails(m, len, 5, "the end record says 44999 öre of rejected incoming (82) payments", "82 amount");
		RESET();
		memcpy(AT(2, 59), "0A", 2);
		fails(m, len, 2, "comment code (positions 59-60) is not numeric", "comment code");
		RESET();
		memcpy(AT(3, 1), "73", 2);
		fails(m, len, 3, "a report of rejected payment orders has rejected payments (82, 32)", "a mandate record");
		RESET();
		memcpy(AT(2, 3), "20251301", 8);
		fails(m, len, 2, "payment date (positions 3-10) is not a valid date", "bad date");
#undef RESET
#undef AT
		free(m);
	}
	free(d);
}

int
main(void)
{
	test_writer();
	test_outgoing();
	test_payments();
	test_mandates();
	test_rejections();
	return tap_done();
}
