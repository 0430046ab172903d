/*
 * lfg_options.h
 *	  Options of lfg_fit.
 */
#ifndef LFG_OPTIONS_H
#define LFG_OPTIONS_H

#include "utils/jsonb.h"

#include "core/lfg_mf.h"

extern void LfgParseOptions(Jsonb *jb, LfgMfOptions *opts);
extern char *LfgOptionsJson(const LfgMfOptions *o);

#endif							/* LFG_OPTIONS_H */
