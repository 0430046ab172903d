/*
 * lfg_rng.h
 *	  A seeded PRNG of our own (xoshiro256** seeded by splitmix64), so that
 *	  results depend only on the seed, not on the platform or PostgreSQL
 *	  version.
 */
#ifndef LFG_RNG_H
#define LFG_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct LfgRng
{
	uint64_t	s[4];
	double		spare;			/* second Box-Muller deviate */
	int			has_spare;
} LfgRng;

extern void lfg_rng_seed(LfgRng *rng, uint64_t seed);
extern uint64_t lfg_rng_next(LfgRng *rng);
extern double lfg_rng_uniform(LfgRng *rng);	/* [0, 1) */
extern uint64_t lfg_rng_below(LfgRng *rng, uint64_t n);	/* [0, n) */
extern double lfg_rng_normal(LfgRng *rng);	/* N(0, 1) */
extern void lfg_rng_shuffle_u32(LfgRng *rng, uint32_t *a, size_t n);

#endif							/* LFG_RNG_H */
