/*
 * lfg_known.c
 *	  Top k by the raw score over an item subset, cosine similarity of item
 *	  factors, and the exact per-rating decomposition of a fold-in score.
 *
 * Known users are ranked by the raw (unclipped) score in the arithmetic of
 * lfg_mf_predict (float dot product by lfg_dot, biases added in double),
 * so that the reported score, clipped, is lfg_predict's bit for bit. The
 * approximate scores of the cached model's scorer (int8 or half precision
 * panels, or one sgemv: lfg_serve.c) are within a proven bound of those
 * scores (below); the few items the bound cannot rule out are rescored
 * exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_known.h"
#include "lfg_serve.h"

/* a ranks above b: higher score, ties by smaller item */
static inline bool
better(const LfgScored *a, const LfgScored *b)
{
	return a->score > b->score || (a->score == b->score && a->item < b->item);
}

static int
compare_scored(const void *pa, const void *pb)
{
	const LfgScored *a = pa,
			   *b = pb;

	return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Restore the min-heap (worst at the root) of s[0..n) below position j */
static void
sift_worst(LfgScored *s, int32_t n, int32_t j)
{
	for (;;)
	{
		int32_t		l = 2 * j + 1,
					r = l + 1,
					m = j;
		LfgScored	t;

		if (l < n && better(&s[m], &s[l]))
			m = l;
		if (r < n && better(&s[m], &s[r]))
			m = r;
		if (m == j)
			return;
		t = s[j];
		s[j] = s[m];
		s[m] = t;
		j = m;
	}
}

/* See lfg_known.h: a bounded min-heap over the front, then a sort of k */
int32_t
lfg_select_top_k(LfgScored *s, int32_t n, int32_t k)
{
	if (k <= 0 || n <= 0)
		return 0;
	if (k < n)
	{
		for (int32_t j = k / 2 - 1; j >= 0; j--)
			sift_worst(s, k, j);
		for (int32_t j = k; j < n; j++)
			if (better(&s[j], &s[0]))
			{
				s[0] = s[j];
				sift_worst(s, k, 0);
			}
	}
	else
		k = n;
	qsort(s, (size_t) k, sizeof(LfgScored), compare_scored);
	return k;
}

/* See lfg_known.h: lfg_mf_predict's expression, term for term */
double
lfg_known_raw(const LfgMfParams *mf, const float *x, int32_t i)
{
	double		est;

	if (i < 0)
		return (double) mf->mu + (mf->bi != NULL ? x[mf->k] : 0.0f);
	est = lfg_dot(x, mf->Q + (size_t) i * mf->k, mf->k);
	if (mf->bi != NULL)
		est += (double) mf->mu + x[mf->k] + mf->bi[i];
	return est;
}

/* See lfg_known.h */
double
lfg_known_clip(const LfgMfParams *mf, double raw)
{
	if (raw < mf->rating_min)
		raw = mf->rating_min;
	if (raw > mf->rating_max)
		raw = mf->rating_max;
	return raw;
}

/*
 * The items a filter allows as a mask of n bytes (1: allowed); self (>= 0)
 * is never allowed. NULL when out of memory.
 */
static uint8_t *
allowed_mask(const LfgItemFilter *f, int32_t n, int32_t self, const LfgAllocator *a)
{
	uint8_t    *mask = lfg_alloc(a, (size_t) n + 1);

	if (mask == NULL)
		return NULL;
	memset(mask, f->include == NULL ? 1 : 0, (size_t) n);
	for (int32_t j = 0; f->include != NULL && j < f->n_include; j++)
		mask[f->include[j]] = 1;
	for (int32_t j = 0; j < f->n_exclude; j++)
		mask[f->exclude[j]] = 0;
	if (self >= 0)
		mask[self] = 0;
	return mask;
}

/* x finite: a NaN would make every comparison false */
static bool
finite_vector(const float *x, int32_t d)
{
	for (int32_t f = 0; f < d; f++)
		if (!isfinite(x[f]))
			return false;
	return true;
}

/*
 * A bound on |clip(approx_i) - clip(raw_i)| for every item: the scorer's
 * proven bound on |lfg_score_all - lfg_score_one| (lfg_serve.c, whatever
 * form the scorer uses: sgemv, half or int8 panels), plus the difference
 * between lfg_score_one, which adds the biases in float (three roundings
 * of at most 2^-24 of the total magnitude each), and lfg_known_raw, which
 * adds them in double. Clipping only shrinks differences. 2^-100 covers
 * underflow; the second term is doubled for safety.
 */
static double
scan_bound(const LfgMfParams *mf, const LfgScorer *sc, const float *x)
{
	double		x2 = 0.0,
				total;

	for (int32_t f = 0; f < mf->k; f++)
		x2 += (double) x[f] * x[f];
	total = sqrt(x2) * sc->qnorm_max +
		(mf->bi != NULL ? fabs(mf->mu) + fabs(x[mf->k]) + sc->bi_max : 0.0);
	return lfg_score_error_bound(mf, sc, x, -1) + 2.0 * 4.0 * ldexp(1.0, -24) * total +
		ldexp(1.0, -100);
}

/* A short include list: score its allowed items exactly, each once */
static LfgStatus
top_k_listed(const LfgMfParams *mf, const float *x, const LfgItemFilter *f, int32_t k,
			 const LfgAllocator *a, LfgScored *out, int32_t *found, LfgError *err)
{
	uint8_t    *mask = allowed_mask(f, mf->n_items, -1, a);
	LfgScored  *c = lfg_alloc_array(a, (size_t) f->n_include + 1, sizeof(LfgScored));
	int32_t		nc = 0;

	if (mask == NULL || c == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for a top k");
	for (int32_t j = 0; j < f->n_include; j++)
	{
		int32_t		i = f->include[j];

		if (!mask[i])
			continue;
		mask[i] = 0;			/* each item once */
		c[nc].item = i;
		c[nc++].score = lfg_known_raw(mf, x, i);
	}
	*found = lfg_select_top_k(c, nc, k);
	memcpy(out, c, (size_t) *found * sizeof(LfgScored));
	lfg_free(a, c);
	lfg_free(a, mask);
	return LFG_OK;
}

static inline float
clip_float(const LfgMfParams *mf, float v)
{
	return v < mf->rating_min ? mf->rating_min : v > mf->rating_max ? mf->rating_max : v;
}

/* lfg_known_top_k on the parameters lists are ordered by (lfg_order_params) */
static LfgStatus
order_top_k(const LfgMfParams *mf, const LfgScorer *sc, const float *x,
			const LfgItemFilter *f, int32_t k, float *approx, const LfgAllocator *a,
			LfgScored *out, int32_t *found, LfgError *err)
{
	int32_t		n = mf->n_items,
				kk,
				nc = 0,
				top;
	int32_t    *heap;
	double		bound,
				floor_score;
	LfgScored  *c;

	*found = 0;
	if (!finite_vector(x, mf->bi != NULL ? mf->k + 1 : mf->k))
		return lfg_error(err, LFG_EDATA, "Retrain the model or pass other ratings.",
						 "the user's factors are not finite");
	if (k < 1 || n < 1)
		return LFG_OK;
	if (f->include != NULL && (int64_t) f->n_include * 8 <= n)
		return top_k_listed(mf, x, f, k, a, out, found, err);

	/* approximate clipped scores of the catalogue (clipped again: either form) */
	lfg_score_all(mf, sc, x, approx);
	for (int32_t i = 0; i < n; i++)
		approx[i] = clip_float(mf, approx[i]);
	if (f->include != NULL)
	{
		uint8_t    *mask = allowed_mask(f, n, -1, a);

		if (mask == NULL)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for a top k");
		for (int32_t i = 0; i < n; i++)
			if (!mask[i])
				approx[i] = -INFINITY;
		lfg_free(a, mask);
	}
	for (int32_t j = 0; j < f->n_exclude; j++)
		approx[f->exclude[j]] = -INFINITY;

	/*
	 * With c_i = clip(raw_i) and B the bound (|clip(approx_i) - c_i| <= B):
	 * the k approximately best are rescored exactly; the smallest of their
	 * raw scores, lo, is at most the exact k-th best raw score, so an item
	 * of the exact top k has c >= clip(lo) and an approximate score of at
	 * least clip(lo) - B. Those candidates are rescored exactly and sorted
	 * by raw score.
	 */
	kk = k < n ? k : n;
	heap = lfg_alloc_array(a, (size_t) kk, sizeof(int32_t));
	if (heap == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for a top k");
	top = lfg_top_k(approx, n, kk, heap);
	bound = scan_bound(mf, sc, x);
	floor_score = -INFINITY;
	if (top == kk)
	{
		double		lo = INFINITY;

		for (int32_t j = 0; j < kk; j++)
			lo = fmin(lo, lfg_known_raw(mf, x, heap[j]));
		floor_score = lfg_known_clip(mf, lo) - bound;
	}
	lfg_free(a, heap);
	for (int32_t i = 0; i < n; i++)
		nc += approx[i] != -INFINITY && (double) approx[i] >= floor_score;
	c = lfg_alloc_array(a, (size_t) nc + 1, sizeof(LfgScored));
	if (c == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for a top k");
	nc = 0;
	for (int32_t i = 0; i < n; i++)
		if (approx[i] != -INFINITY && (double) approx[i] >= floor_score)
		{
			c[nc].item = i;
			c[nc++].score = lfg_known_raw(mf, x, i);
		}
	*found = lfg_select_top_k(c, nc, kk);
	memcpy(out, c, (size_t) *found * sizeof(LfgScored));
	lfg_free(a, c);
	return LFG_OK;
}

/*
 * See lfg_known.h. With a ranking head the items are chosen and ordered by
 * its scores for xo and each is then given its raw predicted rating for x.
 */
LfgStatus
lfg_known_top_k(const LfgMfParams *mf, const LfgScorer *sc, const float *x, const float *xo,
				const LfgItemFilter *f, int32_t k, float *approx, const LfgAllocator *a,
				LfgScored *out, int32_t *found, LfgError *err)
{
	LfgMfParams view;
	const LfgMfParams *om = lfg_order_params(mf, &view);
	LfgStatus	st = order_top_k(om, sc, om != mf ? xo : x, f, k, approx, a, out, found, err);

	for (int32_t j = 0; st == LFG_OK && om != mf && j < *found; j++)
		out[j].score = lfg_known_raw(mf, x, out[j].item);
	return st;
}

/* See lfg_known.h */
double
lfg_cosine(const float *a, const float *b, int32_t k)
{
	double		ab = 0.0,
				aa = 0.0,
				bb = 0.0;

	for (int32_t f = 0; f < k; f++)
	{
		ab += (double) a[f] * b[f];
		aa += (double) a[f] * a[f];
		bb += (double) b[f] * b[f];
	}
	return aa > 0.0 && bb > 0.0 ? ab / (sqrt(aa) * sqrt(bb)) : 0.0;
}

/* See lfg_known.h */
LfgStatus
lfg_similar_top_k(const LfgMfParams *mf, int32_t item, const LfgItemFilter *f, int32_t k,
				  LfgCheckFn check, void *ctx, const LfgAllocator *a, LfgScored *out,
				  int32_t *found, LfgError *err)
{
	int32_t		n = mf->n_items,
				nc = 0;
	const float *q = mf->Q + (size_t) item * mf->k;
	uint8_t    *mask;
	LfgScored  *c;

	*found = 0;
	if (item < 0 || item >= n)
		return lfg_error(err, LFG_EPARAM, NULL, "item index %d out of range", item);
	mask = allowed_mask(f, n, item, a);
	c = lfg_alloc_array(a, (size_t) n, sizeof(LfgScored));
	if (mask == NULL || c == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for similar items");
	for (int32_t i = 0; i < n; i++)
	{
		if (check != NULL && i % 4096 == 4095)
			check(ctx);
		if (mask[i])
		{
			c[nc].item = i;
			c[nc++].score = lfg_cosine(q, mf->Q + (size_t) i * mf->k, mf->k);
		}
	}
	*found = lfg_select_top_k(c, nc, k);
	memcpy(out, c, (size_t) *found * sizeof(LfgScored));
	lfg_free(a, c);
	lfg_free(a, mask);
	return LFG_OK;
}

/*
 * Cholesky factorisation of the symmetric positive definite m x m matrix
 * M (row-major, lower triangle used) in place, then the solve of M z = b
 * in place of b. Returns false when M is not positive definite.
 */
static bool
cholesky_solve(double *M, int32_t m, double *b, LfgCheckFn check, void *ctx)
{
	for (int32_t j = 0; j < m; j++)
	{
		double		d = M[(size_t) j * m + j];

		if (check != NULL)
			check(ctx);

		for (int32_t t = 0; t < j; t++)
			d -= M[(size_t) j * m + t] * M[(size_t) j * m + t];
		if (!(d > 0.0))
			return false;
		d = sqrt(d);
		M[(size_t) j * m + j] = d;
		for (int32_t i = j + 1; i < m; i++)
		{
			double		v = M[(size_t) i * m + j];

			for (int32_t t = 0; t < j; t++)
				v -= M[(size_t) i * m + t] * M[(size_t) j * m + t];
			M[(size_t) i * m + j] = v / d;
		}
	}
	for (int32_t i = 0; i < m; i++)		/* L z = b */
	{
		for (int32_t t = 0; t < i; t++)
			b[i] -= M[(size_t) i * m + t] * b[t];
		b[i] /= M[(size_t) i * m + i];
	}
	for (int32_t i = m - 1; i >= 0; i--)	/* L^T w = z */
	{
		for (int32_t t = i + 1; t < m; t++)
			b[i] -= M[(size_t) t * m + i] * b[t];
		b[i] /= M[(size_t) i * m + i];
	}
	return true;
}

/* Fold-in row a_e . v for the rated item i: (q_i, 1) (no 1 for SVD) */
static double
row_dot(const LfgMfParams *mf, int32_t i, const double *v)
{
	const float *q = mf->Q + (size_t) i * mf->k;
	double		s = mf->bi != NULL ? v[mf->k] : 0.0;

	for (int32_t f = 0; f < mf->k; f++)
		s += (double) q[f] * v[f];
	return s;
}

/*
 * See lfg_known.h. h = A (A^T A + reg I)^-1 a_j, or by the push-through
 * identity h = (A A^T + reg I)^-1 A a_j when there are fewer ratings than
 * unknowns (the system solved is then n x n, as in lfg_serve.c).
 */
LfgStatus
lfg_explain_fold_in(const LfgMfParams *mf, const int32_t *item, const float *rating, int32_t n,
					double reg, const float *prior, int32_t j, LfgCheckFn check, void *ctx,
					const LfgAllocator *a, double *contrib, double *base, LfgError *err)
{
	int32_t		k = mf->k,
				d = mf->bi != NULL ? k + 1 : k,
				m = n < d ? n : d;
	double	   *aj = lfg_alloc_array(a, (size_t) d + 1, sizeof(double)),
			   *g = lfg_alloc_array(a, (size_t) d + 1, sizeof(double)),
			   *M = lfg_alloc_array(a, (size_t) m * m + 1, sizeof(double)),
			   *v = lfg_alloc_array(a, (size_t) (n > d ? n : d) + 1, sizeof(double));
	double		cj;

	if (!aj || !g || !M || !v)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for an explanation");
	if (!(reg > 0.0) || !isfinite(reg))
		return lfg_error(err, LFG_EPARAM, "The default is 5.", "fold-in regularisation must be positive");
	/* the target: score c_j + a_j . x */
	memset(aj, 0, sizeof(double) * d);
	for (int32_t f = 0; f < d; f++)
		g[f] = prior != NULL ? prior[f] : 0.0;
	if (j >= 0)
	{
		for (int32_t f = 0; f < k; f++)
			aj[f] = mf->Q[(size_t) j * k + f];
		if (mf->bi != NULL)
			aj[k] = 1.0;
		cj = mf->bi != NULL ? (double) mf->mu + mf->bi[j] : 0.0;
	}
	else
	{
		/* an unknown item: the mean plus the user's bias (lfg_score_one) */
		if (mf->bi != NULL)
			aj[k] = 1.0;
		cj = mf->mu;
	}
	*base = cj;
	for (int32_t f = 0; f < d; f++)
		*base += aj[f] * g[f];
	if (n == 0)
		goto done;

	memset(M, 0, sizeof(double) * m * m);
	if (n < d)
	{
		/* dual: (A A^T + reg I) h = A a_j */
		for (int32_t e = 0; e < n; e++)
		{
			const float *qe = mf->Q + (size_t) item[e] * k;

			if (check != NULL)
				check(ctx);
			for (int32_t t = 0; t <= e; t++)
			{
				const float *qt = mf->Q + (size_t) item[t] * k;
				double		s = mf->bi != NULL ? 1.0 : 0.0;

				for (int32_t f = 0; f < k; f++)
					s += (double) qe[f] * qt[f];
				M[(size_t) e * m + t] = s + (t == e ? reg : 0.0);
			}
			v[e] = row_dot(mf, item[e], aj);
		}
		if (!cholesky_solve(M, m, v, check, ctx))
			return lfg_error(err, LFG_EDATA, NULL, "explanation system is singular");
	}
	else
	{
		/* primal: (A^T A + reg I) w = a_j, then h = A w */
		for (int32_t e = 0; e < n; e++)
		{
			const float *qe = mf->Q + (size_t) item[e] * k;

			if (check != NULL)
				check(ctx);
			for (int32_t r = 0; r < d; r++)
			{
				double		ar = r < k ? qe[r] : 1.0;

				for (int32_t t = 0; t <= r; t++)
					M[(size_t) r * m + t] += ar * (t < k ? qe[t] : 1.0);
			}
		}
		for (int32_t r = 0; r < d; r++)
		{
			M[(size_t) r * m + r] += reg;
			v[r] = aj[r];
		}
		if (!cholesky_solve(M, m, v, check, ctx))
			return lfg_error(err, LFG_EDATA, NULL, "explanation system is singular");
		memcpy(aj, v, sizeof(double) * d);	/* w */
		for (int32_t e = 0; e < n; e++)
			v[e] = row_dot(mf, item[e], aj);
	}
	/* contrib_e = h_e (y_e - a_e . g), y_e = r_e - mu - b_i (r_e for SVD) */
	for (int32_t e = 0; e < n; e++)
	{
		double		y = mf->bi != NULL ? (double) rating[e] - mf->mu - mf->bi[item[e]] : rating[e];

		contrib[e] = v[e] * (y - row_dot(mf, item[e], g));
	}
done:
	lfg_free(a, v);
	lfg_free(a, M);
	lfg_free(a, g);
	lfg_free(a, aj);
	return LFG_OK;
}
