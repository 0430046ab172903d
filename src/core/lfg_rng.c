/*
 * lfg_rng.c
 *	  xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64.
 */
#include <stddef.h>
#include <math.h>

#include "lfg_rng.h"

/* One step of splitmix64, used to expand the seed */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Seed the generator; every seed, including 0, gives a valid state */
void
lfg_rng_seed(LfgRng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
	rng->spare = 0.0;
	rng->has_spare = 0;
}

/* Next 64 random bits */
uint64_t
lfg_rng_next(LfgRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform double in [0, 1) with 53 random bits */
double
lfg_rng_uniform(LfgRng *rng)
{
	return (double) (lfg_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), without modulo bias (Lemire's method) */
uint64_t
lfg_rng_below(LfgRng *rng, uint64_t n)
{
	uint64_t	threshold;

	if (n <= 1)
		return 0;
	threshold = (0 - n) % n;
	for (;;)
	{
		unsigned __int128 m = (unsigned __int128) lfg_rng_next(rng) * n;

		if ((uint64_t) m >= threshold)
			return (uint64_t) (m >> 64);
	}
}

/* Standard normal deviate by Marsaglia's polar method (both deviates used) */
double
lfg_rng_normal(LfgRng *rng)
{
	double		u,
				v,
				s,
				f;

	if (rng->has_spare)
	{
		rng->has_spare = 0;
		return rng->spare;
	}
	do
	{
		u = 2.0 * lfg_rng_uniform(rng) - 1.0;
		v = 2.0 * lfg_rng_uniform(rng) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	f = sqrt(-2.0 * log(s) / s);
	rng->spare = v * f;
	rng->has_spare = 1;
	return u * f;
}

/* Fisher-Yates shuffle of an index array */
void
lfg_rng_shuffle_u32(LfgRng *rng, uint32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--)
	{
		size_t		j = (size_t) lfg_rng_below(rng, i);
		uint32_t	t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}
