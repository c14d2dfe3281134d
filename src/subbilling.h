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

#endif							/* SUBBILLING_H */
