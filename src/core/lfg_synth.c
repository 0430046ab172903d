/*
 * lfg_synth.c
 *	  Synthetic ratings with known structure.
 *
 * r(u, i) = round(3.6 + b_u + b_i + p_u . q_i + noise), clipped to 1..5,
 * with b_u ~ N(0, 0.35), b_i ~ N(0, 0.45), rank-8 factors whose dot product
 * has a standard deviation of about 0.6, and noise ~ N(0, 0.6). Users rate
 * lognormally many items (at least one, at most half the catalogue); items
 * are drawn half by a Zipf-like popularity and half uniformly, without
 * repetition per user. The same arguments give the same ratings.
 */
#include <math.h>
#include <string.h>

#include "lfg_rng.h"
#include "lfg_synth.h"

/* Per-user counts that sum to exactly n_ratings */
static void
user_counts(LfgRng *rng, int32_t nu, int32_t cap, int64_t n_ratings, int32_t *count,
			double *w, LfgSynthCheckFn check, void *ctx)
{
	double		sum = 0.0;
	int64_t		total = 0;
	uint64_t	steps = 0;

	for (int32_t u = 0; u < nu; u++)
		sum += (w[u] = exp(0.8 * lfg_rng_normal(rng)));
	for (int32_t u = 0; u < nu; u++)
	{
		int64_t		c = (int64_t) floor((double) (n_ratings - nu) * w[u] / sum) + 1;

		count[u] = (int32_t) (c > cap ? cap : c);
		total += count[u];
	}
	while (total < n_ratings)
	{
		int32_t		u = (int32_t) lfg_rng_below(rng, (uint64_t) nu);

		if (check != NULL && (++steps & 0xFFFF) == 0)
			check(ctx);
		if (count[u] < cap)
		{
			count[u]++;
			total++;
		}
	}
}

/* Draw an item: half by popularity (cumulative weights cdf), half uniform */
static int32_t
draw_item(LfgRng *rng, const double *cdf, int32_t ni)
{
	double		x;
	int32_t		lo = 0,
				hi = ni - 1;

	if (lfg_rng_uniform(rng) < 0.5)
		return (int32_t) lfg_rng_below(rng, (uint64_t) ni);
	x = lfg_rng_uniform(rng) * cdf[ni - 1];
	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (cdf[mid] > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Bytes of a stream's state for n_users and n_items */
size_t
lfg_synth_state_bytes(int32_t nu, int32_t ni)
{
	const int	k = LFG_SYNTH_RANK;

	return (size_t) (nu > 0 ? nu : 0) * (sizeof(int32_t) + 2 * sizeof(double) + k * sizeof(double)) +
		(size_t) (ni > 0 ? ni : 0) * (sizeof(int32_t) + 2 * sizeof(double) + k * sizeof(double));
}

/* Check the sizes and draw the users' and items' effects; see the file header */
LfgStatus
lfg_synth_begin(int32_t nu, int32_t ni, int64_t n_ratings, uint64_t seed,
				const LfgAllocator *a, LfgSynthCheckFn check, void *check_ctx,
				LfgSynthStream *s, LfgError *err)
{
	const int	k = LFG_SYNTH_RANK;
	double		scale = pow(0.36 / k, 0.25);
	int32_t		cap = ni / 2 > 0 ? ni / 2 : 1;
	double	   *w;

	memset(s, 0, sizeof(*s));
	if (nu < 1 || nu > LFG_SYNTH_MAX_USERS || ni < 1 || ni > LFG_SYNTH_MAX_ITEMS)
		return lfg_error(err, LFG_EPARAM, "Pass between 1 and 10000000 users and 1 and 1000000 items.",
						 "synthetic data size out of range");
	if (n_ratings < nu || n_ratings > (int64_t) nu * cap)
		return lfg_error(err, LFG_EPARAM,
						 "Every user rates at least one and at most half of the items.",
						 "n_ratings must be between %d and %lld for %d users and %d items",
						 nu, (long long) nu * cap, nu, ni);
	if ((uint64_t) n_ratings > UINT32_MAX)
		return lfg_error(err, LFG_ELIMIT, "Generate at most 4294967295 ratings per call.",
						 "too many synthetic ratings");

	s->count = lfg_alloc_array(a, (size_t) nu, sizeof(int32_t));
	s->seen = lfg_alloc_array(a, (size_t) ni, sizeof(int32_t));
	s->cdf = lfg_alloc_array(a, (size_t) ni, sizeof(double));
	w = lfg_alloc_array(a, (size_t) nu, sizeof(double));
	s->bu = lfg_alloc_array(a, (size_t) nu, sizeof(double));
	s->bi = lfg_alloc_array(a, (size_t) ni, sizeof(double));
	s->P = lfg_alloc_array(a, (size_t) nu * k, sizeof(double));
	s->Q = lfg_alloc_array(a, (size_t) ni * k, sizeof(double));
	if (!s->count || !s->seen || !s->cdf || !w || !s->bu || !s->bi || !s->P || !s->Q)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for synthetic data");

	lfg_rng_seed(&s->rng, seed);
	for (int32_t u = 0; u < nu; u++)
	{
		if (check != NULL && (u & 0xFFFF) == 0)
			check(check_ctx);
		s->bu[u] = 0.35 * lfg_rng_normal(&s->rng);
		for (int f = 0; f < k; f++)
			s->P[(size_t) u * k + f] = scale * lfg_rng_normal(&s->rng);
	}
	for (int32_t i = 0; i < ni; i++)
	{
		if (check != NULL && (i & 0xFFFF) == 0)
			check(check_ctx);
		s->bi[i] = 0.45 * lfg_rng_normal(&s->rng);
		for (int f = 0; f < k; f++)
			s->Q[(size_t) i * k + f] = scale * lfg_rng_normal(&s->rng);
		s->cdf[i] = (i > 0 ? s->cdf[i - 1] : 0.0) + pow(i + 10.0, -0.9);
		s->seen[i] = -1;
	}
	user_counts(&s->rng, nu, cap, n_ratings, s->count, w, check, check_ctx);
	lfg_free(a, w);
	s->n_users = nu;
	s->n_items = ni;
	s->n_ratings = n_ratings;
	return LFG_OK;
}

/*
 * The next ratings, at most max of them, in order of user; returns how many
 * (0 at the end). The stream gives the same ratings whatever the block sizes.
 */
size_t
lfg_synth_next(LfgSynthStream *s, size_t max, int32_t *user, int32_t *item, float *rating)
{
	const int	k = LFG_SYNTH_RANK;
	size_t		pos = 0;

	while (pos < max && s->u < s->n_users)
	{
		int32_t		u = s->u,
					i;
		double		r;

		if (s->c >= s->count[u])
		{
			s->u++;
			s->c = 0;
			continue;
		}
		do
			i = draw_item(&s->rng, s->cdf, s->n_items);
		while (s->seen[i] == u);
		s->seen[i] = u;
		r = 3.6 + s->bu[u] + s->bi[i] + 0.6 * lfg_rng_normal(&s->rng);
		for (int f = 0; f < k; f++)
			r += s->P[(size_t) u * k + f] * s->Q[(size_t) i * k + f];
		r = round(r);
		user[pos] = u;
		item[pos] = i;
		rating[pos] = (float) (r < 1.0 ? 1.0 : r > 5.0 ? 5.0 : r);
		pos++;
		s->c++;
	}
	s->emitted += (int64_t) pos;
	return pos;
}

/* Free a stream's state */
void
lfg_synth_end(LfgSynthStream *s, const LfgAllocator *a)
{
	lfg_free(a, s->count);
	lfg_free(a, s->seen);
	lfg_free(a, s->cdf);
	lfg_free(a, s->bu);
	lfg_free(a, s->bi);
	lfg_free(a, s->P);
	lfg_free(a, s->Q);
	memset(s, 0, sizeof(*s));
}

/* Generate all the ratings at once (tests and benchmarks); see the file header */
LfgStatus
lfg_synth_generate(int32_t nu, int32_t ni, int64_t n_ratings, uint64_t seed,
				   const LfgAllocator *a, LfgSynthData *out, LfgError *err)
{
	LfgSynthStream s;
	LfgStatus	st;

	memset(out, 0, sizeof(*out));
	st = lfg_synth_begin(nu, ni, n_ratings, seed, a, NULL, NULL, &s, err);
	if (st != LFG_OK)
		return st;
	out->user = lfg_alloc_array(a, (size_t) n_ratings, sizeof(int32_t));
	out->item = lfg_alloc_array(a, (size_t) n_ratings, sizeof(int32_t));
	out->rating = lfg_alloc_array(a, (size_t) n_ratings, sizeof(float));
	if (!out->user || !out->item || !out->rating)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for synthetic data");
	out->n = lfg_synth_next(&s, (size_t) n_ratings, out->user, out->item, out->rating);
	out->n_users = nu;
	out->n_items = ni;
	lfg_synth_end(&s, a);
	return LFG_OK;
}
