/*-------------------------------------------------------------------------
 *
 * vatnumber.c
 *	  VAT identification numbers: vat_number(number, country) gives the
 *	  canonical form or raises 22023; vat_number_valid(number, country)
 *	  answers true or false.  The rules are plain C in src/core/vatnumber.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#include "core/vatnumber.h"

PG_FUNCTION_INFO_V1(vat_number_canonical);
PG_FUNCTION_INFO_V1(vat_number_valid);

static VatStatus
Normalize(FunctionCallInfo fcinfo, char *out)
{
	text	   *number = PG_GETARG_TEXT_PP(0);
	char	   *country = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	return vat_normalize(VARDATA_ANY(number), VARSIZE_ANY_EXHDR(number), country, out);
}

/*
 * vat_number(number text, country text): the canonical form; a NULL number
 * gives NULL, a bad one raises 22023.
 */
Datum
vat_number_canonical(PG_FUNCTION_ARGS)
{
	char		out[VAT_NUMBER_MAX_LEN + 1];
	VatStatus	status;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	status = Normalize(fcinfo, out);
	if (status != VAT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid VAT number \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errdetail("%c%s.", pg_toupper((unsigned char) vat_status_text(status)[0]),
						   vat_status_text(status) + 1),
				 errhint("A VAT number is a country prefix (SE, NO, DK, FI, DE, ... EL for Greece) and the national number, e.g. SE556677889901, NO988077917MVA, DE136695976.")));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/* vat_number_valid(number text, country text): NULL for NULL, else true or false */
Datum
vat_number_valid(PG_FUNCTION_ARGS)
{
	char		out[VAT_NUMBER_MAX_LEN + 1];

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(Normalize(fcinfo, out) == VAT_OK);
}
