/*-------------------------------------------------------------------------
 *
 * bankfile.c
 *	  SQL access to the bank file parsers: parse_bgmax, parse_nets_ocr and
 *	  their file summaries.
 *
 * The parsing and every check are plain C in src/core/bankfile.c.  Here the
 * file text is turned into ISO-8859-1 bytes (the banks' character set: one
 * byte per character, so that fixed positions are character positions),
 * parsed, and the payments returned as rows; texts go back into the
 * database encoding.  A file that fails any check raises 22P02 with the
 * line number and the reason in the DETAIL; a character outside ISO-8859-1
 * is such a failure too.  See docs/bankfiles.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "bankfile.h"
#include "price.h"

PG_FUNCTION_INFO_V1(parse_bgmax);
PG_FUNCTION_INFO_V1(parse_nets_ocr);
PG_FUNCTION_INFO_V1(bgmax_summary);
PG_FUNCTION_INFO_V1(nets_ocr_summary);
PG_FUNCTION_INFO_V1(bgmax_warnings);
PG_FUNCTION_INFO_V1(nets_ocr_warnings);

#define BGMAX_COLUMNS 19
#define NETS_COLUMNS 19
#define BGMAX_SUMMARY_COLUMNS 8
#define NETS_SUMMARY_COLUMNS 8

static const char *
FormatName(BankFileFormat format)
{
	return format == BANKFILE_BGMAX ? "BgMax" : "Nets OCR giro";
}

static void
ReportBadFile(BankFileFormat format, const BankFileError *err)
{
	char	   *reason = pg_any_to_server(err->reason, (int) strlen(err->reason), PG_LATIN1);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid %s file", FormatName(format)),
			 errdetail("Line %d: %s", err->line, reason)));
}

/*
 * The file's characters as ISO-8859-1 bytes.  From a UTF-8 database the
 * conversion is done here, so that a character outside ISO-8859-1 is
 * reported with its line; LATIN1 and SQL_ASCII databases pass the bytes
 * through; other encodings convert through the server (22P05 if a
 * character has no ISO-8859-1 equivalent).
 */
static char *
FileBytes(text *file, BankFileFormat format, size_t *len)
{
	char	   *s = VARDATA_ANY(file);
	int			n = VARSIZE_ANY_EXHDR(file);
	int			enc = GetDatabaseEncoding();

	if (enc == PG_UTF8)
	{
		char	   *out = palloc((Size) n + 1);
		BankFileError err;

		if (!bankfile_utf8_to_latin1(s, (size_t) n, out, len, &err))
			ReportBadFile(format, &err);
		return out;
	}
	if (enc == PG_LATIN1 || enc == PG_SQL_ASCII)
	{
		*len = (size_t) n;
		return s;
	}
	s = pg_server_to_any(s, n, PG_LATIN1);
	*len = strlen(s);
	return s;
}

/* Parse a file; ereport(ERROR) if it is not valid.  Release with bankfile_free. */
static void
LoadFile(text *file, BankFileFormat format, BankFile *f)
{
	size_t		len;
	char	   *bytes = FileBytes(file, format, &len);
	BankFileError err;
	bool		ok;

	if (format == BANKFILE_BGMAX)
		ok = bgmax_parse(bytes, len, f, &err);
	else
		ok = nets_ocr_parse(bytes, len, f, &err);
	if (!ok)
		ReportBadFile(format, &err);
}

/* A NUL-terminated ISO-8859-1 string as text in the database encoding */
static Datum
LatinText(const char *s)
{
	return PointerGetDatum(cstring_to_text(pg_any_to_server(s, (int) strlen(s), PG_LATIN1)));
}

/* As LatinText, but NULL (*isnull) for an empty string */
static Datum
LatinTextOrNull(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : LatinText(s);
}

/* A packed YYYYMMDD date as a date Datum; NULL for 0 */
static Datum
PackedDate(int32 packed, bool *isnull)
{
	*isnull = (packed == 0);
	if (*isnull)
		return (Datum) 0;
	return DateADTGetDatum(date2j(packed / 10000, packed / 100 % 100, packed % 100) -
						   POSTGRES_EPOCH_JDATE);
}

/* A '\n'-separated list of f->text as one text; NULL if empty */
static Datum
ListText(const BankFile *f, size_t off, size_t len, bool *isnull)
{
	*isnull = (len == 0);
	if (*isnull)
		return (Datum) 0;
	return LatinText(pnstrdup(f->text + off, len));
}

/* A '\n'-separated list of f->text as text[]; NULL if empty */
static Datum
ListArray(const BankFile *f, size_t off, size_t len, bool *isnull)
{
	char	   *list;
	char	   *item;
	char	   *save = NULL;
	Datum	   *elems;
	int			n = 0;

	*isnull = (len == 0);
	if (*isnull)
		return (Datum) 0;
	list = pnstrdup(f->text + off, len);
	elems = palloc(sizeof(Datum) * (len + 1));
	for (item = strtok_r(list, "\n", &save); item != NULL; item = strtok_r(NULL, "\n", &save))
		elems[n++] = LatinText(item);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static void
BgMaxRow(const BankFile *f, const BankPayment *p, Datum *v, bool *isnull)
{
	memset(isnull, false, sizeof(bool) * BGMAX_COLUMNS);
	v[0] = Int32GetDatum(p->line);
	v[1] = PricePGetDatum(price_new(p->amount, p->currency));
	v[2] = LatinTextOrNull(p->reference, &isnull[2]);
	v[3] = PackedDate(p->received_on, &isnull[3]);
	v[4] = LatinText(p->bank_ref);
	v[5] = LatinTextOrNull(p->payer, &isnull[5]);
	v[6] = CStringGetTextDatum(p->kind == 20 ? "payment" : "deduction");
	v[7] = Int32GetDatum(p->reference_code);
	v[8] = Int32GetDatum(p->channel);
	v[9] = BoolGetDatum(p->image);
	v[10] = Int32GetDatum(p->deduction_code);
	isnull[10] = (p->deduction_code < 0);
	v[11] = LatinTextOrNull(p->bgc_serial, &isnull[11]);
	v[12] = LatinTextOrNull(p->receiver, &isnull[12]);
	v[13] = Int32GetDatum(p->deposit_serial);
	v[14] = LatinTextOrNull(p->payer_name, &isnull[14]);
	v[15] = LatinTextOrNull(p->payer_address, &isnull[15]);
	v[16] = LatinTextOrNull(p->payer_org_no, &isnull[16]);
	v[17] = ListText(f, p->info_off, p->info_len, &isnull[17]);
	v[18] = ListArray(f, p->extra_off, p->extra_len, &isnull[18]);
}

static void
NetsRow(const BankPayment *p, Datum *v, bool *isnull)
{
	memset(isnull, false, sizeof(bool) * NETS_COLUMNS);
	v[0] = Int32GetDatum(p->line);
	v[1] = PricePGetDatum(price_new(p->amount, p->currency));
	v[2] = LatinTextOrNull(p->reference, &isnull[2]);
	v[3] = PackedDate(p->received_on, &isnull[3]);
	v[4] = LatinText(p->bank_ref);
	v[5] = LatinTextOrNull(p->payer, &isnull[5]);
	v[6] = Int32GetDatum(p->kind);
	v[7] = Int32GetDatum(p->transaction_number);
	v[8] = PackedDate(p->bank_date, &isnull[8]);
	v[9] = LatinTextOrNull(p->form_number, &isnull[9]);
	v[10] = LatinTextOrNull(p->archive_reference, &isnull[10]);
	v[11] = LatinTextOrNull(p->message, &isnull[11]);
	v[12] = LatinText(p->agreement_id);
	v[13] = LatinText(p->assignment_number);
	v[14] = LatinText(p->assignment_account);
	v[15] = LatinText(p->centre_id);
	v[16] = Int32GetDatum(p->day_code);
	v[17] = Int32GetDatum(p->partial_settlement);
	v[18] = LatinText(p->settlement_serial);
}

/* The payments of a file as rows of the function's result */
static void
ReturnPayments(FunctionCallInfo fcinfo, BankFileFormat format)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BankFile	f;
	Datum		values[Max(BGMAX_COLUMNS, NETS_COLUMNS)];
	bool		isnull[Max(BGMAX_COLUMNS, NETS_COLUMNS)];

	InitMaterializedSRF(fcinfo, 0);
	LoadFile(PG_GETARG_TEXT_PP(0), format, &f);
	PG_TRY();
	{
		int			i;

		for (i = 0; i < f.npayments; i++)
		{
			if (format == BANKFILE_BGMAX)
				BgMaxRow(&f, &f.payments[i], values, isnull);
			else
				NetsRow(&f.payments[i], values, isnull);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
		}
	}
	PG_FINALLY();
	{
		bankfile_free(&f);
	}
	PG_END_TRY();
}

/*
 * parse_bgmax(file): the payments and deductions of a BgMax file
 */
Datum
parse_bgmax(PG_FUNCTION_ARGS)
{
	ReturnPayments(fcinfo, BANKFILE_BGMAX);
	return (Datum) 0;
}

/*
 * parse_nets_ocr(file): the transactions of a Nets OCR giro file
 */
Datum
parse_nets_ocr(PG_FUNCTION_ARGS)
{
	ReturnPayments(fcinfo, BANKFILE_NETS_OCR);
	return (Datum) 0;
}

static TupleDesc
ResultDesc(FunctionCallInfo fcinfo, int natts)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE || desc->natts != natts)
		elog(ERROR, "return type must be a row type with %d columns", natts);
	return BlessTupleDesc(desc);
}

/*
 * bgmax_summary(file): the start record and the counts of a BgMax file
 */
Datum
bgmax_summary(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = ResultDesc(fcinfo, BGMAX_SUMMARY_COLUMNS);
	BankFile	f;
	Datum		v[BGMAX_SUMMARY_COLUMNS];
	bool		isnull[BGMAX_SUMMARY_COLUMNS];
	Timestamp	created;
	int32		d;

	LoadFile(PG_GETARG_TEXT_PP(0), BANKFILE_BGMAX, &f);
	d = f.created_on;
	created = (Timestamp) (date2j(d / 10000, d / 100 % 100, d % 100) - POSTGRES_EPOCH_JDATE) *
		USECS_PER_DAY + f.created_time_us;
	memset(isnull, false, sizeof(isnull));
	v[0] = TimestampGetDatum(created);
	v[1] = BoolGetDatum(f.test);
	v[2] = Int32GetDatum(f.version);
	v[3] = Int32GetDatum(f.sections);
	v[4] = Int32GetDatum(f.payment_records);
	v[5] = Int32GetDatum(f.deduction_records);
	v[6] = Int32GetDatum(f.extra_reference_records);
	v[7] = Int32GetDatum(f.records);
	bankfile_free(&f);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, isnull)));
}

/*
 * nets_ocr_summary(file): the transmission records of a Nets OCR giro file
 */
Datum
nets_ocr_summary(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = ResultDesc(fcinfo, NETS_SUMMARY_COLUMNS);
	BankFile	f;
	Datum		v[NETS_SUMMARY_COLUMNS];
	bool		isnull[NETS_SUMMARY_COLUMNS];

	LoadFile(PG_GETARG_TEXT_PP(0), BANKFILE_NETS_OCR, &f);
	memset(isnull, false, sizeof(isnull));
	PG_TRY();
	{
		v[0] = LatinText(f.data_transmitter);
		v[1] = LatinText(f.transmission_number);
		v[2] = LatinText(f.data_recipient);
		v[3] = Int32GetDatum(f.sections);
		v[4] = Int32GetDatum(f.transactions);
		v[5] = Int32GetDatum(f.records);
		v[6] = PricePGetDatum(price_new(f.total, "NOK"));
		v[7] = PackedDate(f.nets_date, &isnull[7]);
	}
	PG_FINALLY();
	{
		bankfile_free(&f);
	}
	PG_END_TRY();
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, isnull)));
}

/* The tolerated irregularities of a file, as rows (line, lines, warning) */
static void
ReturnWarnings(FunctionCallInfo fcinfo, BankFileFormat format)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BankFile	f;

	InitMaterializedSRF(fcinfo, 0);
	LoadFile(PG_GETARG_TEXT_PP(0), format, &f);
	PG_TRY();
	{
		int			i;

		for (i = 0; i < f.nwarnings; i++)
		{
			Datum		v[3];
			bool		isnull[3] = {false, false, false};

			v[0] = Int32GetDatum(f.warnings[i].line);
			v[1] = Int32GetDatum(f.warnings[i].count);
			v[2] = CStringGetTextDatum(f.warnings[i].reason);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
		}
	}
	PG_FINALLY();
	{
		bankfile_free(&f);
	}
	PG_END_TRY();
}

/*
 * bgmax_warnings(file): what a valid BgMax file needed tolerated
 */
Datum
bgmax_warnings(PG_FUNCTION_ARGS)
{
	ReturnWarnings(fcinfo, BANKFILE_BGMAX);
	return (Datum) 0;
}

/*
 * nets_ocr_warnings(file): what a valid Nets OCR giro file needed tolerated
 */
Datum
nets_ocr_warnings(PG_FUNCTION_ARGS)
{
	ReturnWarnings(fcinfo, BANKFILE_NETS_OCR);
	return (Datum) 0;
}
