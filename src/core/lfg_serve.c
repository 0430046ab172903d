/*
 * lfg_serve.c
 *	  New-user vectors, catalogue scores and top-k selection.
 *
 * Fold-in: with the item side fixed, the user vector x = (p_u, b_u) that
 * minimises
 *	 sum_i (r_i - mu - b_i - q_i . p_u - b_u)^2 + reg ||x - g||^2
 * solves the (k + 1) x (k + 1) system (A^T A + reg I) x = A^T y + reg g,
 * with A's rows (q_i, 1) and y_i = r_i - mu - b_i, or, with fewer ratings
 * than unknowns, its n x n dual. The prior g is zero for
 * SVD and BiasSVD (classic fold-in) and the generator's output for LFG, so
 * the refinement pulls the generated vector toward the user's own ratings
 * as they accumulate. For SVD there is no bias: A's rows are q_i, y_i = r_i.
 * One ssyrk, one or two sgemv and one Cholesky solve (LAPACK sposv).
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_serve.h"

/* Buffers for up to cap ratings */
LfgStatus
lfg_serve_scratch_alloc(const LfgModel *m, int32_t cap, const LfgAllocator *a,
						LfgServeScratch *s, LfgError *err)
{
	size_t		d = (size_t) m->mf.k + 1;
	LfgStatus	st;

	memset(s, 0, sizeof(*s));
	s->cap = cap;
	s->A = lfg_alloc_array(a, (size_t) cap * d + 1, sizeof(float));
	s->y = lfg_alloc_array(a, (size_t) cap + 1, sizeof(float));
	s->M = lfg_alloc_array(a, d * d, sizeof(float));	/* the system is at most d x d */
	s->rhs = lfg_alloc_array(a, d, sizeof(float));
	s->prior = lfg_alloc_array(a, d, sizeof(float));
	if (!s->A || !s->y || !s->M || !s->rhs || !s->prior)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for serving");
	if (m->mf.kind == LFG_KIND_LFG &&
		(st = lfg_net_scratch_alloc(&m->net, cap, a, &s->net, err)) != LFG_OK)
		return st;
	return LFG_OK;
}

/* Rows a_e = (q_i, 1) (no 1 for SVD) into s->A and targets y_e into s->y */
static void
design(const LfgMfParams *mf, const LfgNetUser *u, int32_t d, LfgServeScratch *s)
{
	int32_t		k = mf->k;
	bool		biased = mf->bu != NULL;

	for (int32_t e = 0; e < u->n; e++)
	{
		int32_t		i = u->item[e];
		float	   *row = s->A + (size_t) e * d;

		memcpy(row, mf->Q + (size_t) i * k, (size_t) k * sizeof(float));
		if (biased)
		{
			row[k] = 1.0f;
			s->y[e] = u->rating[e] - mf->mu - mf->bi[i];
		}
		else
			s->y[e] = u->rating[e];
	}
}

/*
 * Solve the regularised least squares of the file header into x. With
 * fewer ratings than unknowns (the usual new user), the equivalent dual
 * form x = g + A^T (A A^T + reg I)^-1 (y - A g) solves an n x n system
 * instead of a (k + 1) x (k + 1) one.
 */
static LfgStatus
fold_in(const LfgMfParams *mf, const LfgNetUser *u, double reg, const float *prior,
		LfgServeScratch *s, float *x, LfgError *err)
{
	int32_t		k = mf->k;
	bool		biased = mf->bu != NULL;
	int32_t		d = biased ? k + 1 : k;
	int32_t		n = u->n;
	int32_t		m = n < d ? n : d;	/* the size of the system solved */
	int			info;

	design(mf, u, d, s);
	memset(s->M, 0, (size_t) m * m * sizeof(float));
	for (int32_t j = 0; j < m; j++)
		s->M[(size_t) j * m + j] = (float) reg;
	if (n < d)
	{
		/* dual: K = A A^T + reg I, r = y - A g, x = g + A^T K^-1 r */
		if (prior)
			lfg_gemv(0, n, d, -1.0f, s->A, d, prior, 1.0f, s->y);
		if (n > 0)
			lfg_syrk_n(n, d, s->A, s->M);
		info = n > 0 ? lfg_posv(n, s->M, s->y) : 0;
		if (info != 0)
			return lfg_error(err, LFG_EDATA, NULL, "fold-in system is singular (LAPACK info %d)", info);
		for (int32_t j = 0; j < d; j++)
			x[j] = prior ? prior[j] : 0.0f;
		if (n > 0)
			lfg_gemv(1, n, d, 1.0f, s->A, d, s->y, 1.0f, x);
	}
	else
	{
		/* primal: (A^T A + reg I) x = A^T y + reg g */
		for (int32_t j = 0; j < d; j++)
			s->rhs[j] = (float) reg * (prior ? prior[j] : 0.0f);
		lfg_syrk_t(d, n, s->A, s->M);
		lfg_gemv(1, n, d, 1.0f, s->A, d, s->y, 1.0f, s->rhs);
		info = lfg_posv(d, s->M, s->rhs);
		if (info != 0)
			return lfg_error(err, LFG_EDATA, NULL, "fold-in system is singular (LAPACK info %d)", info);
		memcpy(x, s->rhs, (size_t) d * sizeof(float));
	}
	if (!biased)
		x[k] = 0.0f;
	return LFG_OK;
}

/* See lfg_serve.h */
LfgStatus
lfg_user_vector(const LfgModel *m, const LfgNetUser *u, double reg, bool refine,
				LfgServeScratch *s, float *x, LfgError *err)
{
	int32_t		k = m->mf.k;

	if (u->n > s->cap)
		return lfg_error(err, LFG_EPARAM, NULL, "serving scratch too small");
	if (!(reg > 0.0) || !isfinite(reg))
		return lfg_error(err, LFG_EPARAM, "The default is 5.", "fold-in regularisation must be positive");
	if (m->mf.kind != LFG_KIND_LFG)
		return fold_in(&m->mf, u, reg, NULL, s, x, err);
	lfg_net_generate(&m->net, &m->mf, u, &s->net, s->prior, &s->prior[k]);
	if (!refine || u->n == 0)
	{
		memcpy(x, s->prior, ((size_t) k + 1) * sizeof(float));
		return LFG_OK;
	}
	return fold_in(&m->mf, u, reg, s->prior, s, x, err);
}

/* Clip to the training rating range */
static inline float
clip(const LfgMfParams *mf, float v)
{
	return v < mf->rating_min ? mf->rating_min : v > mf->rating_max ? mf->rating_max : v;
}

/* See lfg_serve.h: one sgemv for the whole catalogue */
void
lfg_score_all(const LfgMfParams *mf, const float *x, float *scores)
{
	int32_t		n = mf->n_items,
				k = mf->k;

	lfg_gemv(0, n, k, 1.0f, mf->Q, k, x, 0.0f, scores);
	if (mf->bi != NULL)
		for (int32_t i = 0; i < n; i++)
			scores[i] = clip(mf, scores[i] + mf->mu + x[k] + mf->bi[i]);
	else
		for (int32_t i = 0; i < n; i++)
			scores[i] = clip(mf, scores[i]);
}

/* See lfg_serve.h */
double
lfg_score_one(const LfgMfParams *mf, const float *x, int32_t i)
{
	float		v;

	if (i < 0)					/* unknown item: the mean plus the user's bias */
		v = mf->mu + (mf->bi != NULL ? x[mf->k] : 0.0f);
	else
	{
		v = lfg_dot(mf->Q + (size_t) i * mf->k, x, mf->k);
		if (mf->bi != NULL)
			v += mf->mu + x[mf->k] + mf->bi[i];
	}
	return clip(mf, v);
}

/* a ranks below b: lower score, or equal score and larger index */
static inline bool
worse(const float *scores, int32_t a, int32_t b)
{
	return scores[a] < scores[b] || (scores[a] == scores[b] && a > b);
}

/* Restore the min-heap property (worst at the root) below position j */
static void
sift_down(const float *scores, int32_t *heap, int32_t n, int32_t j)
{
	for (;;)
	{
		int32_t		l = 2 * j + 1,
					r = l + 1,
					m = j,
					t;

		if (l < n && worse(scores, heap[l], heap[m]))
			m = l;
		if (r < n && worse(scores, heap[r], heap[m]))
			m = r;
		if (m == j)
			return;
		t = heap[j];
		heap[j] = heap[m];
		heap[m] = t;
		j = m;
	}
}

/*
 * See lfg_serve.h: a bounded min-heap, O(n log k), then a heap sort of k.
 * Once the heap is full, most items fail one comparison with the score of
 * the worst kept item, which is kept in a register.
 */
int32_t
lfg_top_k(const float *scores, int32_t n, int32_t k, int32_t *heap)
{
	int32_t		size = 0;
	int32_t		i = 0;
	float		bar;

	for (; i < n && size < k; i++)
	{
		int32_t		j;

		if (scores[i] == -INFINITY)
			continue;
		j = size++;
		heap[j] = i;
		while (j > 0 && worse(scores, heap[j], heap[(j - 1) / 2]))
		{
			int32_t		p = (j - 1) / 2,
						t = heap[j];

			heap[j] = heap[p];
			heap[p] = t;
			j = p;
		}
	}
	bar = size > 0 ? scores[heap[0]] : INFINITY;
	for (; i < n; i++)
	{
		/* later items lose ties (larger index): they must be strictly better */
		if (scores[i] <= bar)
			continue;
		heap[0] = i;
		sift_down(scores, heap, size, 0);
		bar = scores[heap[0]];
	}
	/* pop the worst to the end: the array ends up best first */
	for (int32_t end = size - 1; end > 0; end--)
	{
		int32_t		t = heap[0];

		heap[0] = heap[end];
		heap[end] = t;
		sift_down(scores, heap, end, 0);
	}
	return size;
}
