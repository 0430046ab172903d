/*
 * lfg_synth.h
 *	  The project's own synthetic ratings: seeded, low rank, with user and
 *	  item effects, skewed item popularity and integer ratings 1..5.
 */
#ifndef LFG_SYNTH_H
#define LFG_SYNTH_H

#include "lfg_core.h"
#include "lfg_rng.h"

#define LFG_SYNTH_RANK		8
#define LFG_SYNTH_MAX_USERS 10000000
#define LFG_SYNTH_MAX_ITEMS 1000000

typedef struct LfgSynthData
{
	size_t		n;
	int32_t		n_users;
	int32_t		n_items;
	int32_t    *user;			/* 0-based, ascending */
	int32_t    *item;			/* 0-based */
	float	   *rating;
} LfgSynthData;

/*
 * The same ratings as a stream, a block at a time: memory proportional to
 * the users and items (lfg_synth_state_bytes), not to the ratings.
 */
typedef struct LfgSynthStream
{
	int32_t		n_users;
	int32_t		n_items;
	int64_t		n_ratings;
	int64_t		emitted;
	int32_t		u;				/* the user being generated */
	int32_t		c;				/* ratings of u generated so far */
	LfgRng		rng;
	int32_t    *count;
	int32_t    *seen;
	double	   *cdf;
	double	   *bu;
	double	   *bi;
	double	   *P;
	double	   *Q;
} LfgSynthStream;

extern size_t lfg_synth_state_bytes(int32_t n_users, int32_t n_items);
/* called every 65536 steps of lfg_synth_begin's loops (may not return) */
typedef void (*LfgSynthCheckFn) (void *ctx);

extern LfgStatus lfg_synth_begin(int32_t n_users, int32_t n_items, int64_t n_ratings,
								 uint64_t seed, const LfgAllocator *a,
								 LfgSynthCheckFn check, void *check_ctx,
								 LfgSynthStream *s, LfgError *err);
extern size_t lfg_synth_next(LfgSynthStream *s, size_t max, int32_t *user,
							 int32_t *item, float *rating);
extern void lfg_synth_end(LfgSynthStream *s, const LfgAllocator *a);

extern LfgStatus lfg_synth_generate(int32_t n_users, int32_t n_items,
									int64_t n_ratings, uint64_t seed,
									const LfgAllocator *a, LfgSynthData *out,
									LfgError *err);

#endif							/* LFG_SYNTH_H */
