/*
 * lfg_mf.c
 *	  SVD and BiasSVD trained by stochastic gradient descent.
 *
 * BiasSVD predicts r(u, i) = mu + b_u + b_i + p_u . q_i and SVD predicts
 * p_u . q_i (PAPER.md, "Baselines"). Per rating with error e,
 *	 b_u += lr (e - reg b_u),  b_i += lr (e - reg b_i)
 *	 p_u += lr (e q_i - reg p_u),  q_i += lr (e p_u - reg q_i)
 * which is the update of the Surprise library's SVD, so its defaults
 * (100 factors, 20 epochs, lr 0.005, reg 0.02, N(0, 0.1) init) carry over.
 *
 * The order is blocked (DSGD, Gemulla et al., KDD 2011; LIBMF, Chin et al.,
 * ACM TIST 2015). Users and items are relabelled by a seeded permutation
 * and cut into G groups of consecutive rows each, which cuts the ratings
 * into a G x G grid of blocks, sorted in place so that each block's
 * ratings are contiguous. An epoch visits G strata in a seeded order;
 * stratum s holds the G blocks (b, sigma(b + s mod G)) for a seeded
 * permutation sigma of the item groups, which share no user and no item,
 * so threads train them at once without locks. A block's rows of P and Q
 * are contiguous, its rows of Q fit in a core's L2 cache (lfg_mf_grid), and
 * within a block the ratings go by user, then item (LIBMF's order: a
 * user's row stays in L1 across its ratings). On ml-100k's five folds this order
 * scores as Surprise's global shuffle did (doc/lfg.md); at 10M ratings it
 * ran 1.6x faster than a fresh shuffle within each block every epoch. G
 * depends on the data and the factors, never on the threads, and a block
 * is computed the same way whichever thread takes it: the model is
 * byte-identical for any "parallel". Threads call nothing of
 * PostgreSQL's: they are started for each stratum and joined before the
 * caller's check callback, which may raise, runs.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_mf.h"
#include "lfg_par.h"
#include "lfg_rng.h"

/* ratings between interrupt checks with one thread */
#define CHECK_EVERY 8192
#ifndef Max
#define Max(x, y) ((x) > (y) ? (x) : (y))
#endif
/* the rows of Q one block may touch: half a core's L2 cache */
#define BLOCK_ITEM_BYTES (512 * 1024)
/*
 * ratings per stratum at most (where the grid allows); threads are joined
 * for the interrupt check after about two strata of this size
 */
#define STRATUM_RATINGS (1 << 21)

/* Surprise's defaults, and our fixed default seed */
void
lfg_mf_options_default(LfgMfOptions *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->kind = LFG_KIND_BIASSVD;
	opts->factors = LFG_DEFAULT_FACTORS;
	opts->epochs = LFG_DEFAULT_EPOCHS;
	opts->lr = LFG_DEFAULT_LR;
	opts->reg = LFG_DEFAULT_REG;
	opts->init_std = LFG_DEFAULT_INIT_STD;
	opts->seed = LFG_DEFAULT_SEED;
	opts->parallel = 1;
}

/* Check every hyperparameter against its documented range */
LfgStatus
lfg_mf_options_check(const LfgMfOptions *o, LfgError *err)
{
	if (o->kind != LFG_KIND_SVD && o->kind != LFG_KIND_BIASSVD)
		return lfg_error(err, LFG_EPARAM, "Use \"svd\" or \"biassvd\".",
						 "unknown matrix factorization kind %d", o->kind);
	if (o->factors < LFG_MIN_FACTORS || o->factors > LFG_MAX_FACTORS)
		return lfg_error(err, LFG_EPARAM, "Pass a number of factors in the allowed range.",
						 "factors must be between %d and %d", LFG_MIN_FACTORS, LFG_MAX_FACTORS);
	if (o->epochs < LFG_MIN_EPOCHS || o->epochs > LFG_MAX_EPOCHS)
		return lfg_error(err, LFG_EPARAM, "Pass a number of epochs in the allowed range.",
						 "epochs must be between %d and %d", LFG_MIN_EPOCHS, LFG_MAX_EPOCHS);
	if (!(o->lr > 0.0 && o->lr <= LFG_MAX_LR))
		return lfg_error(err, LFG_EPARAM, "Typical learning rates are 0.001 to 0.05.",
						 "lr must be greater than 0 and at most %g", LFG_MAX_LR);
	if (!(o->reg >= 0.0 && o->reg <= LFG_MAX_REG))
		return lfg_error(err, LFG_EPARAM, "Typical values are 0.01 to 0.1.",
						 "reg must be between 0 and %g", LFG_MAX_REG);
	if (!(o->init_std >= 0.0 && o->init_std <= LFG_MAX_INIT_STD))
		return lfg_error(err, LFG_EPARAM, "The default is 0.1.",
						 "init_std must be between 0 and %g", LFG_MAX_INIT_STD);
	if (o->parallel < 1 || o->parallel > LFG_MAX_PARALLEL)
		return lfg_error(err, LFG_EPARAM, "Pass at most the number of cores.",
						 "parallel must be between 1 and %d", LFG_MAX_PARALLEL);
	return LFG_OK;
}

/* Check indexes and ratings; compute the mean and the rating range */
static LfgStatus
check_data(const LfgRating *t, size_t n, int32_t n_users, int32_t n_items,
		   float *mu, float *rmin, float *rmax, LfgError *err)
{
	double		sum = 0.0;
	float		lo = INFINITY,
				hi = -INFINITY;

	if (n == 0)
		return lfg_error(err, LFG_EDATA, "Train over a query that returns ratings.",
						 "no ratings to train on");
	if (n > UINT32_MAX)
		return lfg_error(err, LFG_ELIMIT, "Train on a sample of the ratings.",
						 "too many ratings: at most %u are supported", UINT32_MAX);
	if (n_users < 1 || n_users > LFG_MAX_IDS || n_items < 1 || n_items > LFG_MAX_IDS)
		return lfg_error(err, LFG_ELIMIT, NULL, "user or item count out of range");
	for (size_t j = 0; j < n; j++)
	{
		float		r = t[j].r;

		if (t[j].u < 0 || t[j].u >= n_users || t[j].i < 0 || t[j].i >= n_items)
			return lfg_error(err, LFG_EDATA, NULL, "rating %zu has an index out of range", j);
		if (!isfinite(r))
			return lfg_error(err, LFG_EDATA, "Remove NaN and infinite ratings.",
							 "rating %zu is not a finite number", j);
		sum += r;
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	*mu = (float) (sum / (double) n);
	*rmin = lo;
	*rmax = hi;
	return LFG_OK;
}

/* Allocate the parameter arrays and draw the factors from N(0, init_std) */
static LfgStatus
init_params(LfgMfParams *m, const LfgMfOptions *o, const LfgAllocator *a, LfgError *err)
{
	size_t		np = (size_t) m->n_users * (size_t) m->k;
	size_t		nq = (size_t) m->n_items * (size_t) m->k;
	LfgRng		rng;

	m->P = lfg_alloc_array(a, np, sizeof(float));
	m->Q = lfg_alloc_array(a, nq, sizeof(float));
	m->bu = m->bi = NULL;
	if (o->kind == LFG_KIND_BIASSVD)
	{
		m->bu = lfg_alloc_array(a, (size_t) m->n_users, sizeof(float));
		m->bi = lfg_alloc_array(a, (size_t) m->n_items, sizeof(float));
		if (m->bu == NULL || m->bi == NULL)
			return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the biases");
		memset(m->bu, 0, (size_t) m->n_users * sizeof(float));
		memset(m->bi, 0, (size_t) m->n_items * sizeof(float));
	}
	if (m->P == NULL || m->Q == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the factor matrices");

	lfg_rng_seed(&rng, o->seed);
	for (size_t j = 0; j < np; j++)
		m->P[j] = (float) (lfg_rng_normal(&rng) * o->init_std);
	for (size_t j = 0; j < nq; j++)
		m->Q[j] = (float) (lfg_rng_normal(&rng) * o->init_std);
	return LFG_OK;
}

/*
 * Copy the rows an earlier model knew (see LfgWarmStart): the factors of
 * every mapped user and item, and their biases when both models have them
 */
static void
warm_rows(float *rows, float *bias, int32_t n, size_t k, const int32_t *map,
		  const float *from_rows, const float *from_bias)
{
	for (int32_t r = 0; r < n; r++)
	{
		int32_t		o = map[r];

		if (o < 0)
			continue;
		memcpy(rows + (size_t) r * k, from_rows + (size_t) o * k, k * sizeof(float));
		if (bias != NULL && from_bias != NULL)
			bias[r] = from_bias[o];
	}
}

static void
warm_params(LfgMfParams *m, const LfgWarmStart *w)
{
	const LfgMfParams *f = w->from;

	warm_rows(m->P, m->bu, m->n_users, (size_t) m->k, w->user_map, f->P, f->bu);
	warm_rows(m->Q, m->bi, m->n_items, (size_t) m->k, w->item_map, f->Q, f->bi);
}

/*
 * The grid size G for n ratings of n_users x n_items with k factors: the
 * smallest G for which a block's rows of Q (n_items / G rows of k floats)
 * fit in BLOCK_ITEM_BYTES and a stratum holds at most STRATUM_RATINGS
 * ratings, within [LFG_MF_MIN_GRID, LFG_MF_MAX_GRID]. A block's rows of P
 * need no room: within a block a user's ratings are consecutive, so each
 * row is read once and stays in L1 while it is used. Measured at 25M
 * ratings (162,541 users, 59,047 items, 100 factors, one thread): 45 ns a
 * rating and epoch with this rule (G = 46), 61 ns when P's rows counted
 * too (G = 85); 25 ns at 1M, where everything fits in cache. G depends on
 * the data and k only, so the model does not depend on the number of
 * threads.
 */
int
lfg_mf_grid(size_t n, int32_t n_users, int32_t n_items, int k)
{
	double		rows = (double) n_items * k * sizeof(float);
	double		g = ceil(rows / BLOCK_ITEM_BYTES);

	(void) n_users;				/* streamed: each user's ratings are consecutive */

	g = fmax(g, ceil((double) n / STRATUM_RATINGS));
	g = fmax(g, LFG_MF_MIN_GRID);
	return (int) fmin(g, LFG_MF_MAX_GRID);
}

/*
 * The blocked layout. Users (items) are relabelled by a seeded permutation:
 * user u trains as row unew[u] of a copy of P, and group b holds the rows
 * [b n_users / g, (b + 1) n_users / g), so a block's rows are contiguous
 * in memory (LIBMF's shuffle of the ids, for the same reasons: balanced
 * blocks whatever the id order, and rows that the hardware prefetches).
 */
typedef struct Grid
{
	int			g;
	int32_t		nu;
	int32_t		ni;
	int32_t    *unew;			/* training row of each user */
	int32_t    *uold;			/* user of each training row */
	int32_t    *inew;
	int32_t    *iold;
	size_t	   *start;			/* g * g + 1 offsets: block b is [start[b], start[b + 1]) */
} Grid;

/* A seeded permutation of n rows and its inverse */
static void
deal_rows(LfgRng *rng, int32_t n, int32_t *newrow, int32_t *oldrow)
{
	for (int32_t j = 0; j < n; j++)
		oldrow[j] = j;
	lfg_rng_shuffle_u32(rng, (uint32_t *) oldrow, (size_t) n);
	for (int32_t j = 0; j < n; j++)
		newrow[oldrow[j]] = j;
}

/* The block of a relabelled rating */
static inline size_t
block_of(const Grid *G, const LfgRating *x)
{
	size_t		bu = (size_t) (((int64_t) x->u * G->g) / G->nu),
				bi = (size_t) (((int64_t) x->i * G->g) / G->ni);

	return bu * G->g + bi;
}

/* Does x go before y: by item, then by the rating's bits (one user's ratings) */
static inline bool
rating_before(const LfgRating *x, const LfgRating *y)
{
	uint32_t	xb,
				yb;

	if (x->i != y->i)
		return x->i < y->i;
	memcpy(&xb, &x->r, sizeof(xb));
	memcpy(&yb, &y->r, sizeof(yb));
	return xb < yb;
}

static int
compare_ratings(const void *a, const void *b)
{
	return rating_before(a, b) ? -1 : rating_before(b, a) ? 1 : 0;
}

/*
 * Sort one block's n ratings by user, then item, then the rating's bits: a
 * counting sort by user through scratch (the block's users are the rows
 * [u0, u0 + nu) of one group; count has nu + 1 slots), then an insertion
 * sort of each user's ratings (qsort for a user with many). The order is
 * total (equal ratings are equal bytes), so the result does not depend on
 * the order of the input.
 */
static void
sort_block(LfgRating *t, size_t n, int32_t u0, int32_t nu, LfgRating *scratch, size_t *count)
{
	memset(count, 0, ((size_t) nu + 1) * sizeof(size_t));
	for (size_t j = 0; j < n; j++)
		count[t[j].u - u0 + 1]++;
	for (int32_t u = 0; u < nu; u++)
		count[u + 1] += count[u];
	for (size_t j = 0; j < n; j++)
		scratch[count[t[j].u - u0]++] = t[j];
	for (size_t lo = 0, hi; lo < n; lo = hi)
	{
		for (hi = lo + 1; hi < n && scratch[hi].u == scratch[lo].u; hi++)
			;
		if (hi - lo > 32)
			qsort(scratch + lo, hi - lo, sizeof(LfgRating), compare_ratings);
		else
			for (size_t j = lo + 1; j < hi; j++)
			{
				LfgRating	x = scratch[j];
				size_t		l = j;

				for (; l > lo && rating_before(&x, &scratch[l - 1]); l--)
					scratch[l] = scratch[l - 1];
				scratch[l] = x;
			}
	}
	memcpy(t, scratch, n * sizeof(LfgRating));
}

/*
 * Relabel the ratings and sort them in place into their blocks (a counting
 * sort that moves each rating along its cycle: no second copy), then each
 * block with sort_block, so the layout does not depend on the input order.
 * next is scratch of g * g offsets.
 */
static LfgStatus
sort_into_blocks(const Grid *G, LfgRating *t, size_t n, size_t *next, const LfgCallbacks *cb,
				 const LfgAllocator *a, LfgError *err)
{
	size_t		largest = 0;
	int32_t		group_rows = G->nu / G->g + 1;
	LfgRating  *scratch;
	size_t	   *count;

	size_t		nb = (size_t) G->g * G->g;

	memset(G->start, 0, (nb + 1) * sizeof(size_t));
	for (size_t j = 0; j < n; j++)
	{
		t[j].u = G->unew[t[j].u];
		t[j].i = G->inew[t[j].i];
		G->start[block_of(G, &t[j]) + 1]++;
	}
	for (size_t b = 0; b < nb; b++)
		G->start[b + 1] += G->start[b];
	memcpy(next, G->start, nb * sizeof(size_t));
	for (size_t b = 0; b < nb; b++)
	{
		while (next[b] < G->start[b + 1])
		{
			LfgRating	x = t[next[b]];
			size_t		d = block_of(G, &x);

			while (d != b)
			{
				LfgRating	y = t[next[d]];

				t[next[d]++] = x;
				x = y;
				d = block_of(G, &x);
			}
			t[next[b]++] = x;
		}
		if (cb && cb->check && b % 64 == 63)
			cb->check(cb->ctx);
	}
	for (size_t b = 0; b < nb; b++)
		largest = Max(largest, G->start[b + 1] - G->start[b]);
	scratch = lfg_alloc_array(a, Max(largest, 1), sizeof(LfgRating));
	count = lfg_alloc_array(a, (size_t) group_rows + 1, sizeof(size_t));
	if (scratch == NULL || count == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the block grid");
	for (size_t b = 0; b < nb; b++)
	{
		int32_t		gu = (int32_t) (b / G->g),
					u0 = (int32_t) (((int64_t) gu * G->nu + G->g - 1) / G->g),
					u1 = (int32_t) (((int64_t) (gu + 1) * G->nu + G->g - 1) / G->g);

		sort_block(t + G->start[b], G->start[b + 1] - G->start[b], u0, u1 - u0, scratch, count);
		if (cb && cb->check && b % 64 == 63)
			cb->check(cb->ctx);
	}
	lfg_free(a, scratch);
	lfg_free(a, count);
	return LFG_OK;
}

/* SGD over one block's ratings; returns the squared error */
static double
sgd_block(LfgMfParams *m, const LfgRating *t, size_t n, float lr, float reg,
		  const LfgCallbacks *cb)
{
	double		sse = 0.0;
	int			k = m->k;
	bool		biased = m->bu != NULL;

	for (size_t j = 0; j < n; j++)
	{
		int32_t		u = t[j].u;
		int32_t		i = t[j].i;
		float	   *pu = m->P + (size_t) u * k;
		float	   *qi = m->Q + (size_t) i * k;
		float		est = lfg_sgd_dot(pu, qi, k);
		float		e;

		if (biased)
			est += m->mu + m->bu[u] + m->bi[i];
		e = t[j].r - est;
		sse += (double) e * e;
		if (biased)
		{
			m->bu[u] += lr * (e - reg * m->bu[u]);
			m->bi[i] += lr * (e - reg * m->bi[i]);
		}
		lfg_sgd_pair_update(pu, qi, k, lr, e, reg);
		if (cb && cb->check && (j % CHECK_EVERY) == CHECK_EVERY - 1)
			cb->check(cb->ctx);
	}
	return sse;
}

/*
 * The schedule of one epoch. Stratum t (in the epoch's order) holds the
 * blocks (b, col[t g + b]); the blocks that touch user group b and item
 * group col[t g + b] before it are (t - 1, b) and (t - 1, inv[(t - 1) g +
 * col[t g + b]]), where inv inverts col within a stratum. A block may start
 * once those two have finished, whatever the others do: every block then
 * reads and writes its rows of P, Q and the biases exactly as the plain
 * stratum-by-stratum order would, so the threads need no barrier between
 * strata and the result does not depend on them (a DAG of blocks, as
 * wavefront schedules do).
 */
typedef struct Schedule
{
	LfgMfParams *m;
	LfgRating  *t;
	const Grid *grid;
	const uint32_t *col;		/* g x g: item group of block b in stratum t */
	const uint32_t *inv;		/* g x g: user group of item group c in stratum t */
	float		lr;
	float		reg;
	double	   *sse;			/* g x g: squared error of each block */
	const LfgCallbacks *cb;		/* only when one thread runs */
	int			t0;				/* the strata [t0, t1) of this run */
	int			t1;
	uint8_t    *deps;			/* g x g: unfinished predecessors */
	uint32_t   *ready;			/* queue of blocks that may start */
	size_t		head;
	size_t		tail;
	size_t		done;
	size_t		total;
	pthread_mutex_t mu;
	pthread_cond_t cv;
} Schedule;

/* Train block id (stratum id / g, user group id % g) */
static void
run_block(Schedule *s, size_t id)
{
	int			g = s->grid->g;
	size_t		blk = (id % g) * g + s->col[id];
	size_t		lo = s->grid->start[blk],
				hi = s->grid->start[blk + 1];

	s->sse[id] = sgd_block(s->m, s->t + lo, hi - lo, s->lr, s->reg, s->cb);
}

/* Block id has finished: count it off its successors (mutex held) */
static void
finish_block(Schedule *s, size_t id)
{
	size_t		g = (size_t) s->grid->g,
				t = id / g,
				b = id % g,
				s1,
				s2;

	s->done++;
	if ((int) t + 1 >= s->t1)
		return;
	s1 = (t + 1) * g + b;
	s2 = (t + 1) * g + s->inv[(t + 1) * g + s->col[id]];
	if (--s->deps[s1] == 0)
		s->ready[s->tail++] = (uint32_t) s1;
	if (s2 != s1 && --s->deps[s2] == 0)
		s->ready[s->tail++] = (uint32_t) s2;
}

/* A thread of the schedule: take ready blocks until all are done */
static void *
schedule_worker(void *arg)
{
	Schedule   *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;)
	{
		size_t		id;

		while (s->head == s->tail && s->done < s->total)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->done == s->total)
			break;
		id = s->ready[s->head++];
		pthread_mutex_unlock(&s->mu);
		run_block(s, id);
		pthread_mutex_lock(&s->mu);
		finish_block(s, id);
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/*
 * Train the strata [t0, t1) on nthreads threads (the caller's and nthreads -
 * 1 more, started with every signal blocked, so the process's handlers run
 * in the caller's); a thread that cannot be started leaves its share to the
 * others. With one thread, the blocks in order.
 */
static void
run_strata(Schedule *s, int t0, int t1, int nthreads, pthread_t *tid)
{
	size_t		g = (size_t) s->grid->g;
	int			started;

	if (nthreads == 1)
	{
		for (size_t id = (size_t) t0 * g; id < (size_t) t1 * g; id++)
			run_block(s, id);
		return;
	}
	s->t0 = t0;
	s->t1 = t1;
	s->head = s->tail = s->done = 0;
	s->total = (size_t) (t1 - t0) * g;
	for (size_t t = t0; t < (size_t) t1; t++)
		for (size_t b = 0; b < g; b++)
		{
			size_t		id = t * g + b;

			if ((int) t == t0)
			{
				s->deps[id] = 0;
				s->ready[s->tail++] = (uint32_t) id;
			}
			else
				s->deps[id] = s->inv[(t - 1) * g + s->col[id]] == b ? 1 : 2;
		}
	started = lfg_threads_start(tid, nthreads, schedule_worker, s);
	schedule_worker(s);
	lfg_threads_join(tid, started);
}

/*
 * One SGD epoch over every block (see the file header); returns the RMSE of
 * the running predictions. Threads are joined every few strata (at most
 * about STRATUM_RATINGS ratings each run), where the callback, which may
 * raise, checks for interrupts. The error is summed per block, then over
 * the blocks in order, so it does not depend on the threads either.
 */
static double
sgd_epoch(Schedule *s, size_t n, LfgRng *order, uint32_t *sigma,
		  uint32_t *strata, uint32_t *col, uint32_t *inv, int nthreads, pthread_t *tid,
		  const LfgCallbacks *cb)
{
	int			g = s->grid->g;
	double		total = 0.0;
	double		per_stratum = (double) n / g;
	int			run = (int) fmax(1.0, fmin(g, 2.0 * STRATUM_RATINGS / fmax(per_stratum, 1.0)));

	for (int j = 0; j < g; j++)
		sigma[j] = strata[j] = (uint32_t) j;
	lfg_rng_shuffle_u32(order, sigma, (size_t) g);
	lfg_rng_shuffle_u32(order, strata, (size_t) g);
	for (int t = 0; t < g; t++)
		for (int b = 0; b < g; b++)
		{
			uint32_t	c = sigma[(b + strata[t]) % g];

			col[(size_t) t * g + b] = c;
			inv[(size_t) t * g + c] = (uint32_t) b;
		}
	for (int t0 = 0; t0 < g; t0 += run)
	{
		run_strata(s, t0, t0 + run < g ? t0 + run : g, nthreads, tid);
		/* no thread runs now: the callback may raise */
		if (cb && cb->check)
			cb->check(cb->ctx);
	}
	for (size_t id = 0; id < (size_t) g * g; id++)
		total += s->sse[id];
	return sqrt(total / (double) n);
}

/* Are all of m's parameters finite? */
static bool
params_finite(const LfgMfParams *m)
{
	size_t		np = (size_t) m->n_users * m->k,
				nq = (size_t) m->n_items * m->k;
	float		acc = 0.0f;

	/* a NaN or an infinity anywhere makes the product of zeros NaN */
	for (size_t j = 0; j < np; j++)
		acc += 0.0f * m->P[j];
	for (size_t j = 0; j < nq; j++)
		acc += 0.0f * m->Q[j];
	if (m->bu != NULL)
	{
		for (int32_t u = 0; u < m->n_users; u++)
			acc += 0.0f * m->bu[u];
		for (int32_t i = 0; i < m->n_items; i++)
			acc += 0.0f * m->bi[i];
	}
	return isfinite(acc);
}

/* RMSE of the clipped predictions on rows */
static double
rows_rmse(const LfgMfParams *m, const LfgRating *t, size_t n)
{
	double		sse = 0.0;

	for (size_t j = 0; j < n; j++)
	{
		double		e = t[j].r - lfg_mf_predict(m, t[j].u, t[j].i);

		sse += e * e;
	}
	return n > 0 ? sqrt(sse / (double) n) : 0.0;
}

/* Allocate the grid; deal users and items into groups */
static LfgStatus
grid_setup(Grid *G, size_t n, int32_t nu, int32_t ni, const LfgMfOptions *o,
		   const LfgAllocator *a, LfgError *err)
{
	LfgRng		rng;

	G->g = lfg_mf_grid(n, nu, ni, o->factors);
	G->nu = nu;
	G->ni = ni;
	G->unew = lfg_alloc_array(a, (size_t) nu, sizeof(int32_t));
	G->uold = lfg_alloc_array(a, (size_t) nu, sizeof(int32_t));
	G->inew = lfg_alloc_array(a, (size_t) ni, sizeof(int32_t));
	G->iold = lfg_alloc_array(a, (size_t) ni, sizeof(int32_t));
	G->start = lfg_alloc_array(a, (size_t) G->g * G->g + 1, sizeof(size_t));
	if (G->unew == NULL || G->uold == NULL || G->inew == NULL || G->iold == NULL ||
		G->start == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the block grid");
	/* the grouping stream is separate from the others */
	lfg_rng_seed(&rng, o->seed ^ UINT64_C(0x2545F4914F6CDD1D));
	deal_rows(&rng, nu, G->unew, G->uold);
	deal_rows(&rng, ni, G->inew, G->iold);
	return LFG_OK;
}

/* Copy rows of k floats (and biases) from src to dst, row j to row map[j] */
static void
permute_rows(float *dst, const float *src, float *dbias, const float *sbias, int32_t n,
			 size_t k, const int32_t *map)
{
	for (int32_t j = 0; j < n; j++)
	{
		memcpy(dst + (size_t) map[j] * k, src + (size_t) j * k, k * sizeof(float));
		if (dbias != NULL)
			dbias[map[j]] = sbias[j];
	}
}

/* The training copy w of m's parameters in the grid's row order */
static LfgStatus
relabel_params(LfgMfParams *w, const LfgMfParams *m, const Grid *G, const LfgAllocator *a,
			   LfgError *err)
{
	*w = *m;
	w->P = lfg_alloc_array(a, (size_t) m->n_users * m->k, sizeof(float));
	w->Q = lfg_alloc_array(a, (size_t) m->n_items * m->k, sizeof(float));
	w->bu = m->bu ? lfg_alloc_array(a, (size_t) m->n_users, sizeof(float)) : NULL;
	w->bi = m->bi ? lfg_alloc_array(a, (size_t) m->n_items, sizeof(float)) : NULL;
	if (w->P == NULL || w->Q == NULL || (m->bu && (w->bu == NULL || w->bi == NULL)))
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the factor matrices");
	permute_rows(w->P, m->P, w->bu, m->bu, m->n_users, (size_t) m->k, G->unew);
	permute_rows(w->Q, m->Q, w->bi, m->bi, m->n_items, (size_t) m->k, G->inew);
	return LFG_OK;
}

/* Undo the relabelling: parameters back into m, ratings back to their ids */
static void
restore_order(LfgMfParams *m, LfgMfParams *w, const Grid *G, LfgRating *t, size_t n,
			  const LfgAllocator *a)
{
	permute_rows(m->P, w->P, m->bu, w->bu, m->n_users, (size_t) m->k, G->uold);
	permute_rows(m->Q, w->Q, m->bi, w->bi, m->n_items, (size_t) m->k, G->iold);
	for (size_t j = 0; j < n; j++)
	{
		t[j].u = G->uold[t[j].u];
		t[j].i = G->iold[t[j].i];
	}
	lfg_free(a, w->P);
	lfg_free(a, w->Q);
	if (w->bu != NULL)
	{
		lfg_free(a, w->bu);
		lfg_free(a, w->bi);
	}
}

/*
 * Train a model on the n ratings of rows, which it reorders in place (see
 * the file header). On success out holds arrays from a and *train_rmse the
 * RMSE of the final parameters on the training ratings (clipped
 * predictions).
 */
LfgStatus
lfg_mf_train_rows(LfgRating *t, size_t n, int32_t n_users, int32_t n_items,
				  const LfgMfOptions *o, const LfgCallbacks *cb, const LfgAllocator *a,
				  LfgMfParams *out, double *train_rmse, LfgError *err)
{
	LfgStatus	st;
	LfgRng		rng;
	Grid		grid;
	LfgMfParams w;
	size_t	   *next;
	uint32_t   *sigma,
			   *strata,
			   *col,
			   *inv;
	Schedule	sched;
	pthread_t  *tid;
	int			nthreads;

	memset(out, 0, sizeof(*out));
	if ((st = lfg_mf_options_check(o, err)) != LFG_OK)
		return st;
	out->kind = o->kind;
	out->n_users = n_users;
	out->n_items = n_items;
	out->k = o->factors;
	if ((st = check_data(t, n, n_users, n_items, &out->mu, &out->rating_min,
						 &out->rating_max, err)) != LFG_OK)
		return st;
	if ((st = init_params(out, o, a, err)) != LFG_OK)
		return st;
	if (o->warm != NULL)
	{
		if (o->warm->from->k != o->factors)
			return lfg_error(err, LFG_EPARAM, "Train with the factors of the model warm-started from.",
							 "warm start from a model with %d factors into one with %d",
							 o->warm->from->k, o->factors);
		warm_params(out, o->warm);
	}
	if ((st = grid_setup(&grid, n, n_users, n_items, o, a, err)) != LFG_OK)
		return st;
	nthreads = o->parallel < grid.g ? o->parallel : grid.g;
	next = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(size_t));
	sigma = lfg_alloc_array(a, (size_t) grid.g, sizeof(uint32_t));
	strata = lfg_alloc_array(a, (size_t) grid.g, sizeof(uint32_t));
	col = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(uint32_t));
	inv = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(uint32_t));
	sched.sse = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(double));
	sched.deps = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(uint8_t));
	sched.ready = lfg_alloc_array(a, (size_t) grid.g * grid.g, sizeof(uint32_t));
	tid = lfg_alloc_array(a, (size_t) nthreads, sizeof(pthread_t));
	if (next == NULL || sigma == NULL || strata == NULL || col == NULL || inv == NULL ||
		sched.sse == NULL || sched.deps == NULL || sched.ready == NULL || tid == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the block grid");
	if ((st = sort_into_blocks(&grid, t, n, next, cb, a, err)) != LFG_OK)
		return st;
	lfg_free(a, next);
	if ((st = relabel_params(&w, out, &grid, a, err)) != LFG_OK)
		return st;
	sched.m = &w;
	sched.t = t;
	sched.grid = &grid;
	sched.col = col;
	sched.inv = inv;
	sched.lr = (float) o->lr;
	sched.reg = (float) o->reg;
	sched.cb = nthreads == 1 ? cb : NULL;
	pthread_mutex_init(&sched.mu, NULL);
	pthread_cond_init(&sched.cv, NULL);
	/* the order stream is separate from the initialisation stream */
	lfg_rng_seed(&rng, o->seed ^ UINT64_C(0x5DEECE66D));

	for (int epoch = 1; epoch <= o->epochs; epoch++)
	{
		double		rmse = sgd_epoch(&sched, n, &rng, sigma, strata, col, inv, nthreads,
									 tid, cb);

		if (cb && cb->on_epoch)
			cb->on_epoch(cb->ctx, epoch, rmse);
		if (!isfinite(rmse) || (epoch == o->epochs && !params_finite(&w)))
			return lfg_error(err, LFG_EPARAM,
							 "Lower lr (the default is 0.005) or raise reg.",
							 "training diverged at epoch %d with lr %g: the parameters are no longer finite",
							 epoch, o->lr);
	}
	restore_order(out, &w, &grid, t, n, a);
	lfg_free(a, grid.unew);
	lfg_free(a, grid.uold);
	lfg_free(a, grid.inew);
	lfg_free(a, grid.iold);
	lfg_free(a, grid.start);
	lfg_free(a, sigma);
	lfg_free(a, strata);
	pthread_mutex_destroy(&sched.mu);
	pthread_cond_destroy(&sched.cv);
	lfg_free(a, col);
	lfg_free(a, inv);
	lfg_free(a, sched.sse);
	lfg_free(a, sched.deps);
	lfg_free(a, sched.ready);
	lfg_free(a, tid);
	*train_rmse = rows_rmse(out, t, n);
	return LFG_OK;
}

/*
 * Train a model on d, which is left as it is: the ratings are copied into
 * the 12-byte rows lfg_mf_train_rows reorders.
 */
LfgStatus
lfg_mf_train(const LfgRatings *d, const LfgMfOptions *o, const LfgCallbacks *cb,
			 const LfgAllocator *a, LfgMfParams *out, double *train_rmse,
			 LfgError *err)
{
	LfgRating  *t;
	LfgStatus	st;

	memset(out, 0, sizeof(*out));
	if (d->n == 0)
		return lfg_error(err, LFG_EDATA, "Train over a query that returns ratings.",
						 "no ratings to train on");
	t = lfg_alloc_array(a, d->n, sizeof(LfgRating));
	if (t == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the rating order");
	for (size_t j = 0; j < d->n; j++)
		t[j] = (LfgRating) {d->user[j], d->item[j], d->rating[j]};
	st = lfg_mf_train_rows(t, d->n, d->n_users, d->n_items, o, cb, a, out, train_rmse, err);
	lfg_free(a, t);
	if (st == LFG_OK)
		*train_rmse = lfg_mf_rmse(out, d);
	return st;
}

/*
 * Predict a rating for dense indexes u and i; -1 marks an unknown user or
 * item, which falls back to the global mean plus the known bias. The result
 * is clipped to the rating range seen in training.
 */
double
lfg_mf_predict(const LfgMfParams *m, int32_t u, int32_t i)
{
	double		est;

	if (u >= 0 && i >= 0)
	{
		est = lfg_dot(m->P + (size_t) u * m->k, m->Q + (size_t) i * m->k, m->k);
		if (m->bu != NULL)
			est += (double) m->mu + m->bu[u] + m->bi[i];
	}
	else
	{
		est = m->mu;
		if (m->bu != NULL && u >= 0)
			est += m->bu[u];
		if (m->bi != NULL && i >= 0)
			est += m->bi[i];
	}
	if (est < m->rating_min)
		est = m->rating_min;
	if (est > m->rating_max)
		est = m->rating_max;
	return est;
}

/* RMSE of the clipped predictions on d */
double
lfg_mf_rmse(const LfgMfParams *m, const LfgRatings *d)
{
	double		sse = 0.0;

	for (size_t j = 0; j < d->n; j++)
	{
		double		e = d->rating[j] - lfg_mf_predict(m, d->user[j], d->item[j]);

		sse += e * e;
	}
	return d->n > 0 ? sqrt(sse / (double) d->n) : 0.0;
}
