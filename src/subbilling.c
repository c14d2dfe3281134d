/*-------------------------------------------------------------------------
 *
 * subbilling.c
 *	  Module entry point of the subbilling extension.
 *
 * Everything but the background worker works without preloading the
 * library; _PG_init only registers what needs shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "subbilling.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load callback
 */
void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	lifecycle_define_gucs();
}
