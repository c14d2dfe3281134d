/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *	  Settings of the subscription lifecycle and the event outbox.
 *
 * The lifecycle itself is SQL (sql/parts/3NN_*.sql).  This file only
 * defines its setting, so that the name stays valid once the "subbilling"
 * GUC prefix is reserved:
 *
 *	subbilling.notify (bool, superuser-settable, default on): whether
 *	subbilling.emit_event() also sends pg_notify('subbilling', ...).  Off
 *	means the events table only, for a relay that reads the outbox and
 *	notifies on its own (Citus: NOTIFY does not work in multi-shard
 *	transactions nor reach the coordinator from a worker node).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "subbilling.h"

static bool subbilling_notify = true;

/*
 * Define the lifecycle's settings; called from _PG_init.
 */
void
lifecycle_define_gucs(void)
{
	DefineCustomBoolVariable("subbilling.notify",
							 gettext_noop("Sends pg_notify('subbilling', ...) for every event written."),
							 gettext_noop("Off writes events to subbilling.events only, for a relay "
										  "that reads the outbox and notifies by itself."),
							 &subbilling_notify,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}
