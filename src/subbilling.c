/*-------------------------------------------------------------------------
 *
 * subbilling.c
 *	  Module entry point of the subbilling extension.
 *
 * Everything but the background worker works without preloading the
 * library.  _PG_init defines the extension's settings whenever the library
 * is loaded, then reserves the "subbilling." prefix; only while
 * shared_preload_libraries is being processed does it also register the
 * background worker and its shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "webhook.h"
#include "worker.h"

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

	/*
	 * Settings are defined in every process that loads the library, whether
	 * or not it was preloaded.  Every subbilling.* setting must be defined
	 * above this line: after it, unknown names under the prefix are errors.
	 * All of them, subbilling.notify of the event outbox included, are
	 * defined in worker.c, but the webhook settings (webhook.c).
	 */
	subbilling_worker_define_gucs();
	subbilling_webhook_define_gucs();
	MarkGUCPrefixReserved("subbilling");

	/* The worker and its shared memory exist only when preloaded. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	subbilling_worker_register();
	subbilling_webhook_register();
}
