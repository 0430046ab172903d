/*
 * lfg_foldin.c
 *	  The learned fold-in of an LFG model's new users.
 *
 * A new user with n ratings is served the user vector x = (p_u, b_u) that
 * minimises the fold-in objective of lfg_serve.c regularised toward the
 * prior w g + c m, g the generator's output and m the mean generated vector
 * of the training users, with weight reg. Which prior and reg serve best
 * depends on the model and on n: a generator that overfits its training
 * users is worth less than plain fold-in (w 0), a good one is worth most
 * when n is small; and where the item side was trained with the generator
 * (preset paper) b_i and Q expect a typical user near m, not zero, so the
 * fold-in toward m beats the one toward zero. So training chooses them per
 * bucket of n on episodes of its own users: n of a user's training ratings
 * are revealed, and the user's validation ratings (never used for a
 * gradient step) are scored by every candidate. Plain fold-in toward zero
 * with reg 5 (what BiasSVD serves) is a candidate and wins ties, so on
 * these episodes the served choice is never worse than fold-in of the
 * model's own item side. The same episodes measure plain fold-in of a
 * BiasSVD trained on the same ratings (base_factors k0: by default lfg's
 * default BiasSVD, 100 factors; with k0 = k the one the model was
 * pretrained from), which an item side trained for known users can fall
 * behind (the NOTICE of lfg_recommend.c), and which predicts a bucket's
 * ratings itself where it is better (below).
 *
 * That BiasSVD's fold-in is also a prior, b (weight v): its vector x0 lives
 * in another space (its own Q0), so it is mapped into the model's by the
 * affine x = T x0 + t that best fits the model's predictions to the
 * BiasSVD's over the items, weighted by their training ratings (a (k + 1)
 * x (k0 + 1) least-squares fit at training time, lfg_foldin_base_build).
 * Scores stay those of the model's item side; the price is storing mu0,
 * b_i0 and Q0 (section FBAS), done only when some bucket chooses v > 0.
 *
 * The map loses a little (ml-1m's paper model, held users' episodes:
 * 0.001 to 0.0015 at n up to 7). So where that BiasSVD's own plain fold-in
 * is strictly better than the chosen candidate, the bucket's predicted
 * ratings come from it, x0 scored by mu0, b_i0 and Q0 (the base side,
 * LFG_FOLDIN_SIDE_BASE; lfg_rating_vector): on the episodes no bucket's
 * predictions are then worse than either plain fold-in. The chosen
 * candidate still gives the user's vector in the model's space, which
 * orders its lists: BiasSVD's fold-in ranks worse than the model's (ml-100k
 * paper, n = 5: NDCG@10 0.162 against 0.178). The two models' errors
 * differ, so the mean of their predictions can beat both: every candidate
 * is also scored blended with the BiasSVD (half each, LFG_FOLDIN_SIDE_BLEND),
 * chosen where strictly better than either side alone (ml-100k paper, the
 * served model and fold-in BiasSVD averaged on held-out users at n = 10:
 * 0.9377 against 0.9398 and 0.9391).
 *
 * Whose episodes. A training user's revealed ratings did train the item
 * side and the generator (as the stored user); the scored ones did not.
 * Such episodes are easier than a new user, and not for every candidate
 * alike: the generator has trained on these users, so the priors that weigh
 * it gain more on them than on new users (doc/serving.md, "Measured": on
 * ml-1m the paper preset's choice for n = 8 to 15 beat BiasSVD's fold-in on
 * its episodes and lost to it on held-out users). So with held users (the
 * option foldin_users, lfg_net.c: 0.05 in the paper preset, 0 in new_user)
 * the episodes are theirs only: half of each one's ratings were held out of
 * training, and an episode reveals n of those and scores the others, a few
 * rounds each. The generator never learned those ratings as this user's,
 * so it meets them as a new user's. Without (preset new_user, or too few
 * users to draw), the episodes are the training users' as above.
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_foldin.h"
#include "lfg_rng.h"
#include "lfg_serve.h"

static const double w_grid[] = {0.0, 0.5, 1.0, 0.0, 0.5, 0.0, 0.5, 0.0};
static const double c_grid[] = {0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.5};
static const double v_grid[] = {0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5};
static const double reg_grid[] = {5.0, 0.5, 1.0, 2.0, 10.0, 20.0, 50.0, INFINITY};

_Static_assert(LFG_FOLDIN_CANDIDATES == 64, "8 priors times 8 weights");
#define CAND_GENERATOR (2 * 8 + 7)
#define CAND_REFINE (2 * 8 + 0)
#define CAND_MEAN (3 * 8 + 7)
/* the index in sse of candidate c blended with BiasSVD's fold-in (lfg_foldin_choose) */
#define BLEND(c) (LFG_FOLDIN_CANDIDATES + 1 + (c))

/* See lfg_foldin.h: candidate 0 is plain fold-in (w 0, c 0, v 0, reg 5) */
void
lfg_foldin_candidate(int cand, double *w, double *c, double *v, double *reg)
{
	*w = w_grid[cand / 8];
	*c = c_grid[cand / 8];
	*v = v_grid[cand / 8];
	*reg = reg_grid[cand % 8];
}

/* See lfg_foldin.h */
int
lfg_foldin_bucket(int32_t n)
{
	int			b = 0;

	while (n > 0 && b < LFG_FOLDIN_BUCKETS - 1)
	{
		b++;
		n >>= 1;
	}
	return b;
}

/* See lfg_foldin.h */
int32_t
lfg_foldin_bucket_min(int b)
{
	return b == 0 ? 0 : (int32_t) 1 << (b - 1);
}

/* A stored RMSE: NaN or finite and not negative */
static bool
rmse_valid(float r)
{
	return isnan(r) || (isfinite(r) && r >= 0.0f);
}

/* See lfg_foldin.h */
bool
lfg_foldin_table_valid(const LfgFoldinTable *t, int32_t k, bool has_base)
{
	if (t->n_buckets != LFG_FOLDIN_BUCKETS || t->k1 != (uint32_t) k + 1)
		return false;
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
	{
		const LfgFoldinEntry *e = &t->e[b];

		if (!(e->prior >= 0.0f && e->prior <= 1.0f) ||
			!(e->base >= 0.0f && e->base <= 1.0f - e->prior) || (e->base > 0.0f && !has_base) ||
			!(e->center >= 0.0f && e->center <= 1.0f - e->prior - e->base) ||
			!((e->reg >= 1e-3f && e->reg <= 1e6f) || (isinf(e->reg) && e->reg > 0.0f)) ||
			!rmse_valid(e->rmse) || !rmse_valid(e->rmse_foldin) ||
			!rmse_valid(e->rmse_generator) || !rmse_valid(e->rmse_refine) ||
			!rmse_valid(e->rmse_mean) || !rmse_valid(e->rmse_biassvd) ||
			e->side > LFG_FOLDIN_SIDE_BLEND || (e->side != LFG_FOLDIN_SIDE_MODEL && !has_base))
			return false;
	}
	/* like the generator's output: factors within 1, a bias within the score bound */
	for (int32_t j = 0; j <= k; j++)
		if (!(fabsf(t->mean[j]) <= (j < k ? 1.0f : 1e6f)))
			return false;
	return true;
}

/* See lfg_foldin.h */
bool
lfg_foldin_uses_base(const LfgFoldinTable *t)
{
	for (int b = 0; t != NULL && b < LFG_FOLDIN_BUCKETS; b++)
		if (t->e[b].base > 0.0f || t->e[b].side != LFG_FOLDIN_SIDE_MODEL)
			return true;
	return false;
}

/* See lfg_foldin.h */
const float *
lfg_foldin_base_T(const LfgFoldinBase *b)
{
	return b->data;
}

/* See lfg_foldin.h */
const float *
lfg_foldin_base_t(const LfgFoldinBase *b)
{
	return b->data + ((size_t) b->k + 1) * ((size_t) b->k0 + 1);
}

/* See lfg_foldin.h */
void
lfg_foldin_base_view(const LfgFoldinBase *b, const LfgMfParams *mf, LfgMfParams *view)
{
	size_t		d = (size_t) b->k + 1;

	memset(view, 0, sizeof(*view));
	view->kind = LFG_KIND_BIASSVD;
	view->n_items = (int32_t) b->n_items;
	view->k = (int32_t) b->k0;
	view->mu = b->mu;
	view->bi = (float *) b->data + d * ((size_t) b->k0 + 1) + d;
	view->Q = view->bi + b->n_items;
	/* fold_in (lfg_serve.c) reads only whether there is a b_u: biased */
	view->bu = view->bi;
	view->rating_min = mf->rating_min;
	view->rating_max = mf->rating_max;
}

/* See lfg_foldin.h */
bool
lfg_foldin_base_valid(const LfgFoldinBase *b, int32_t n_items, int32_t k)
{
	uint64_t	n;

	if (b->n_items != (uint32_t) n_items || b->k != (uint32_t) k ||
		b->k0 < LFG_MIN_FACTORS || b->k0 > LFG_MAX_FACTORS || !(fabsf(b->mu) <= 1e6f))
		return false;
	n = (LFG_FOLDIN_BASE_SIZE(n_items, k, b->k0) - sizeof(LfgFoldinBase)) / 4;
	/*
	 * finite and bounded; a new user's vector that still overflows is
	 * refused when served (check_finite of lfg_serve.c)
	 */
	for (uint64_t j = 0; j < n; j++)
		if (!(fabsf(b->data[j]) <= 1e6f))
			return false;
	return true;
}

/* See lfg_foldin.h */
void
lfg_foldin_base_map(const LfgFoldinBase *base, const float *x0, float *b)
{
	int32_t		d = (int32_t) base->k + 1,
				d0 = (int32_t) base->k0 + 1;

	memcpy(b, lfg_foldin_base_t(base), (size_t) d * sizeof(float));
	lfg_gemv(0, d, d0, 1.0f, lfg_foldin_base_T(base), d0, x0, 1.0f, b);
}

/* Solve G X = C in place (G d x d symmetric positive definite, C d x m, doubles) */
static bool
solve_spd(int32_t d, int32_t m, double *G, double *C)
{
	for (int32_t j = 0; j < d; j++)
	{
		double		s = G[(size_t) j * d + j];

		for (int32_t p = 0; p < j; p++)
			s -= G[(size_t) j * d + p] * G[(size_t) j * d + p];
		if (!(s > 0.0))
			return false;
		G[(size_t) j * d + j] = sqrt(s);
		for (int32_t i = j + 1; i < d; i++)
		{
			double		r = G[(size_t) i * d + j];

			for (int32_t p = 0; p < j; p++)
				r -= G[(size_t) i * d + p] * G[(size_t) j * d + p];
			G[(size_t) i * d + j] = r / G[(size_t) j * d + j];
		}
	}
	for (int32_t c = 0; c < m; c++)
	{
		for (int32_t i = 0; i < d; i++)
		{
			double		r = C[(size_t) i * m + c];

			for (int32_t p = 0; p < i; p++)
				r -= G[(size_t) i * d + p] * C[(size_t) p * m + c];
			C[(size_t) i * m + c] = r / G[(size_t) i * d + i];
		}
		for (int32_t i = d - 1; i >= 0; i--)
		{
			double		r = C[(size_t) i * m + c];

			for (int32_t p = i + 1; p < d; p++)
				r -= G[(size_t) p * d + i] * C[(size_t) p * m + c];
			C[(size_t) i * m + c] = r / G[(size_t) i * d + i];
		}
	}
	return true;
}

/*
 * See lfg_foldin.h. With q~_i = (q_i, 1), q0~_i = (q0_i, 1) and delta_i =
 * mu0 + b0_i - mu - b_i, x minimises sum_i n_i (q~_i . x - q0~_i . x0 -
 * delta_i)^2: G = sum n_i q~_i q~_i^T, T = G^-1 sum n_i q~_i q0~_i^T, t =
 * G^-1 sum n_i q~_i delta_i (a ridge of 1e-6 of G's mean diagonal keeps G
 * definite when few items have ratings).
 */
LfgStatus
lfg_foldin_base_build(const LfgMfParams *mf, const LfgMfParams *base,
					  const LfgFoldinLists *l, const LfgAllocator *a, LfgFoldinBase *out,
					  bool *ok_out, LfgError *err)
{
	int32_t		k = mf->k,
				d = k + 1,
				k0 = base->k,
				d0 = k0 + 1,
				ni = mf->n_items;
	size_t		dd = (size_t) d * d,
				dc = (size_t) d * (d0 + 1);
	double	   *G = lfg_alloc_array(a, dd, sizeof(double)),
			   *C = lfg_alloc_array(a, dc, sizeof(double)),
			   *cnt = lfg_alloc_array(a, (size_t) ni, sizeof(double)),
			   *qa = lfg_alloc_array(a, (size_t) d, sizeof(double)),
			   *qb = lfg_alloc_array(a, (size_t) d0 + 1, sizeof(double)),
				trace = 0.0;
	float	   *T = out->data,
			   *t = out->data + (size_t) d * d0;
	bool		ok;

	if (!G || !C || !cnt || !qa || !qb)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the base prior");
	memset(G, 0, dd * sizeof(double));
	memset(C, 0, dc * sizeof(double));
	memset(cnt, 0, (size_t) ni * sizeof(double));
	ok = true;

	for (int32_t u = 0; ok && u < l->n_users; u++)
		for (int32_t e = l->tr_ptr[u]; e < l->tr_ptr[u + 1]; e++)
			cnt[l->tr_item[e]] += 1.0;
	for (int32_t i = 0; ok && i < ni; i++)
	{
		if (cnt[i] == 0.0)
			continue;
		for (int32_t f = 0; f < k; f++)
			qa[f] = mf->Q[(size_t) i * k + f];
		for (int32_t f = 0; f < k0; f++)
			qb[f] = base->Q[(size_t) i * k0 + f];
		qa[k] = qb[k0] = 1.0;
		qb[d0] = (double) base->mu + base->bi[i] - mf->mu - mf->bi[i];
		for (int32_t r = 0; r < d; r++)
		{
			double		wr = cnt[i] * qa[r];

			for (int32_t c = 0; c <= r; c++)
				G[(size_t) r * d + c] += wr * qa[c];
			for (int32_t c = 0; c <= d0; c++)
				C[(size_t) r * (d0 + 1) + c] += wr * qb[c];
		}
	}
	for (int32_t r = 0; ok && r < d; r++)
	{
		trace += G[(size_t) r * d + r];
		for (int32_t c = r + 1; c < d; c++)
			G[(size_t) r * d + c] = G[(size_t) c * d + r];
	}
	for (int32_t r = 0; ok && r < d; r++)
		G[(size_t) r * d + r] += 1e-6 * trace / d + 1e-12;
	ok = ok && solve_spd(d, d0 + 1, G, C);
	for (int32_t r = 0; ok && r < d; r++)
	{
		for (int32_t c = 0; c < d0; c++)
			T[(size_t) r * d0 + c] = (float) C[(size_t) r * (d0 + 1) + c];
		t[r] = (float) C[(size_t) r * (d0 + 1) + d0];
	}
	if (ok)
	{
		out->n_items = (uint32_t) ni;
		out->k = (uint32_t) k;
		out->mu = base->mu;
		out->k0 = (uint32_t) k0;
		memcpy(out->data + (size_t) d * d0 + d, base->bi, (size_t) ni * sizeof(float));
		memcpy(out->data + (size_t) d * d0 + d + ni, base->Q, (size_t) ni * k0 * sizeof(float));
	}
	lfg_free(a, G);
	lfg_free(a, C);
	lfg_free(a, cnt);
	lfg_free(a, qa);
	lfg_free(a, qb);
	*ok_out = ok;
	return LFG_OK;
}

/* See lfg_foldin.h */
void
lfg_foldin_choose(const double *sse, uint64_t targets, uint32_t episodes, bool offer_side,
				  LfgFoldinEntry *e)
{
	int			best = 0,
				blend = 0;
	double		lowest,
				w,
				c,
				v,
				r;

	e->targets = (uint32_t) (targets > UINT32_MAX ? UINT32_MAX : targets);
	e->episodes = episodes;
	if (targets == 0)
	{
		e->rmse = e->rmse_foldin = e->rmse_generator = e->rmse_refine = e->rmse_mean =
			e->rmse_biassvd = NAN;
		return;
	}
#define RMSE(c) ((float) sqrt(sse[c] / (double) targets))
	e->rmse_foldin = RMSE(0);
	e->rmse_generator = RMSE(CAND_GENERATOR);
	e->rmse_refine = RMSE(CAND_REFINE);
	e->rmse_mean = RMSE(CAND_MEAN);
	e->rmse_biassvd = isnan(sse[LFG_FOLDIN_CANDIDATES]) ? NAN : RMSE(LFG_FOLDIN_CANDIDATES);
	if (targets < LFG_FOLDIN_MIN_TARGETS)
	{
		e->rmse = NAN;			/* too few to choose: the fallback stays */
		return;
	}
	for (int c = 1; c < LFG_FOLDIN_CANDIDATES; c++)
		if (sse[c] < sse[best])
			best = c;
	lfg_foldin_candidate(best, &w, &c, &v, &r);
	e->prior = (float) w;
	e->center = (float) c;
	e->base = (float) v;
	e->reg = (float) r;
	e->rmse = RMSE(best);
	e->side = LFG_FOLDIN_SIDE_MODEL;
	if (!offer_side)
		return;
	/* the base side: the ratings predicted by the BiasSVD's plain fold-in */
	if (sse[LFG_FOLDIN_CANDIDATES] < sse[best])
	{
		e->rmse = e->rmse_biassvd;
		e->side = LFG_FOLDIN_SIDE_BASE;
		lowest = sse[LFG_FOLDIN_CANDIDATES];
	}
	else
		lowest = sse[best];
	/* the blend side: a candidate's predictions and the BiasSVD's, averaged */
	for (int c = 1; c < LFG_FOLDIN_CANDIDATES; c++)
		if (sse[BLEND(c)] < sse[BLEND(blend)])
			blend = c;
	if (sse[BLEND(blend)] < lowest)
	{
		lfg_foldin_candidate(blend, &w, &c, &v, &r);
		e->prior = (float) w;
		e->center = (float) c;
		e->base = (float) v;
		e->reg = (float) r;
		e->rmse = RMSE(BLEND(blend));
		e->side = LFG_FOLDIN_SIDE_BLEND;
	}
#undef RMSE
}

/* Work arrays of the episodes, for users of up to cap training ratings */
typedef struct Episode
{
	int32_t		cap;
	int32_t    *perm;			/* cap */
	int32_t    *item;			/* cap: revealed */
	float	   *rating;
	int32_t		n_targets;
	int32_t    *t_item;			/* cap: scored */
	float	   *t_rating;
	float	   *A;				/* cap x d (d: the larger of k + 1 and k0 + 1) */
	float	   *y;				/* cap */
	float	   *Ag;				/* cap */
	float	   *Am;				/* cap: A times the mean user */
	float	   *Ab;				/* cap: A times the base prior */
	float	   *bp;				/* cap: the BiasSVD's predictions of the scored ratings */
	const float *mean;			/* k + 1 */
	float	   *b;				/* k + 1: the base prior */
	float	   *p;				/* k + 1: the candidate's prior */
	float	   *gram;			/* d x d: A A^T (n < d) or A^T A */
	float	   *M;				/* d x d */
	float	   *rhs;			/* max(cap, d) */
	float	   *Aty;			/* d */
	float	   *g;				/* d */
	float	   *x;				/* d */
	LfgNetScratch net;
} Episode;

/* k + 1, or k0 + 1 where base (or NULL) has more factors */
static int32_t
vector_dim(int32_t k, const LfgFoldinBase *base)
{
	return (base != NULL && (int32_t) base->k0 > k ? (int32_t) base->k0 : k) + 1;
}

/* The buffers of the episodes; base: the FBAS being chosen on, or NULL */
static LfgStatus
episode_alloc(const struct LfgModel *m, const LfgFoldinBase *base, int32_t cap,
			  const LfgAllocator *a, Episode *w, LfgError *err)
{
	/* the design and solve buffers also hold base_episode's, of k0 + 1 columns */
	size_t		d = (size_t) vector_dim(m->mf.k, base),
				c = (size_t) cap + 1;

	memset(w, 0, sizeof(*w));
	w->cap = cap;
	w->perm = lfg_alloc_array(a, c, sizeof(int32_t));
	w->item = lfg_alloc_array(a, c, sizeof(int32_t));
	w->rating = lfg_alloc_array(a, c, sizeof(float));
	w->t_item = lfg_alloc_array(a, c, sizeof(int32_t));
	w->t_rating = lfg_alloc_array(a, c, sizeof(float));
	w->A = lfg_alloc_array(a, c * d, sizeof(float));
	w->y = lfg_alloc_array(a, c, sizeof(float));
	w->Ag = lfg_alloc_array(a, c, sizeof(float));
	w->Am = lfg_alloc_array(a, c, sizeof(float));
	w->Ab = lfg_alloc_array(a, c, sizeof(float));
	w->bp = lfg_alloc_array(a, c, sizeof(float));
	w->b = lfg_alloc_array(a, d, sizeof(float));
	w->p = lfg_alloc_array(a, d, sizeof(float));
	w->gram = lfg_alloc_array(a, d * d, sizeof(float));
	w->M = lfg_alloc_array(a, d * d, sizeof(float));
	w->rhs = lfg_alloc_array(a, c + d, sizeof(float));
	w->Aty = lfg_alloc_array(a, d, sizeof(float));
	w->g = lfg_alloc_array(a, d, sizeof(float));
	w->x = lfg_alloc_array(a, d, sizeof(float));
	if (!w->perm || !w->item || !w->rating || !w->t_item || !w->t_rating || !w->A || !w->y || !w->Ag || !w->Am || !w->Ab || !w->bp ||
		!w->b || !w->p ||
		!w->gram || !w->M ||
		!w->rhs || !w->Aty || !w->g || !w->x)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the fold-in episodes");
	return lfg_net_scratch_alloc(&m->net, cap, a, &w->net, err);
}

/*
 * x of candidate (w, c, v, reg) for the episode whose design (A, y, n
 * rows), gram matrix, A g, A m, A b and A^T y are set; false when the
 * solve fails
 */
static bool
candidate_vector(const Episode *w, int32_t n, int32_t d, double wg, double wc, double wb,
				 double reg)
{
	for (int32_t j = 0; j < d; j++)
		w->p[j] = (float) wg * w->g[j] + (float) wc * w->mean[j] + (float) wb * w->b[j];
	if (n == 0 || isinf(reg))
	{
		memcpy(w->x, w->p, (size_t) d * sizeof(float));
		return true;
	}
	if (n < d)
	{
		/* dual: x = p + A^T (A A^T + reg I)^-1 (y - A p) */
		memcpy(w->M, w->gram, (size_t) n * n * sizeof(float));
		for (int32_t j = 0; j < n; j++)
		{
			w->M[(size_t) j * n + j] += (float) reg;
			w->rhs[j] = w->y[j] - (float) wg * w->Ag[j] - (float) wc * w->Am[j] -
				(float) wb * w->Ab[j];
		}
		if (lfg_posv(n, w->M, w->rhs) != 0)
			return false;
		memcpy(w->x, w->p, (size_t) d * sizeof(float));
		lfg_gemv(1, n, d, 1.0f, w->A, d, w->rhs, 1.0f, w->x);
		return true;
	}
	/* primal: (A^T A + reg I) x = A^T y + reg p */
	memcpy(w->M, w->gram, (size_t) d * d * sizeof(float));
	for (int32_t j = 0; j < d; j++)
	{
		w->M[(size_t) j * d + j] += (float) reg;
		w->rhs[j] = w->Aty[j] + (float) reg * w->p[j];
	}
	if (lfg_posv(d, w->M, w->rhs) != 0)
		return false;
	memcpy(w->x, w->rhs, (size_t) d * sizeof(float));
	return true;
}

/*
 * Plain fold-in (toward zero, reg 5) of the BiasSVD item side base from
 * the episode's revealed ratings: the squared error over the user's
 * validation ratings (INFINITY when the solve fails), and the base prior
 * (its vector mapped, lfg_foldin_base_map) into w->b. Overwrites the
 * design and solve buffers.
 */
static double
base_episode(const LfgFoldinBase *fb, const LfgMfParams *mf, int32_t n, const Episode *w)
{
	LfgMfParams view;
	const LfgMfParams *base = &view;
	int32_t		k,
				d,
				m;
	double		s = 0.0;

	lfg_foldin_base_view(fb, mf, &view);
	k = base->k;
	d = k + 1;
	m = n < d ? n : d;
	for (int32_t e = 0; e < n; e++)
	{
		memcpy(w->A + (size_t) e * d, base->Q + (size_t) w->item[e] * k, (size_t) k * sizeof(float));
		w->A[(size_t) e * d + k] = 1.0f;
		w->rhs[e] = w->rating[e] - base->mu - base->bi[w->item[e]];
	}
	memset(w->M, 0, (size_t) m * m * sizeof(float));
	for (int32_t j = 0; j < m; j++)
		w->M[(size_t) j * m + j] = (float) LFG_FOLDIN_BASE_REG;
	memset(w->x, 0, (size_t) d * sizeof(float));
	if (n > 0 && n < d)
	{
		lfg_syrk_n(n, d, w->A, w->M);
		if (lfg_posv(n, w->M, w->rhs) != 0)
			return INFINITY;
		lfg_gemv(1, n, d, 1.0f, w->A, d, w->rhs, 0.0f, w->x);
	}
	else if (n > 0)
	{
		lfg_syrk_t(d, n, w->A, w->M);
		lfg_gemv(1, n, d, 1.0f, w->A, d, w->rhs, 0.0f, w->Aty);
		if (lfg_posv(d, w->M, w->Aty) != 0)
			return INFINITY;
		memcpy(w->x, w->Aty, (size_t) d * sizeof(float));
	}
	lfg_foldin_base_map(fb, w->x, w->b);
	for (int32_t e = 0; e < w->n_targets; e++)
	{
		double		r;

		w->bp[e] = (float) lfg_score_one(base, w->x, w->t_item[e]);
		r = w->t_rating[e] - w->bp[e];
		s += r * r;
	}
	return s;
}

/*
 * One episode of user uid with n revealed ratings: adds every candidate's
 * squared error over the scored ratings to sse (the lists' header says
 * which are revealed and which scored)
 */
static void
run_episode(const struct LfgModel *m, const struct LfgUsers *u, const LfgFoldinLists *l,
			const LfgFoldinBase *base, bool offer_base, int32_t uid, int32_t n, LfgRng *rng,
			Episode *w, double *sse)
{
	const LfgMfParams *mf = &m->mf;
	bool		held = l->held != NULL && l->held[uid];
	const int32_t *pool_item = held ? l->va_item : l->tr_item;
	const float *pool_rating = held ? l->va_rating : l->tr_rating;
	int32_t		k = mf->k,
				d = k + 1,
				start = held ? l->va_ptr[uid] : l->tr_ptr[uid],
				N = (held ? l->va_ptr[uid + 1] : l->tr_ptr[uid + 1]) - start;
	LfgNetUser	user;
	double		bs = 0.0;
	bool		blend = false;

	for (int32_t e = 0; e < N; e++)
		w->perm[e] = e;
	for (int32_t e = 0; e < n; e++)
	{
		int32_t		j = e + (int32_t) lfg_rng_below(rng, (uint64_t) (N - e));
		int32_t		tmp = w->perm[e];

		w->perm[e] = w->perm[j];
		w->perm[j] = tmp;
		w->item[e] = pool_item[start + w->perm[e]];
		w->rating[e] = pool_rating[start + w->perm[e]];
	}
	/* scored: the rest of a held user's ratings, else the validation ones */
	w->n_targets = 0;
	if (held)
		for (int32_t e = n; e < N; e++)
		{
			w->t_item[w->n_targets] = pool_item[start + w->perm[e]];
			w->t_rating[w->n_targets++] = pool_rating[start + w->perm[e]];
		}
	else
		for (int32_t e = l->va_ptr[uid]; e < l->va_ptr[uid + 1]; e++)
		{
			w->t_item[w->n_targets] = l->va_item[e];
			w->t_rating[w->n_targets++] = l->va_rating[e];
		}
	user = (LfgNetUser) {n, w->item, w->rating,
		u->age ? u->age[uid] : NAN, u->gender ? u->gender[uid] : -1, u->job ? u->job[uid] : -1};
	lfg_net_generate(&m->net, mf, &user, &w->net, w->g, &w->g[k]);
	/* the base first: its fold-in uses the design buffers */
	if (base != NULL)
	{
		bs = base_episode(base, mf, n, w);
		sse[LFG_FOLDIN_CANDIDATES] += bs;
		/* the blends need the BiasSVD's predictions (w->bp) */
		blend = offer_base;
	}
	else
		memset(w->b, 0, (size_t) d * sizeof(float));
	/* the design of lfg_serve.c: rows (q_i, 1), y = r - mu - b_i */
	for (int32_t e = 0; e < n; e++)
	{
		memcpy(w->A + (size_t) e * d, mf->Q + (size_t) w->item[e] * k, (size_t) k * sizeof(float));
		w->A[(size_t) e * d + k] = 1.0f;
		w->y[e] = w->rating[e] - mf->mu - mf->bi[w->item[e]];
	}
	if (n > 0 && n < d)
	{
		memset(w->gram, 0, (size_t) n * n * sizeof(float));
		lfg_syrk_n(n, d, w->A, w->gram);
		lfg_gemv(0, n, d, 1.0f, w->A, d, w->g, 0.0f, w->Ag);
		lfg_gemv(0, n, d, 1.0f, w->A, d, w->mean, 0.0f, w->Am);
		lfg_gemv(0, n, d, 1.0f, w->A, d, w->b, 0.0f, w->Ab);
	}
	else if (n > 0)
	{
		memset(w->gram, 0, (size_t) d * d * sizeof(float));
		lfg_syrk_t(d, n, w->A, w->gram);
		lfg_gemv(1, n, d, 1.0f, w->A, d, w->y, 0.0f, w->Aty);
	}
	for (int c = 0; c < LFG_FOLDIN_CANDIDATES; c++)
	{
		double		wg,
					wc,
					wb,
					reg,
					s = 0.0,
					sb = 0.0;

		lfg_foldin_candidate(c, &wg, &wc, &wb, &reg);
		if ((wb != 0.0 && !offer_base) || !candidate_vector(w, n, d, wg, wc, wb, reg))
		{
			sse[c] = INFINITY;
			if (blend)
				sse[BLEND(c)] = INFINITY;
			continue;
		}
		for (int32_t e = 0; e < w->n_targets; e++)
		{
			double		p = lfg_score_one(mf, w->x, w->t_item[e]),
						r = w->t_rating[e] - p;

			s += r * r;
			if (blend)
			{
				r = w->t_rating[e] - 0.5 * (p + w->bp[e]);
				sb += r * r;
			}
		}
		sse[c] += s;
		/* a failed BiasSVD solve (INFINITY) leaves no prediction to blend */
		if (blend)
			sse[BLEND(c)] += isinf(bs) ? INFINITY : sb;
	}
}

/* See lfg_foldin.h */
double
lfg_foldin_baseline(const LfgFoldinEntry *e)
{
	return isnan(e->rmse_biassvd) ? e->rmse_foldin : fmin(e->rmse_foldin, e->rmse_biassvd);
}

/* See lfg_foldin.h and the file header */
LfgStatus
lfg_foldin_select(const struct LfgModel *m, const struct LfgUsers *u, const LfgFoldinLists *l,
				  const float *mean, const LfgFoldinBase *base, bool offer_base, uint64_t seed,
				  void (*check) (void *), void *ctx, const LfgAllocator *a,
				  LfgFoldinTable *out, LfgError *err)
{
	int32_t		nu = l->n_users,
				cap = 1;
	uint32_t   *order = lfg_alloc_array(a, (size_t) nu + 1, sizeof(uint32_t));
	Episode		w;
	LfgStatus	st;

	if (order == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the fold-in episodes");
	for (int32_t j = 0; j < nu; j++)
	{
		order[j] = (uint32_t) j;
		cap = l->tr_ptr[j + 1] - l->tr_ptr[j] > cap ? l->tr_ptr[j + 1] - l->tr_ptr[j] : cap;
		cap = l->va_ptr[j + 1] - l->va_ptr[j] > cap ? l->va_ptr[j + 1] - l->va_ptr[j] : cap;
	}
	if ((st = episode_alloc(m, base, cap, a, &w, err)) != LFG_OK)
		return st;
	memset(out, 0, sizeof(*out));
	out->n_buckets = LFG_FOLDIN_BUCKETS;
	out->k1 = (uint32_t) m->mf.k + 1;
	memcpy(out->mean, mean, ((size_t) m->mf.k + 1) * sizeof(float));
	w.mean = out->mean;
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
	{
		int32_t		lo = lfg_foldin_bucket_min(b),
					hi = b == LFG_FOLDIN_BUCKETS - 1 ? INT32_MAX : 2 * lo - (b > 0 ? 1 : 0);
		double		sse[LFG_FOLDIN_SSE] = {0};
		uint64_t	targets = 0;
		uint32_t	episodes = 0;
		LfgRng		rng;

		/* the fallback: the bucket below, or plain fold-in */
		out->e[b].prior = b > 0 ? out->e[b - 1].prior : 0.0f;
		out->e[b].center = b > 0 ? out->e[b - 1].center : 0.0f;
		out->e[b].base = b > 0 ? out->e[b - 1].base : 0.0f;
		out->e[b].reg = b > 0 ? out->e[b - 1].reg : (float) LFG_FOLDIN_BASE_REG;
		out->e[b].side = b > 0 ? out->e[b - 1].side : LFG_FOLDIN_SIDE_MODEL;
		lfg_rng_seed(&rng, seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (uint64_t) (b + 1)));
		lfg_rng_shuffle_u32(&rng, order, (size_t) nu);
		/* held users: a few rounds each (other n, other ratings revealed) */
		for (int round = 0; round < (l->held ? LFG_FOLDIN_HELD_ROUNDS : 1); round++)
			for (int32_t j = 0; j < nu && episodes < LFG_FOLDIN_MAX_USERS; j++)
			{
				int32_t		uid = (int32_t) order[j],
							N,
							top,
							n;

				if (l->held == NULL)
				{
					/* n of the training ratings, the validation ones scored */
					N = l->tr_ptr[uid + 1] - l->tr_ptr[uid];
					if (l->va_ptr[uid + 1] == l->va_ptr[uid] || N < lo)
						continue;
				}
				else
				{
					/* n of a held user's ratings, at least one left to score */
					if (!l->held[uid])
						continue;
					N = l->va_ptr[uid + 1] - l->va_ptr[uid] - 1;
					if (N < lo)
						continue;
				}
				top = N < hi ? N : hi;
				n = lo + (int32_t) lfg_rng_below(&rng, (uint64_t) (top - lo + 1));
				run_episode(m, u, l, base, offer_base && base != NULL, uid, n, &rng, &w, sse);
				targets += (uint64_t) w.n_targets;
				if (++episodes % 64 == 0 && check)
					check(ctx);
			}
		if (base == NULL)
			sse[LFG_FOLDIN_CANDIDATES] = NAN;
		if (!(offer_base && base != NULL))
			for (int c = 0; c < LFG_FOLDIN_CANDIDATES; c++)
				sse[BLEND(c)] = NAN;
		lfg_foldin_choose(sse, targets, episodes, offer_base && base != NULL, &out->e[b]);
		if (check)
			check(ctx);
	}
	return LFG_OK;
}

/* See lfg_foldin.h */
void
lfg_foldin_served(const struct LfgModel *m, int32_t n, double reg, bool refine,
				  double *w, double *c, double *v, double *reg_out)
{
	const LfgFoldinTable *t = m->net.foldin;

	*w = m->mf.kind == LFG_KIND_LFG ? 1.0 : 0.0;
	*c = 0.0;
	*v = 0.0;
	*reg_out = reg == LFG_FOLDIN_LEARNED ? LFG_FOLDIN_BASE_REG : reg;
	if (m->mf.kind != LFG_KIND_LFG)
		return;
	if (!refine)
		*reg_out = INFINITY;
	else if (reg == LFG_FOLDIN_LEARNED && t != NULL)
	{
		const LfgFoldinEntry *e = &t->e[lfg_foldin_bucket(n)];

		*w = e->prior;
		*c = e->center;
		*v = m->net.foldin_base != NULL ? e->base : 0.0;
		*reg_out = e->reg;
	}
}

/* See lfg_foldin.h */
int32_t
lfg_foldin_vector_dim(const struct LfgModel *m)
{
	return vector_dim(m->mf.k, m->mf.kind == LFG_KIND_LFG ? m->net.foldin_base : NULL);
}

/* See lfg_foldin.h */
uint32_t
lfg_foldin_side(const struct LfgModel *m, int32_t n, double reg, bool refine)
{
	if (m->mf.kind == LFG_KIND_LFG && refine && reg == LFG_FOLDIN_LEARNED &&
		m->net.foldin != NULL && m->net.foldin_base != NULL)
		return m->net.foldin->e[lfg_foldin_bucket(n)].side;
	return LFG_FOLDIN_SIDE_MODEL;
}

/* See lfg_foldin.h */
void
lfg_foldin_prior(const struct LfgModel *m, double w, double c, double v, const float *b,
				 float *g)
{
	const LfgFoldinTable *t = m->net.foldin;

	for (int32_t j = 0; j <= m->mf.k; j++)
		g[j] = (float) w * g[j] + (c != 0.0 && t != NULL ? (float) c * t->mean[j] : 0.0f) +
			(v != 0.0 ? (float) v * b[j] : 0.0f);
}
