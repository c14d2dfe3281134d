/*-------------------------------------------------------------------------
 *
 * bankfile.h
 *	  Parsers of incoming-payment files from banks: Bankgirot BgMax
 *	  (Sweden, "Bankgiro Inbetalningar") and Nets OCR giro (Norway).
 *
 * Plain C, no PostgreSQL headers: unit-tested (test/unit/test_bankfile.c)
 * and fuzzed (test/fuzz/fuzz_bankfile.c) on its own.  The fmgr wrappers are
 * in src/bankfile.c; the formats, field tables and every check are
 * described in docs/bankfiles.md.
 *
 * Both formats are files of fixed-width 80-character records.  The parsers
 * work on bytes, one byte per character: ISO-8859-1 (the banks' encoding),
 * of which ASCII is a subset.  bankfile_utf8_to_latin1() turns UTF-8 text
 * into such bytes first.  Lines end in LF or CR LF; empty lines after the
 * end record are ignored.
 *
 * Files as banks and programs really write them are read: a record cut
 * after its last non-blank character (right-trimmed) is padded back to 80
 * with blanks (a longer line is an error), a TAB is
 * expanded to the next multiple of 8 columns (as the editor that wrote it
 * showed it).  Each such tolerance is recorded as a warning (BankFile
 * warnings: kind, first line, number of lines), never silently.
 *
 * A parse either accepts the whole file (every record well formed, in a
 * legal order, every section's and the file's money counts and sums equal
 * to its end records, every bank identifier unique) or stops at the first
 * error with its line number and a reason.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_CORE_BANKFILE_H
#define SUBBILLING_CORE_BANKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every record is this many characters, line ending not counted */
#define BANKFILE_RECORD_LEN 80

typedef enum BankFileFormat
{
	BANKFILE_BGMAX = 1,			/* Bankgirot BgMax, layout version 01 */
	BANKFILE_NETS_OCR = 2		/* Nets OCR giro (service code 09) */
} BankFileFormat;

/* A tolerated irregularity: what, where first, on how many lines */
typedef struct BankFileWarning
{
	int			line;			/* first line that shows it */
	int			count;			/* lines (or records) that show it */
	char		reason[200];	/* lower-case sentence ending in a period */
} BankFileWarning;

/* Kinds of tolerated irregularities (one warning each at most) */
typedef enum BankFileWarningKind
{
	BANKFILE_W_PADDED = 0,		/* record right-trimmed, padded back to 80 */
	BANKFILE_W_TABS,			/* TAB expanded to blanks */
	BANKFILE_W_BLANK_SERIAL,	/* BgMax: BGC serial number blank */
	BANKFILE_W_BLANK_IMAGE,		/* BgMax: image marker blank */
	BANKFILE_W_EXTRA_COUNT,		/* BgMax: end record's extra-reference count */
	BANKFILE_W_KINDS
} BankFileWarningKind;

/* The first error found: where and why */
typedef struct BankFileError
{
	int			line;			/* 1-based line number */
	char		reason[256];	/* lower-case sentence ending in a period */
} BankFileError;

/*
 * One payment of a file.  Text fields are NUL-terminated, without the
 * padding blanks or zeros of the record, "" when absent.  Dates are packed
 * as year * 10000 + month * 100 + day, 0 when absent.
 */
typedef struct BankPayment
{
	int			line;			/* line of the record that carries the amount */
	int			kind;			/* BgMax: 20 payment, 21 deduction; Nets:
								 * transaction type 10..21 */
	int64_t		amount;			/* minor units, signed: deductions and Nets
								 * amounts with sign '-' are negative */
	char		currency[4];	/* ISO 4217 code */
	int32_t		received_on;	/* BgMax: deposit's payment date; Nets:
								 * settlement (Nets) date */
	char		reference[26];	/* OCR reference / KID / free-text reference */
	char		bank_ref[48];	/* the bank's identifiers, see docs: BgMax
								 * receiver:payment date:deposit serial:
								 * position in the deposit; Nets agreement:
								 * assignment:transaction number */
	char		payer[12];		/* BgMax: sender's bankgiro number; Nets:
								 * debited account */

	/* BgMax only */
	int			reference_code; /* 0..5 */
	int			channel;		/* payment channel code 1..4 */
	bool		image;			/* image marker: a scanned slip exists */
	int			deduction_code; /* record 21 position 71; -1 for payments */
	char		bgc_serial[13]; /* BGC serial number, 12 digits */
	char		receiver[11];	/* receiver's bankgiro number (record 05) */
	int			deposit_serial; /* deposit serial number (record 15) */
	char		payer_name[72]; /* record 26: name, extra name */
	char		payer_address[160]; /* records 27, 28: street, postcode city,
									 * country */
	char		payer_org_no[13];	/* record 29 */
	size_t		info_off;		/* record 25 texts in BankFile.text, one per */
	size_t		info_len;		/* line, separated by '\n' */
	size_t		extra_off;		/* record 22/23 references in BankFile.text, */
	size_t		extra_len;		/* separated by '\n' */

	/* Nets OCR giro only */
	int			transaction_number; /* 1..9999999, unique in its assignment */
	int32_t		bank_date;		/* amount item 2 date (payer's bank), or 0 */
	char		form_number[11];
	char		archive_reference[10];
	char		message[41];	/* amount item 3 (types 20, 21) */
	char		agreement_id[10];
	char		assignment_number[8];
	char		assignment_account[12];
	char		centre_id[3];
	int			day_code;
	int			partial_settlement; /* partial settlement number */
	char		settlement_serial[6];	/* partial settlement serial number */
} BankPayment;

/* A parsed file */
typedef struct BankFile
{
	BankFileFormat format;
	BankPayment *payments;		/* in file order */
	int			npayments;
	int			capacity;		/* allocated elements of payments */
	char	   *text;			/* variable-length texts, see BankPayment */
	size_t		text_len;
	size_t		text_cap;
	int			records;		/* lines up to and including the end record */
	int			sections;		/* BgMax deposits / Nets assignments */

	/* BgMax start record (01) and end record (70) */
	int			version;		/* layout version (01) */
	int32_t		created_on;		/* timestamp: date ... */
	int64_t		created_time_us;	/* ... and microseconds since midnight */
	bool		test;			/* test marker 'T' (else 'P', production) */
	int			payment_records;	/* record 20 count */
	int			deduction_records;	/* record 21 count */
	int			extra_reference_records;	/* records 22 and 23 */

	/* Nets start (10) and end (89) records of the transmission */
	char		data_transmitter[9];
	char		transmission_number[8];
	char		data_recipient[9];
	int32_t		nets_date;		/* end record's Nets date */
	int			transactions;
	int64_t		total;			/* net sum of the amounts, minor units */

	/* tolerated irregularities, in kind order; see BankFileWarningKind */
	BankFileWarning warnings[BANKFILE_W_KINDS];
	int			nwarnings;
	/* per kind while parsing: first line and count (0: none) */
	int			warn_line[BANKFILE_W_KINDS];
	int			warn_count[BANKFILE_W_KINDS];
	int64_t		warn_value[BANKFILE_W_KINDS];	/* kind-specific figure */
} BankFile;

/*
 * Parse a whole file of len bytes (no NUL needed).  On success fills *file
 * (release it with bankfile_free) and returns true; on the first error
 * fills *err, leaves *file empty (nothing to free) and returns false.
 * Out of memory is reported as an error on the line being read.
 */
extern bool bgmax_parse(const char *data, size_t len, BankFile *file, BankFileError *err);
extern bool nets_ocr_parse(const char *data, size_t len, BankFile *file, BankFileError *err);

/* Release what a successful parse allocated; *file becomes empty. */
extern void bankfile_free(BankFile *file);

/*
 * Convert UTF-8 text to ISO-8859-1 bytes: out must have room for len
 * bytes; *outlen is set to the bytes written.  False, with the line number
 * in *err, for a character above U+00FF or malformed UTF-8.
 */
extern bool bankfile_utf8_to_latin1(const char *in, size_t len, char *out, size_t *outlen,
									BankFileError *err);

/* Format minor units with two decimals ("-1234.50") into buf (32 bytes). */
extern void bankfile_format_amount(int64_t units, char *buf);

#endif							/* SUBBILLING_CORE_BANKFILE_H */
