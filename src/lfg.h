/*
 * lfg.h
 *	  Declarations shared by the PostgreSQL layer of lfg.
 */
#ifndef LFG_H
#define LFG_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"

#include "core/lfg_core.h"
#include "core/lfg_model.h"
#include "core/lfg_serve.h"

/* ages accepted in training and serving (float4 holds them) */
#define LFG_MAX_AGE 1e6

/*
 * Reopen the JSON object that s ends with, to append ", \"key\": ...}":
 * its closing brace is taken off
 */
static inline void
LfgJsonReopen(StringInfo s)
{
	Assert(s->len > 0 && s->data[s->len - 1] == '}');
	s->data[--s->len] = '\0';
}

/* lfg.c */
extern void LfgRaise(const LfgError *err) pg_attribute_noreturn();
extern LfgAllocator LfgPallocAllocator(MemoryContext cxt);
extern uint32_t LfgCrc32c(const void *data, size_t len);
extern void LfgCheckInterrupts(void *ctx);
extern bool LfgInterruptsPending(void *ctx);
extern struct Tuplestorestate *LfgBeginSRF(FunctionCallInfo fcinfo, const char *fname,
										   int natts, TupleDesc *tupdesc);

/* lfg.c: settings */
extern char *lfg_default_model;
extern double lfg_foldin_reg;
extern bool lfg_refine;
extern double LfgFoldinReg(void);
extern int	lfg_cache_size_limit;	/* MB */
extern int	lfg_train_memory_limit; /* MB */
extern int	lfg_unknown_demographics;	/* LFG_UNKNOWN_* */

#define LFG_UNKNOWN_IGNORE	0
#define LFG_UNKNOWN_WARNING 1
#define LFG_UNKNOWN_ERROR	2

/* lfg_recommend.c: the named-model jsonb form, also behind lfg_recommend_filtered */
extern PGDLLEXPORT Datum lfg_recommend_jsonb(PG_FUNCTION_ARGS);

/* lfg_store.c */
typedef struct LfgCachedModel
{
	char	   *name;
	int32		version;
	LfgModel	model;
	MemoryContext cxt;			/* the entry's memory, freed with it */
	LfgIdIndex	users;			/* user id -> dense index */
	LfgIdIndex	items;			/* item id -> dense index */
	/* serving buffers, sized once per entry (not per call) */
	LfgTopKWork topk;			/* n_items each; topk.scores NULL until first use */
	void	   *panels;			/* Q laid out for fast scoring, or NULL */
	LfgScorer	scorer;
	int32	   *top_items;		/* n_items: the answer of lfg_recommend_top_k */
	float	   *top_scores;
	float	   *x;				/* k + 1 */
	float	   *xo;				/* k + 1: the vector lists are ordered by (lfg_order_vector) */
	float	   *xr;				/* k0 + 1: on the base and blend sides, FBAS's x0 (LfgUserVector) */
	LfgMfParams xview;			/* there, the parameters that score xr */
	LfgRatingSource xsrc;		/* what predicted ratings come from (c->x, and xr) */
	LfgServeScratch scratch;
	MemoryContext scratch_cxt;	/* holds scratch; replaced when it must grow */
	bool		has_scratch;
	bool		shared;			/* model, indexes, panels and scorer are in shared memory */
} LfgCachedModel;

extern LfgCachedModel *LfgGetModel(text *name, int32 version);
extern int32 LfgWarm(const char *name);
extern void LfgCacheReset(void);
extern LfgServeScratch *LfgServeBuffers(LfgCachedModel *c, int32 n_ratings);
extern text *LfgDefaultModel(void);

/* lfg_recommend.c, for lfg_known.c */
extern void LfgUserInput(FunctionCallInfo fcinfo, const LfgCachedModel *c, int ratings_arg,
						 int demo_arg, LfgNetUser *out);
extern int32 LfgArgK(FunctionCallInfo fcinfo, int a);
extern void LfgFoldinNotice(const LfgCachedModel *c, int32 n);
extern const LfgRatingSource *LfgUserVector(LfgCachedModel *c, const LfgNetUser *in);
extern void LfgRescore(LfgCachedModel *c, const LfgRatingSource *src, int32 found);

/* lfg_preload.c */
extern void LfgPreloadInit(void);

#endif							/* LFG_H */
