/*
 * lfg_ease.c
 *	  EASE: training in closed form and scoring (lfg_ease.h).
 *
 * Steck (WWW 2019) fits B to reconstruct the binary users x items matrix X
 * from itself, min ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0,
 * whose solution is B = I - P diag(1 / diag(P)) with P = (X'X + lambda I)^-1.
 * A user's scores are x B for their binary row x. Training builds the
 * upper triangle of G = X'X from each user's list of items (sum of n_u^2 / 2
 * additions), inverts it in place with LAPACK's blocked algorithms written
 * out in lfg_blas.c (Cholesky, then the inverse from the factor), checking
 * for a query cancel between blocks of 256 rows, and scales the columns;
 * memory is one n_items x n_items float matrix, which becomes B.
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_ease.h"

/* Pairs of items added to G between two interrupt checks */
#define LFG_EASE_CHECK_PAIRS (1 << 22)
/* Rows per block of the factorization and the inverse (an interrupt check each) */
#define LFG_EASE_BLOCK 256

/* See lfg_ease.h */
size_t
lfg_ease_matrix_bytes(int32_t n_items)
{
	size_t		cells,
				bytes;

	if (n_items < 0 || lfg_mul_overflow((size_t) n_items, (size_t) n_items, &cells) ||
		lfg_mul_overflow(cells, sizeof(float), &bytes))
		return 0;
	return bytes;
}

/* Each user's distinct items (d sorted by user, then item) into e's lists */
static LfgStatus
user_lists(const LfgRatings *d, const LfgAllocator *a, LfgEase *e, LfgError *err)
{
	uint64_t	m = 0;
	size_t		j = 0;

	e->user_ptr = lfg_alloc_array(a, (size_t) d->n_users + 1, sizeof(int64_t));
	e->user_items = lfg_alloc_array(a, d->n + 1, sizeof(int32_t));
	e->pop = lfg_alloc_array(a, (size_t) d->n_items + 1, sizeof(float));
	if (!e->user_ptr || !e->user_items || !e->pop)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the EASE user lists");
	memset(e->pop, 0, (size_t) d->n_items * sizeof(float));
	for (int32_t u = 0; u < d->n_users; u++)
	{
		e->user_ptr[u] = (int64_t) m;
		for (; j < d->n && d->user[j] == u; j++)
		{
			int32_t		i = d->item[j];

			if (i < 0 || i >= d->n_items ||
				(m > (uint64_t) e->user_ptr[u] && e->user_items[m - 1] > i))
				return lfg_error(err, LFG_EDATA, NULL, "ratings are not sorted by user and item");
			if (m > (uint64_t) e->user_ptr[u] && e->user_items[m - 1] == i)
				continue;		/* a pair rated twice is one entry of X */
			e->user_items[m++] = i;
			e->pop[i] += 1.0f;
		}
	}
	if (j != d->n)
		return lfg_error(err, LFG_EDATA, NULL, "ratings are not sorted by user and item");
	e->user_ptr[d->n_users] = (int64_t) m;
	e->n_rated = m;
	for (int32_t i = 0; i < d->n_items; i++)
		e->pop[i] /= (float) d->n_users;
	return LFG_OK;
}

/* The upper triangle of X'X + lambda I into G (n x n, zeroed) */
static void
gram(const LfgEase *e, double lambda, float *G, const LfgCallbacks *cb)
{
	size_t		n = (size_t) e->n_items,
				pairs = 0;

	for (int32_t u = 0; u < e->n_users; u++)
	{
		const int32_t *it = e->user_items + e->user_ptr[u];
		int64_t		m = e->user_ptr[u + 1] - e->user_ptr[u];

		/* items ascend, so (it[a], it[b]) with b >= a lies on or above the diagonal */
		for (int64_t x = 0; x < m; x++)
		{
			float	   *row = G + (size_t) it[x] * n;

			for (int64_t y = x; y < m; y++)
				row[it[y]] += 1.0f;
		}
		pairs += (size_t) (m * (m + 1) / 2);
		if (pairs >= LFG_EASE_CHECK_PAIRS && cb && cb->check)
		{
			cb->check(cb->ctx);
			pairs = 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		G[i * n + i] += (float) lambda;
}

/*
 * P (upper triangle, from spotri) into B in place: copy the upper triangle
 * to the lower one, then B[i][j] = -P[i][j] / P[j][j] and B[i][i] = 0.
 */
static LfgStatus
weights(float *M, int32_t n_items, const LfgAllocator *a, const LfgCallbacks *cb, LfgError *err)
{
	size_t		n = (size_t) n_items;
	float	   *inv = lfg_alloc_array(a, n + 1, sizeof(float));

	if (inv == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for EASE");
	for (size_t j = 0; j < n; j++)
	{
		if (!(M[j * n + j] > 0.0f) || !isfinite(M[j * n + j]))
		{
			lfg_free(a, inv);
			return lfg_error(err, LFG_EDATA, "Train with a larger \"lambda\".",
							 "EASE inverse has a non-positive diagonal (item %zu)", j);
		}
		inv[j] = -1.0f / M[j * n + j];
	}
	for (size_t i = 0; i < n; i++)
	{
		float	   *row = M + i * n;

		for (size_t j = 0; j < i; j++)
			row[j] = M[j * n + i];
		if (i % 256 == 255 && cb && cb->check)
			cb->check(cb->ctx);
	}
	for (size_t i = 0; i < n; i++)
	{
		float	   *row = M + i * n;

		for (size_t j = 0; j < n; j++)
			row[j] *= inv[j];
		row[i] = 0.0f;
	}
	lfg_free(a, inv);
	return LFG_OK;
}

/* See lfg_ease.h */
LfgStatus
lfg_ease_train(const LfgRatings *d, double lambda, const LfgCallbacks *cb,
			   const LfgAllocator *a, LfgEase *out, LfgError *err)
{
	size_t		bytes = lfg_ease_matrix_bytes(d->n_items);
	int			info;
	LfgStatus	st;

	memset(out, 0, sizeof(*out));
	if (!(lambda > 0.0) || lambda > LFG_EASE_MAX_LAMBDA)
		return lfg_error(err, LFG_EPARAM, "Values in the hundreds to tens of thousands are usual.",
						 "lambda must be greater than 0 and at most 1e9");
	if (d->n == 0 || d->n_users < 1 || d->n_items < 1)
		return lfg_error(err, LFG_EDATA, NULL, "no ratings to train on");
	if (bytes == 0 || d->n_items > INT32_MAX / 2)
		return lfg_error(err, LFG_ELIMIT, NULL, "too many items for EASE");
	out->n_users = d->n_users;
	out->n_items = d->n_items;
	if ((st = user_lists(d, a, out, err)) != LFG_OK)
		return st;
	out->B = lfg_alloc(a, bytes);
	if (out->B == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the EASE matrix");
	memset(out->B, 0, bytes);
	gram(out, lambda, out->B, cb);
	if (cb && cb->check)
		cb->check(cb->ctx);
	if ((info = lfg_spd_factor_blocked(d->n_items, out->B, LFG_EASE_BLOCK,
									   cb ? cb->check : NULL, cb ? cb->ctx : NULL)) != 0)
		return lfg_error(err, LFG_EDATA, "Train with a larger \"lambda\".",
						 "EASE Gram matrix is not positive definite (LAPACK spotrf info %d)", info);
	if ((info = lfg_spd_invert_factored_blocked(d->n_items, out->B, LFG_EASE_BLOCK,
												cb ? cb->check : NULL, cb ? cb->ctx : NULL)) != 0)
		return lfg_error(err, LFG_EDATA, "Train with a larger \"lambda\".",
						 "EASE Gram matrix could not be inverted (LAPACK strtri/slauum info %d)", info);
	if (cb && cb->check)
		cb->check(cb->ctx);
	return weights(out->B, d->n_items, a, cb, err);
}

/* See lfg_ease.h */
void
lfg_ease_scores(const LfgEase *e, const int32_t *items, int32_t n, float *scores)
{
	size_t		ni = (size_t) e->n_items;

	if (n == 0)
	{
		memcpy(scores, e->pop, ni * sizeof(float));
		return;
	}
	memset(scores, 0, ni * sizeof(float));
	for (int32_t x = 0; x < n; x++)
		lfg_axpy(e->n_items, 1.0f, e->B + (size_t) items[x] * ni, scores);
}

/* See lfg_ease.h */
double
lfg_ease_predict(const LfgEase *e, int32_t u, int32_t i)
{
	size_t		ni = (size_t) e->n_items;
	double		s = 0.0;

	if (i < 0)
		return 0.0;
	if (u < 0 || e->user_ptr[u + 1] == e->user_ptr[u])
		return e->pop[i];
	for (int64_t x = e->user_ptr[u]; x < e->user_ptr[u + 1]; x++)
		s += e->B[(size_t) e->user_items[x] * ni + (size_t) i];
	return s;
}

/* See lfg_ease.h */
bool
lfg_ease_lists_valid(const LfgEase *e)
{
	if (e->user_ptr[0] != 0 || (uint64_t) e->user_ptr[e->n_users] != e->n_rated)
		return false;
	for (int32_t u = 0; u < e->n_users; u++)
	{
		int64_t		lo = e->user_ptr[u],
					hi = e->user_ptr[u + 1];

		if (hi < lo || (uint64_t) hi > e->n_rated)
			return false;
		for (int64_t x = lo; x < hi; x++)
			if (e->user_items[x] < 0 || e->user_items[x] >= e->n_items ||
				(x > lo && e->user_items[x - 1] >= e->user_items[x]))
				return false;
	}
	return true;
}
