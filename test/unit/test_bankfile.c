/*
 * Unit tests of src/core/bankfile.c: the BgMax and Nets OCR giro parsers
 * over the sample files of test/bankfiles/ (written by
 * test/bankfiles/make_samples.py) and over one-field mutations of them.
 * Prints TAP.  Run from the top of the tree (scripts/test.sh does).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bankfile.h"
#include "tap.h"

/* A sample file's bytes; *len set.  Aborts the run if it cannot be read. */
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

/* Overwrite, on 1-based line k of a file of fixed-width lines, the text at position pos */
static void
patch(char *buf, int eol, int k, int pos, const char *text)
{
	memcpy(buf + (size_t) (k - 1) * (80 + eol) + pos - 1, text, strlen(text));
}

typedef bool (*Parser) (const char *, size_t, BankFile *, BankFileError *);

/* The parse fails on line `line` with a reason containing `reason` */
static void
fails(Parser parse, const char *data, size_t len, int line, const char *reason, const char *name)
{
	BankFile	f;
	BankFileError err;
	bool		accepted = parse(data, len, &f, &err);
	char		label[300];

	snprintf(label, sizeof(label), "%s: line %d, \"%s\"", name, line, reason);
	ok(!accepted && err.line == line && strstr(err.reason, reason) != NULL, label);
	if (accepted)
	{
		printf("#   accepted\n");
		bankfile_free(&f);
	}
	else if (err.line != line || strstr(err.reason, reason) == NULL)
		printf("#   got line %d: %s\n", err.line, err.reason);
	else
		ok(f.payments == NULL && f.npayments == 0 && f.text == NULL,
		   "  a failed parse leaves nothing allocated");
}

static void
fails_file(Parser parse, const char *file, int line, const char *reason)
{
	size_t		len;
	char	   *data = load(file, &len);

	fails(parse, data, len, line, reason, file);
	free(data);
}

static const char *
text_of(const BankFile *f, size_t off, size_t len, char *buf)
{
	memcpy(buf, f->text + off, len);
	buf[len] = '\0';
	return buf;
}

static void
test_bgmax_good(void)
{
	size_t		len;
	char	   *data = load("bgmax_good", &len);
	BankFile	f;
	BankFileError err;
	const BankPayment *p;
	char		buf[200];
	int64_t		sum = 0;
	int			i;

	ok(bgmax_parse(data, len, &f, &err), "bgmax_good parses");
	if (f.npayments != 5)
	{
		printf("# %d: %s\n", err.line, err.reason);
		free(data);
		return;
	}
	is_int(f.records, 20, "bgmax_good: 20 records");
	is_int(f.sections, 2, "bgmax_good: 2 deposits");
	is_int(f.payment_records, 5, "bgmax_good: 5 payment records");
	is_int(f.deduction_records, 0, "bgmax_good: no deduction records");
	is_int(f.extra_reference_records, 1, "bgmax_good: 1 extra reference record");
	ok(!f.test && f.version == 1, "bgmax_good: production file, layout version 01");
	is_int(f.created_on, 20250317, "bgmax_good: created on 2025-03-17");
	is_int(f.created_time_us, (6 * 3600 + 15 * 60 + 30) * 1000000LL + 123456, "bgmax_good: at 06:15:30.123456");

	p = &f.payments[0];
	is_int(p->line, 3, "payment 1 on line 3");
	is_int(p->kind, 20, "payment 1 is a payment (20)");
	is_int(p->amount, 125000, "payment 1: 1250.00");
	is_str(p->currency, "SEK", "payment 1: SEK");
	is_str(p->reference, "471169", "payment 1: right-aligned OCR reference trimmed");
	is_int(p->received_on, 20250314, "payment 1: deposit's payment date 2025-03-14");
	is_str(p->bank_ref, "bgmax:0009912346:20250314:00001:1", "payment 1: bank identifiers (deposit, position)");
	is_str(p->payer, "3783511", "payment 1: sender's bankgiro without zeros");
	is_str(p->payer_name, "Kalles Pl\xe5t AB", "payment 1: name (ISO-8859-1)");
	is_str(p->payer_address, "Storgatan 2, 12345 Stor\xe5ker", "payment 1: address joined");
	is_str(p->payer_org_no, "5560001234", "payment 1: organisation number");
	ok(p->reference_code == 2 && p->channel == 1 && !p->image && p->deduction_code == -1,
	   "payment 1: reference code 2, channel 1, no image, no deduction code");
	is_str(p->bgc_serial, "000000001001", "payment 1: BGC serial number");
	is_str(p->receiver, "9912346", "payment 1: receiver's bankgiro");
	is_int(p->deposit_serial, 1, "payment 1: deposit serial 1");
	ok(p->info_len == 0 && p->extra_len == 0, "payment 1: no information, no extra references");

	p = &f.payments[1];
	ok(p->payer[0] == '\0' && p->payer_name[0] == '\0' && p->payer_address[0] == '\0',
	   "payment 2: no sender bankgiro, name or address");
	p = &f.payments[2];
	is_str(p->payer_name, "Olles F\xe4rg AB", "payment 3: name only");
	is_str(p->payer_address, "", "payment 3: no address");

	p = &f.payments[3];
	is_int(p->line, 13, "payment 4 on line 13");
	is_str(p->reference, "FAKTURA 471367", "payment 4: free-text reference");
	ok(p->reference_code == 4 && p->channel == 3 && p->image, "payment 4: code 4, channel 3, image");
	is_str(text_of(&f, p->extra_off, p->extra_len, buf), "471466", "payment 4: extra reference");
	is_str(text_of(&f, p->info_off, p->info_len, buf), "Betalning avser tv\xe5 fakturor", "payment 4: information");
	is_str(p->payer_name, "Berits Garn c/o Berit Ek", "payment 4: name and extra name");
	is_int(p->received_on, 20250317, "payment 4: second deposit's date");
	is_int(p->deposit_serial, 2, "payment 4: deposit serial 2");
	is_str(p->bank_ref, "bgmax:0009912346:20250317:00002:1", "payment 4: bank identifiers (deposit, position)");

	p = &f.payments[4];
	is_str(p->reference, "", "payment 5: no reference");
	is_int(p->reference_code, 1, "payment 5: reference code 1");
	is_str(text_of(&f, p->info_off, p->info_len, buf), "Medlemsavgift 2025", "payment 5: information");

	for (i = 0; i < f.npayments; i++)
		sum += f.payments[i].amount;
	is_int(sum, 419900, "bgmax_good: payments sum to 4199.00");
	bankfile_free(&f);
	ok(f.payments == NULL && f.npayments == 0, "bankfile_free empties the file");

	/* the same file with LF line ends, without the last line end, with empty lines after the end */
	{
		char	   *lf = malloc(len + 4);
		size_t		o = 0,
					k;

		for (k = 0; k < len; k++)
			if (data[k] != '\r')
				lf[o++] = data[k];
		ok(bgmax_parse(lf, o, &f, &err) && f.npayments == 5, "LF line ends parse the same");
		bankfile_free(&f);
		ok(bgmax_parse(lf, o - 1, &f, &err) && f.npayments == 5, "no line end after the end record");
		bankfile_free(&f);
		memcpy(lf + o, "\n\r\n", 3);
		ok(bgmax_parse(lf, o + 3, &f, &err) && f.npayments == 5, "empty lines after the end record are ignored");
		bankfile_free(&f);
		memcpy(lf + o, "\n \n", 3);
		fails(bgmax_parse, lf, o + 3, 22, "text after the end record", "a blank after the end record");
		free(lf);
	}
	free(data);
}

static void
test_bgmax_deduction(void)
{
	size_t		len;
	char	   *data = load("bgmax_deduction", &len);
	BankFile	f;
	BankFileError err;
	char		buf[100];

	ok(bgmax_parse(data, len, &f, &err) && f.npayments == 2, "bgmax_deduction parses");
	if (f.npayments == 2)
	{
		const BankPayment *d = &f.payments[1];

		is_int(d->kind, 21, "deduction: kind 21");
		is_int(d->amount, -20000, "deduction: -200.00");
		is_int(d->deduction_code, 0, "deduction: deduction code 0");
		is_str(text_of(&f, d->extra_off, d->extra_len, buf), "471367", "deduction: negative extra reference (23)");
		ok(f.payment_records == 1 && f.deduction_records == 1 && f.extra_reference_records == 1,
		   "deduction: end counts 1, 1, 1");
		bankfile_free(&f);
	}
	free(data);
}

static void
test_bgmax_errors(void)
{
	size_t		len;
	char	   *good = load("bgmax_good", &len);
	char	   *d = malloc(len);

#define RESET() memcpy(d, good, len)

	fails_file(bgmax_parse, "bgmax_bad_count", 11, "deposit record count 2 does not match 3 payment records.");
	fails_file(bgmax_parse, "bgmax_bad_sum", 19,
			   "deposit amount 2149.99 does not match 2150.00, the sum of the deposit's payments less its deductions.");
	fails_file(bgmax_parse, "bgmax_bad_record", 8, "amount (positions 38-55) is not numeric: \"0000000000000499O0\"");
	/* cut inside the BGC serial number: padded, the field is half blank */
	fails_file(bgmax_parse, "bgmax_truncated_line", 9, "BGC serial number (positions 58-69) is not numeric: \"000         \".");
	fails_file(bgmax_parse, "bgmax_missing_end", 19, "the file ends without an end record (70).");
	fails_file(bgmax_parse, "bgmax_bad_end_count", 20,
			   "end record count of payment records 6 does not match 5 payment records (20) in the file.");

	fails(bgmax_parse, "", 0, 1, "the file is empty.", "empty file");
	fails(bgmax_parse, good, 82 * 5, 5, "the file ends inside the deposit section opened on line 2", "cut inside a section");

	RESET();
	patch(d, 2, 1, 45, "X");
	fails(bgmax_parse, d, len, 1, "test marker (position 45) \"X\" is neither T (test) nor P (production).", "bad test marker");
	RESET();
	patch(d, 2, 1, 45, "T");
	{
		BankFile	f;
		BankFileError err;

		ok(bgmax_parse(d, len, &f, &err) && f.test, "test marker T: a test file");
		bankfile_free(&f);
	}
	RESET();
	patch(d, 2, 1, 3, "BGMAY");
	fails(bgmax_parse, d, len, 1, "layout name (positions 3-22) \"BGMAY\" is not BGMAX.", "layout name");
	RESET();
	patch(d, 2, 1, 23, "02");
	fails(bgmax_parse, d, len, 1, "layout version 02 is not supported", "layout version");
	RESET();
	patch(d, 2, 1, 25, "20250230");
	fails(bgmax_parse, d, len, 1, "timestamp's date (positions 25-32) is not a valid date: \"20250230\".", "30 February");
	RESET();
	patch(d, 2, 1, 33, "24");
	fails(bgmax_parse, d, len, 1, "timestamp's time (positions 33-38) is not a valid time", "hour 24");
	RESET();
	patch(d, 2, 1, 1, "05");
	fails(bgmax_parse, d, len, 1, "the file must begin with a start record (01), not a opening record (05).", "no start record");
	RESET();
	patch(d, 2, 2, 1, "01");
	fails(bgmax_parse, d, len, 2, "a second start record (01).", "second start record");
	RESET();
	patch(d, 2, 3, 1, "24");
	fails(bgmax_parse, d, len, 3, "unknown record type \"24\".", "unknown record type");
	RESET();
	patch(d, 2, 3, 20, "\t");
	fails(bgmax_parse, d, len, 3, "the line has 84 characters with its TABs expanded; a record has 80.", "TAB that pushes the record past 80");
	RESET();
	patch(d, 2, 3, 20, "\x01");
	fails(bgmax_parse, d, len, 3, "character 20 is a control character (0x01).", "C0 control character");
	RESET();
	/* a TAB where blanks up to column 24 were (and 7 blanks to 31) */
	{
		BankFile	f;
		BankFileError err;
		char	   *t = malloc(len);
		size_t		tl = 0;
		bool		accepted;

		memcpy(t, d, 82 * 2 + 16);
		tl = 82 * 2 + 16;
		memcpy(t + tl, "\t       ", 8);
		tl += 8;
		memcpy(t + tl, d + 82 * 2 + 31, len - (82 * 2 + 31));
		tl += len - (82 * 2 + 31);
		accepted = bgmax_parse(t, tl, &f, &err);
		free(t);
		ok(accepted && f.npayments == 5 && strcmp(f.payments[0].reference, "471169") == 0 &&
		   f.payments[0].amount == 125000,
		   "a TAB in the blanks of a reference is expanded to 8-column stops: the record reads the same");
		if (!accepted)
			printf("#   line %d: %s\n", err.line, err.reason);
		ok(accepted && f.nwarnings == 1 && f.warnings[0].line == 3 && f.warnings[0].count == 1 &&
		   strcmp(f.warnings[0].reason, "1 record with a TAB, expanded to blanks up to the next multiple of 8 columns.") == 0,
		   "  and recorded as a warning on line 3");
		if (accepted)
			bankfile_free(&f);
	}
	RESET();
	patch(d, 2, 3, 20, "\x85");
	fails(bgmax_parse, d, len, 3, "character 20 is a control character (0x85).", "C1 control character");
	RESET();
	patch(d, 2, 2, 23, "sek");
	fails(bgmax_parse, d, len, 2, "currency (positions 23-25) \"sek\" is not an ISO 4217 code.", "lower-case currency");
	RESET();
	patch(d, 2, 2, 23, "JPY");
	fails(bgmax_parse, d, len, 2, "currency JPY has 0 decimals; BgMax amounts are in hundredths.", "currency without cents");
	RESET();
	patch(d, 2, 2, 23, "   ");
	patch(d, 2, 11, 69, "   ");
	{
		BankFile	f;
		BankFileError err;

		ok(bgmax_parse(d, len, &f, &err) && strcmp(f.payments[0].currency, "SEK") == 0,
		   "blank currency is SEK");
		bankfile_free(&f);
	}
	RESET();
	patch(d, 2, 11, 69, "EUR");
	fails(bgmax_parse, d, len, 11, "deposit currency \"EUR\" differs from the opening record's \"SEK\" on line 2.", "deposit currency");
	RESET();
	patch(d, 2, 3, 56, "6");
	fails(bgmax_parse, d, len, 3, "reference code (position 56) \"6\" is not 0-5.", "reference code");
	RESET();
	patch(d, 2, 3, 57, "5");
	fails(bgmax_parse, d, len, 3, "payment channel code (position 57) \"5\" is not 1-4.", "channel");
	RESET();
	patch(d, 2, 3, 70, "2");
	fails(bgmax_parse, d, len, 3, "image marker (position 70) \"2\" is not 0 or 1.", "image marker");
	RESET();
	patch(d, 2, 3, 60, "A");
	fails(bgmax_parse, d, len, 3, "BGC serial number (positions 58-69) is not numeric", "serial");
	RESET();
	patch(d, 2, 11, 38, "20250332");
	fails(bgmax_parse, d, len, 11, "payment date (positions 38-45) is not a valid date: \"20250332\".", "payment date");
	RESET();
	patch(d, 2, 11, 80, "X");
	fails(bgmax_parse, d, len, 11, "deposit type (position 80) \"X\" is not K, D, S or blank.", "deposit type");
	/* order of the records that follow a payment */
	RESET();
	memcpy(d + 82 * 3, good + 82 * 5, 80);	/* line 4 (26) becomes a 28 */
	memcpy(d + 82 * 5, good + 82 * 3, 80);	/* line 6 (28) becomes a 26 */
	fails(bgmax_parse, d, len, 5, "address record (27) after an address record (28)", "27 after 28");
	RESET();
	memcpy(d + 82 * 4, good + 82 * 3, 80);	/* line 5 (27) becomes a second 26 */
	fails(bgmax_parse, d, len, 5, "a second name record (26) for the payment on line 3.", "two name records");
	RESET();
	memcpy(d + 82 * 2, good + 82 * 3, 80);	/* line 3 (20) becomes a 26 right after the 05 */
	fails(bgmax_parse, d, len, 3, "name record (26) must follow a payment (20) or deduction (21) record.", "26 without a payment");
	RESET();
	memcpy(d + 82 * 11, good + 82 * 2, 80); /* line 12 (05) becomes a 20 after the deposit */
	fails(bgmax_parse, d, len, 12, "payment record (20) outside a deposit section", "20 outside a section");
	RESET();
	memcpy(d + 82 * 9, good + 82 * 1, 80);	/* line 10 (26) becomes a 05 */
	fails(bgmax_parse, d, len, 10, "opening record (05) inside the deposit section opened on line 2, before its deposit record (15).",
		  "05 inside a section");
	RESET();
	memcpy(d + 82 * 18, good + 82 * 19, 80);	/* line 19 (15) becomes the 70 */
	fails(bgmax_parse, d, len, 19, "end record (70) inside the deposit section opened on line 12", "70 inside a section");
	/* the same deposit (receiver, date, deposit serial) twice in one file */
	RESET();
	patch(d, 2, 19, 38, "2025031400001");
	fails(bgmax_parse, d, len, 13,
		  "the payment repeats the bank's identifiers bgmax:0009912346:20250314:00001:1 of the payment on line 3.",
		  "the same deposit twice");
	/* BGC serial numbers repeat across deposits (and even within one) in real files: no key */
	RESET();
	patch(d, 2, 8, 58, "000000001001");
	patch(d, 2, 13, 58, "000000001001");
	{
		BankFile	f;
		BankFileError err;

		ok(bgmax_parse(d, len, &f, &err) && strcmp(f.payments[1].bank_ref, "bgmax:0009912346:20250314:00001:2") == 0 &&
		   strcmp(f.payments[3].bank_ref, "bgmax:0009912346:20250317:00002:1") == 0,
		   "a BGC serial number repeated in its deposit and in another is accepted: payments keyed by deposit and position");
		bankfile_free(&f);
	}
	/* overflow: ten 18-digit amounts in one deposit */
	{
		char		big[82 * 14];
		int			k;

		memcpy(big, good, 82 * 2);
		for (k = 0; k < 10; k++)
		{
			memcpy(big + 82 * (2 + k), good + 82 * 2, 82);
			patch(big, 2, 3 + k, 38, "999999999999999999");
		}
		fails(bgmax_parse, big, 82 * 12, 12, "the sum of the deposit's payments overflows.", "sum overflow");
	}
#undef RESET
	free(d);
	free(good);
}

static void
test_nets_good(void)
{
	size_t		len;
	char	   *data = load("nets_good", &len);
	BankFile	f;
	BankFileError err;
	const BankPayment *p;

	ok(nets_ocr_parse(data, len, &f, &err), "nets_good parses");
	if (f.npayments != 5)
	{
		printf("# %d: %s\n", err.line, err.reason);
		free(data);
		return;
	}
	is_int(f.records, 17, "nets_good: 17 records");
	is_int(f.sections, 2, "nets_good: 2 assignments");
	is_int(f.transactions, 5, "nets_good: 5 transactions");
	is_int(f.total, 309900, "nets_good: total 3099.00");
	is_int(f.nets_date, 20250318, "nets_good: Nets date 2025-03-18");
	is_str(f.data_transmitter, "00008080", "nets_good: data transmitter");
	is_str(f.transmission_number, "0000123", "nets_good: transmission number");
	is_str(f.data_recipient, "00012345", "nets_good: data recipient");

	p = &f.payments[0];
	is_int(p->line, 3, "transaction 1 on line 3");
	is_int(p->kind, 10, "transaction 1: type 10");
	is_int(p->amount, 125000, "transaction 1: 1250.00");
	is_str(p->currency, "NOK", "transaction 1: NOK");
	is_str(p->reference, "50013", "transaction 1: KID");
	is_int(p->received_on, 20250314, "transaction 1: Nets date 2025-03-14");
	is_str(p->bank_ref, "nets:000123456:0000001:0000001", "transaction 1: bank identifiers");
	is_str(p->payer, "12345678901", "transaction 1: debited account");
	is_int(p->bank_date, 20250313, "transaction 1: payment date 2025-03-13");
	is_str(p->form_number, "9797596016", "transaction 1: form number");
	is_str(p->archive_reference, "097596016", "transaction 1: archive reference");
	is_int(p->transaction_number, 1, "transaction 1: number 1");
	ok(strcmp(p->centre_id, "01") == 0 && p->day_code == 14 && p->partial_settlement == 1 &&
	   strcmp(p->settlement_serial, "00011") == 0, "transaction 1: centre 01, day 14, partial settlement 1, serial 00011");
	ok(strcmp(p->agreement_id, "000123456") == 0 && strcmp(p->assignment_number, "0000001") == 0 &&
	   strcmp(p->assignment_account, "12345678903") == 0, "transaction 1: its assignment");

	p = &f.payments[1];
	ok(p->payer[0] == '\0' && p->bank_date == 0 && p->form_number[0] == '\0' && p->archive_reference[0] == '\0',
	   "transaction 2: zeros are absent values");
	p = &f.payments[3];
	is_int(p->kind, 21, "transaction 4: type 21");
	is_str(p->reference, "", "transaction 4: no KID");
	is_str(p->message, "Gave til klubben", "transaction 4: amount item 3 text");
	is_str(p->bank_ref, "nets:000123456:0000002:0000002", "transaction 4: bank identifiers");
	p = &f.payments[4];
	is_int(p->received_on, 20250318, "transaction 5: Nets date 2025-03-18");
	bankfile_free(&f);

	{
		char	   *crlf = malloc(len * 2);
		size_t		o = 0,
					k;

		for (k = 0; k < len; k++)
		{
			if (data[k] == '\n')
				crlf[o++] = '\r';
			crlf[o++] = data[k];
		}
		ok(nets_ocr_parse(crlf, o, &f, &err) && f.npayments == 5, "CR LF line ends parse the same");
		bankfile_free(&f);
		free(crlf);
	}
	free(data);
}

static void
test_nets_errors(void)
{
	size_t		len;
	char	   *good = load("nets_good", &len);
	char	   *d = malloc(len);
	BankFile	f;
	BankFileError err;

#define RESET() memcpy(d, good, len)

	fails_file(nets_ocr_parse, "nets_bad_count", 7, "assignment end record count 3 does not match 2 transactions in the assignment.");
	fails_file(nets_ocr_parse, "nets_bad_sum", 17,
			   "transmission end record sum 3100.00 does not match 3099.00, the sum of the file's amounts.");
	fails_file(nets_ocr_parse, "nets_bad_record", 6,
			   "amount item 2 (31) is for transaction 3 of type 13, but amount item 1 on line 5 is for transaction 2 of type 13.");
	{
		size_t		tlen;
		char	   *t = load("nets_truncated_line", &tlen);
		BankFile	f;
		BankFileError err;
		bool		accepted = nets_ocr_parse(t, tlen, &f, &err);

		ok(accepted && f.npayments == 5 && f.nwarnings == 1 && f.warnings[0].line == 10 &&
		   strcmp(f.warnings[0].reason, "1 record shorter than 80 characters (right-trimmed), padded back to 80 with blanks.") == 0,
		   "nets_truncated_line: the right-trimmed record is padded back, with a warning on line 10");
		if (!accepted)
			printf("#   line %d: %s\n", err.line, err.reason);
		else
			bankfile_free(&f);
		free(t);
	}
	fails_file(nets_ocr_parse, "nets_missing_end", 16, "the file ends without an end record for the transmission (89).");

	{
		size_t		rlen;
		char	   *rev = load("nets_reversal", &rlen);

		ok(nets_ocr_parse(rev, rlen, &f, &err) && f.npayments == 2 && f.payments[1].amount == -25000 &&
		   f.payments[1].kind == 18 && f.total == 75000, "nets_reversal: a reversal with sign - is negative; net total 750.00");
		bankfile_free(&f);
		free(rev);
	}

	fails(nets_ocr_parse, "", 0, 1, "the file is empty.", "empty file");
	RESET();
	patch(d, 1, 1, 1, "NX");
	fails(nets_ocr_parse, d, len, 1, "the record does not begin with the format code NY: \"NX\".", "format code");
	RESET();
	patch(d, 1, 2, 3, "21");
	fails(nets_ocr_parse, d, len, 2, "service code (positions 3-4) \"21\" is not OCR giro (09).", "AvtaleGiro service code");
	RESET();
	patch(d, 1, 2, 7, "21");
	fails(nets_ocr_parse, d, len, 2, "unknown record type \"21\" (positions 7-8).", "record type 21");
	RESET();
	patch(d, 1, 2, 5, "24");
	fails(nets_ocr_parse, d, len, 2, "assignment type (positions 5-6) \"24\" is not a transaction assignment (00).", "assignment type");
	RESET();
	patch(d, 1, 3, 5, "22");
	fails(nets_ocr_parse, d, len, 3, "transaction type 22 (positions 5-6) is not an OCR giro transaction type (10-21).", "transaction type");
	RESET();
	patch(d, 1, 3, 16, "310225");
	fails(nets_ocr_parse, d, len, 3, "Nets date (positions 16-21) is not a valid date (DDMMYY): \"310225\".", "31 February");
	RESET();
	patch(d, 1, 3, 32, "+");
	fails(nets_ocr_parse, d, len, 3, "sign (position 32) \"+\" is neither 0 nor -.", "sign");
	RESET();
	patch(d, 1, 3, 70, "A");
	fails(nets_ocr_parse, d, len, 3, "KID (positions 50-74) has a character other than a digit or -", "KID with a letter");
	RESET();
	patch(d, 1, 3, 74, "-");
	ok(nets_ocr_parse(d, len, &f, &err) && strcmp(f.payments[0].reference, "5001-") == 0,
	   "a KID ending in - (mod 11) is accepted");
	bankfile_free(&f);
	RESET();
	patch(d, 1, 4, 42, "320325");
	fails(nets_ocr_parse, d, len, 4, "payment date (positions 42-47) is not a valid date (DDMMYY): \"320325\".", "item 2 date");
	RESET();
	patch(d, 1, 4, 7, "30");
	fails(nets_ocr_parse, d, len, 4, "amount item 1 (30) where amount item 2 (31) of transaction 1 was expected.", "30 after 30");
	RESET();
	memcpy(d + 81 * 3, good + 81 * 12, 80); /* line 4 becomes an item 3 */
	fails(nets_ocr_parse, d, len, 4, "amount item 3 (32) where amount item 2 (31) of transaction 1 was expected.", "32 after 30");
	RESET();
	patch(d, 1, 13, 5, "10");
	patch(d, 1, 11, 5, "10");
	patch(d, 1, 12, 5, "10");
	fails(nets_ocr_parse, d, len, 13, "amount item 3 (32) is only for transaction types 20 and 21, not 10.", "item 3 for type 10");
	RESET();
	memcpy(d + 81 * 13, good + 81 * 12, 80); /* line 14 becomes a second item 3 */
	fails(nets_ocr_parse, d, len, 14, "amount item 3 (32) must follow amount item 2 (31).", "two items 3");
	RESET();
	memcpy(d + 81 * 2, good + 81 * 3, 80);	/* line 3 becomes an item 2 */
	fails(nets_ocr_parse, d, len, 3, "amount item 2 (31) must follow amount item 1 (30).", "31 without 30");
	RESET();
	memcpy(d + 81 * 7, good + 81 * 2, 80);	/* line 8 (20) becomes a 30 after the 88 */
	fails(nets_ocr_parse, d, len, 8, "amount item 1 (30) outside an assignment", "30 outside an assignment");
	RESET();
	memcpy(d + 81 * 6, good + 81 * 1, 80);	/* line 7 (88) becomes a 20 */
	fails(nets_ocr_parse, d, len, 7, "start record for an assignment (20) inside the assignment opened on line 2, before its end record (88).",
		  "20 inside an assignment");
	RESET();
	memcpy(d + 81 * 1, good, 80);
	fails(nets_ocr_parse, d, len, 2, "a second start record for the transmission (10).", "second 10");
	RESET();
	patch(d, 1, 7, 17, "00000007");
	fails(nets_ocr_parse, d, len, 7, "assignment end record counts 7 records; the assignment has 6.", "88 record count");
	RESET();
	patch(d, 1, 7, 25, "00000000000175000");
	fails(nets_ocr_parse, d, len, 7, "assignment end record sum 1750.00 does not match 1749.00, the sum of the assignment's amounts.", "88 sum");
	RESET();
	patch(d, 1, 16, 48, "160325");
	fails(nets_ocr_parse, d, len, 16, "earliest Nets date 160325 does not match", "88 earliest date");
	RESET();
	patch(d, 1, 16, 54, "170325");
	fails(nets_ocr_parse, d, len, 16, "latest Nets date 170325 does not match", "88 latest date");
	RESET();
	patch(d, 1, 17, 9, "00000004");
	fails(nets_ocr_parse, d, len, 17, "transmission end record count 4 does not match 5 transactions in the file.", "89 count");
	RESET();
	patch(d, 1, 17, 17, "00000018");
	fails(nets_ocr_parse, d, len, 17, "transmission end record counts 18 records; the transmission has 17.", "89 records");
	/* the same transaction number twice in an assignment */
	RESET();
	patch(d, 1, 5, 9, "0000001");
	patch(d, 1, 6, 9, "0000001");
	fails(nets_ocr_parse, d, len, 5,
		  "the payment repeats the bank's identifiers nets:000123456:0000001:0000001 of the payment on line 3.",
		  "repeated transaction number");
	/* the same number in another assignment is another payment */
	RESET();
	patch(d, 1, 9, 9, "0000007");
	patch(d, 1, 10, 9, "0000007");
	ok(nets_ocr_parse(d, len, &f, &err), "transaction numbers need only be unique within an assignment");
	bankfile_free(&f);
	/* the same assignment number twice */
	RESET();
	patch(d, 1, 8, 18, "0000001");
	fails(nets_ocr_parse, d, len, 9, "repeats the bank's identifiers nets:000123456:0000001:0000001 of the payment on line 3.",
		  "repeated assignment number");
	/* an empty transmission */
	{
		const char *empty =
		"NY000010000080800000124000123450000000000000000000000000000000000000000000000000\n"
		"NY000089000000000000000200000000000000000000000000000000000000000000000000000000\n";

		ok(nets_ocr_parse(empty, strlen(empty), &f, &err) && f.npayments == 0 && f.records == 2,
		   "a transmission without assignments is accepted");
		bankfile_free(&f);
	}
#undef RESET
	free(d);
	free(good);
}

static void
test_encoding(void)
{
	char		out[64];
	size_t		outlen = 0;
	BankFileError err;
	const char *utf8 = "Pl\xc3\xa5t \xc3\x84 \xc2\xa0";
	char		buf[32];

	ok(bankfile_utf8_to_latin1(utf8, strlen(utf8), out, &outlen, &err) && outlen == 8 &&
	   memcmp(out, "Pl\xe5t \xc4 \xa0", 8) == 0, "UTF-8 to ISO-8859-1: \xc3\xa5, \xc3\x84, no-break space");
	ok(!bankfile_utf8_to_latin1("a\nb\n\xe2\x82\xac", 7, out, &outlen, &err) && err.line == 3 &&
	   strstr(err.reason, "character U+20AC is not in ISO-8859-1") != NULL, "the euro sign is refused with its line");
	ok(!bankfile_utf8_to_latin1("\xc3", 1, out, &outlen, &err) && strstr(err.reason, "not valid UTF-8") != NULL,
	   "a cut UTF-8 sequence is refused");
	ok(!bankfile_utf8_to_latin1("\xc0\xa5", 2, out, &outlen, &err) && strstr(err.reason, "not valid UTF-8") != NULL,
	   "an overlong UTF-8 sequence is refused");
	ok(!bankfile_utf8_to_latin1("\xe2\x28\xa1", 3, out, &outlen, &err) && strstr(err.reason, "not valid UTF-8") != NULL,
	   "a bad continuation byte is refused");
	bankfile_format_amount(-5, buf);
	is_str(buf, "-0.05", "amount -5 formats as -0.05");
	bankfile_format_amount(INT64_MIN, buf);
	is_str(buf, "-92233720368547758.08", "the most negative amount formats");
}

int
main(void)
{
	test_bgmax_good();
	test_bgmax_deduction();
	test_bgmax_errors();
	test_nets_good();
	test_nets_errors();
	test_encoding();
	return tap_done();
}
