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
			double *w)
{
	double		sum = 0.0;
	int64_t		total = 0;

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

/* Generate the ratings; see the file header */
LfgStatus
lfg_synth_generate(int32_t nu, int32_t ni, int64_t n_ratings, uint64_t seed,
				   const LfgAllocator *a, LfgSynthData *out, LfgError *err)
{
	const int	k = LFG_SYNTH_RANK;
	double		s = pow(0.36 / k, 0.25);
	int32_t		cap = ni / 2 > 0 ? ni / 2 : 1;
	LfgRng		rng;
	int32_t    *count,
			   *seen;
	double	   *cdf,
			   *w,
			   *bu,
			   *bi,
			   *P,
			   *Q;
	size_t		pos = 0;

	memset(out, 0, sizeof(*out));
	if (nu < 1 || nu > LFG_SYNTH_MAX_USERS || ni < 1 || ni > LFG_SYNTH_MAX_ITEMS)
		return lfg_error(err, LFG_EPARAM, "Pass between 1 and 10000000 users and 1 and 1000000 items.",
						 "synthetic data size out of range");
	if (n_ratings < nu || n_ratings > (int64_t) nu * cap)
		return lfg_error(err, LFG_EPARAM,
						 "Every user rates at least one and at most half of the items.",
						 "n_ratings must be between %d and %lld for %d users and %d items",
						 nu, (long long) nu * cap, nu, ni);
	if ((uint64_t) n_ratings > UINT32_MAX)
		return lfg_error(err, LFG_ELIMIT, NULL, "too many synthetic ratings");

	count = lfg_alloc_array(a, (size_t) nu, sizeof(int32_t));
	seen = lfg_alloc_array(a, (size_t) ni, sizeof(int32_t));
	cdf = lfg_alloc_array(a, (size_t) ni, sizeof(double));
	w = lfg_alloc_array(a, (size_t) nu, sizeof(double));
	bu = lfg_alloc_array(a, (size_t) nu, sizeof(double));
	bi = lfg_alloc_array(a, (size_t) ni, sizeof(double));
	P = lfg_alloc_array(a, (size_t) nu * k, sizeof(double));
	Q = lfg_alloc_array(a, (size_t) ni * k, sizeof(double));
	out->user = lfg_alloc_array(a, (size_t) n_ratings, sizeof(int32_t));
	out->item = lfg_alloc_array(a, (size_t) n_ratings, sizeof(int32_t));
	out->rating = lfg_alloc_array(a, (size_t) n_ratings, sizeof(float));
	if (!count || !seen || !cdf || !w || !bu || !bi || !P || !Q ||
		!out->user || !out->item || !out->rating)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for synthetic data");

	lfg_rng_seed(&rng, seed);
	for (int32_t u = 0; u < nu; u++)
	{
		bu[u] = 0.35 * lfg_rng_normal(&rng);
		for (int f = 0; f < k; f++)
			P[(size_t) u * k + f] = s * lfg_rng_normal(&rng);
	}
	for (int32_t i = 0; i < ni; i++)
	{
		bi[i] = 0.45 * lfg_rng_normal(&rng);
		for (int f = 0; f < k; f++)
			Q[(size_t) i * k + f] = s * lfg_rng_normal(&rng);
		cdf[i] = (i > 0 ? cdf[i - 1] : 0.0) + pow(i + 10.0, -0.9);
		seen[i] = -1;
	}
	user_counts(&rng, nu, cap, n_ratings, count, w);

	for (int32_t u = 0; u < nu; u++)
	{
		for (int32_t c = 0; c < count[u]; c++)
		{
			int32_t		i;
			double		r;

			do
				i = draw_item(&rng, cdf, ni);
			while (seen[i] == u);
			seen[i] = u;
			r = 3.6 + bu[u] + bi[i] + 0.6 * lfg_rng_normal(&rng);
			for (int f = 0; f < k; f++)
				r += P[(size_t) u * k + f] * Q[(size_t) i * k + f];
			r = round(r);
			out->user[pos] = u;
			out->item[pos] = i;
			out->rating[pos] = (float) (r < 1.0 ? 1.0 : r > 5.0 ? 5.0 : r);
			pos++;
		}
	}
	out->n = pos;
	out->n_users = nu;
	out->n_items = ni;
	lfg_free(a, count);
	lfg_free(a, seen);
	lfg_free(a, cdf);
	lfg_free(a, w);
	lfg_free(a, bu);
	lfg_free(a, bi);
	lfg_free(a, P);
	lfg_free(a, Q);
	return LFG_OK;
}
