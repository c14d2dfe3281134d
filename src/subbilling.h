/*-------------------------------------------------------------------------
 *
 * subbilling.h
 *	  Declarations shared by the fmgr wrappers of the subbilling extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SUBBILLING_H
#define SUBBILLING_H

#include "miscadmin.h"

/* lifecycle.c */
extern void lifecycle_define_gucs(void);

#endif							/* SUBBILLING_H */
