/*-------------------------------------------------------------------------
 *
 * reference.c
 *	  Payment references: Swedish OCR (Bankgirot), Norwegian KID, Danish
 *	  FI-kort (+71) payment ids and Finnish reference numbers.
 *
 * The check digit arithmetic is plain C in src/core/checkdigit.c.  The
 * *_reference functions raise 22023 on a bad base or method; the *_valid
 * functions answer false for any text that is not a valid reference.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "core/checkdigit.h"

PG_FUNCTION_INFO_V1(ocr_reference);
PG_FUNCTION_INFO_V1(ocr_valid);
PG_FUNCTION_INFO_V1(kid_reference);
PG_FUNCTION_INFO_V1(kid_valid);
PG_FUNCTION_INFO_V1(fik_reference);
PG_FUNCTION_INFO_V1(fi_reference);

static void
ReportBadBase(ReferenceStatus status, const char *kind, const char *base, size_t len,
			  size_t extra)
{
	switch (status)
	{
		case REFERENCE_OK:
			break;
		case REFERENCE_EMPTY:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s reference base: \"%s\"", kind, base),
					 errdetail("The base must have at least one digit.")));
			break;
		case REFERENCE_NOT_DIGITS:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s reference base: \"%s\"", kind, base),
					 errdetail("The base must consist of the digits 0-9 only.")));
			break;
		case REFERENCE_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s reference base: \"%s\"", kind, base),
					 errdetail("A reference has at most %d characters; this base of %zu digits would give %zu.",
							   REFERENCE_MAX_LEN, len, len + extra)));
			break;
	}
}

static KidMethod
ParseKidMethod(text *method)
{
	char	   *m = text_to_cstring(method);

	if (pg_strcasecmp(m, "mod10") == 0)
		return KID_MOD10;
	if (pg_strcasecmp(m, "mod11") == 0)
		return KID_MOD11;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown KID method \"%s\"", m),
			 errhint("The method is \"mod10\" (Luhn) or \"mod11\".")));
	return KID_MOD10;			/* keep compiler quiet */
}

/*
 * ocr_reference(base, length_digit): base [+ length digit] + Luhn check digit
 */
Datum
ocr_reference(PG_FUNCTION_ARGS)
{
	text	   *base = PG_GETARG_TEXT_PP(0);
	bool		length_digit = PG_GETARG_BOOL(1);
	char		out[REFERENCE_MAX_LEN + 1];
	size_t		len = VARSIZE_ANY_EXHDR(base);
	ReferenceStatus status = ocr_build(VARDATA_ANY(base), len, length_digit, out);

	if (status != REFERENCE_OK)
		ReportBadBase(status, "OCR", text_to_cstring(base), len, length_digit ? 2 : 1);
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * ocr_valid(reference, length_digit): 2-25 digits, Luhn check digit valid
 * (and, if length_digit, the length digit too)
 */
Datum
ocr_valid(PG_FUNCTION_ARGS)
{
	text	   *ref = PG_GETARG_TEXT_PP(0);
	bool		length_digit = PG_GETARG_BOOL(1);

	PG_RETURN_BOOL(ocr_is_valid(VARDATA_ANY(ref), VARSIZE_ANY_EXHDR(ref), length_digit));
}

/*
 * kid_reference(base, method): base + MOD10 (Luhn) or MOD11 check character
 */
Datum
kid_reference(PG_FUNCTION_ARGS)
{
	text	   *base = PG_GETARG_TEXT_PP(0);
	KidMethod	method = ParseKidMethod(PG_GETARG_TEXT_PP(1));
	char		out[REFERENCE_MAX_LEN + 1];
	size_t		len = VARSIZE_ANY_EXHDR(base);
	ReferenceStatus status = kid_build(VARDATA_ANY(base), len, method, out);

	if (status != REFERENCE_OK)
		ReportBadBase(status, "KID", text_to_cstring(base), len, 1);
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * kid_valid(reference, method): 2-25 characters, digits, valid check character
 */
Datum
kid_valid(PG_FUNCTION_ARGS)
{
	text	   *ref = PG_GETARG_TEXT_PP(0);
	KidMethod	method = ParseKidMethod(PG_GETARG_TEXT_PP(1));

	PG_RETURN_BOOL(kid_is_valid(VARDATA_ANY(ref), VARSIZE_ANY_EXHDR(ref), method));
}

/*
 * fik_reference(base): Danish FI-kort (+71) payment id, base zero-padded to
 * 14 digits and its Luhn check digit
 */
Datum
fik_reference(PG_FUNCTION_ARGS)
{
	text	   *base = PG_GETARG_TEXT_PP(0);
	char		out[REFERENCE_MAX_LEN + 1];

	if (!fik_reference_build(VARDATA_ANY(base), VARSIZE_ANY_EXHDR(base), out))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid FIK payment id base \"%s\"", text_to_cstring(base)),
				 errdetail("A FI-kort (+71) payment id has 14 digits before its check digit.")));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * fi_reference(base): Finnish reference number, base (3 to 19 digits) and
 * its 7-3-1 check digit
 */
Datum
fi_reference(PG_FUNCTION_ARGS)
{
	text	   *base = PG_GETARG_TEXT_PP(0);
	char		out[REFERENCE_MAX_LEN + 1];

	if (!fi_reference_build(VARDATA_ANY(base), VARSIZE_ANY_EXHDR(base), out))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Finnish reference base \"%s\"", text_to_cstring(base)),
				 errdetail("A Finnish reference has 3 to 19 digits before its check digit.")));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
