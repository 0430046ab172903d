/*
 * lfg_synth.h
 *	  The project's own synthetic ratings: seeded, low rank, with user and
 *	  item effects, skewed item popularity and integer ratings 1..5.
 */
#ifndef LFG_SYNTH_H
#define LFG_SYNTH_H

#include "lfg_core.h"

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

extern LfgStatus lfg_synth_generate(int32_t n_users, int32_t n_items,
									int64_t n_ratings, uint64_t seed,
									const LfgAllocator *a, LfgSynthData *out,
									LfgError *err);

#endif							/* LFG_SYNTH_H */
