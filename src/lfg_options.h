/*
 * lfg_options.h
 *	  Options of lfg_fit.
 */
#ifndef LFG_OPTIONS_H
#define LFG_OPTIONS_H

#include "utils/jsonb.h"

#include "core/lfg_mf.h"
#include "core/lfg_net.h"

typedef struct LfgFitOptions
{
	int			kind;			/* LFG_KIND_SVD, _BIASSVD, _LFG or _EASE */
	LfgMfOptions mf;			/* kinds svd and biassvd */
	LfgNetOptions net;			/* kind lfg */
	double		ease_lambda;	/* kind ease: the L2 weight lambda */
	bool		ease_verbose;
	char	   *warm_model;		/* "warm_start": start from this model (or NULL) */
	int32		warm_version;	/* ... at this version (0: its active version) */
} LfgFitOptions;

extern void LfgParseOptions(Jsonb *jb, int default_kind, LfgFitOptions *opts);
extern char *LfgOptionsJson(const LfgFitOptions *o);

#endif							/* LFG_OPTIONS_H */
