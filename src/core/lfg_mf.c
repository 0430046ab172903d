/*
 * lfg_mf.c
 *	  SVD and BiasSVD trained by stochastic gradient descent.
 *
 * BiasSVD predicts r(u, i) = mu + b_u + b_i + p_u . q_i and SVD predicts
 * p_u . q_i (PAPER.md, "Baselines"). Each epoch visits the ratings in a
 * fresh seeded permutation and applies, per rating with error e,
 *	 b_u += lr (e - reg b_u),  b_i += lr (e - reg b_i)
 *	 p_u += lr (e q_i - reg p_u),  q_i += lr (e p_u - reg q_i)
 * which is the update of the Surprise library's SVD, so its defaults
 * (100 factors, 20 epochs, lr 0.005, reg 0.02, N(0, 0.1) init) carry over.
 */
#include <math.h>
#include <string.h>

#include "lfg_blas.h"
#include "lfg_mf.h"
#include "lfg_rng.h"

#define CHECK_EVERY 8192

/* One rating, packed so that an epoch reads its ratings sequentially */
typedef struct Triple
{
	int32_t		u;
	int32_t		i;
	float		r;
} Triple;

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
	return LFG_OK;
}

/* Check indexes and ratings; compute the mean and the rating range */
static LfgStatus
check_data(const LfgRatings *d, float *mu, float *rmin, float *rmax, LfgError *err)
{
	double		sum = 0.0;
	float		lo = INFINITY,
				hi = -INFINITY;

	if (d->n == 0)
		return lfg_error(err, LFG_EDATA, "Train over a query that returns ratings.",
						 "no ratings to train on");
	if (d->n > UINT32_MAX)
		return lfg_error(err, LFG_ELIMIT, "Train on a sample of the ratings.",
						 "too many ratings: at most %u are supported", UINT32_MAX);
	if (d->n_users < 1 || d->n_users > LFG_MAX_IDS ||
		d->n_items < 1 || d->n_items > LFG_MAX_IDS)
		return lfg_error(err, LFG_ELIMIT, NULL, "user or item count out of range");
	for (size_t j = 0; j < d->n; j++)
	{
		float		r = d->rating[j];

		if (d->user[j] < 0 || d->user[j] >= d->n_users ||
			d->item[j] < 0 || d->item[j] >= d->n_items)
			return lfg_error(err, LFG_EDATA, NULL, "rating %zu has an index out of range", j);
		if (!isfinite(r))
			return lfg_error(err, LFG_EDATA, "Remove NaN and infinite ratings.",
							 "rating %zu is not a finite number", j);
		sum += r;
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	*mu = (float) (sum / (double) d->n);
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

/* Fisher-Yates shuffle of the ratings */
static void
shuffle_triples(LfgRng *rng, Triple *t, size_t n)
{
	for (size_t j = n; j > 1; j--)
	{
		size_t		l = (size_t) lfg_rng_below(rng, j);
		Triple		x = t[j - 1];

		t[j - 1] = t[l];
		t[l] = x;
	}
}

/* One SGD epoch over the ratings in the order given; returns the running RMSE */
static double
sgd_epoch(LfgMfParams *m, const Triple *t, size_t n, float lr, float reg,
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
		float		est = lfg_dot(pu, qi, k);
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
	return sqrt(sse / (double) n);
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

/*
 * Train a model on d. On success out holds arrays from a and *train_rmse the
 * RMSE of the final parameters on the training ratings (clipped predictions).
 */
LfgStatus
lfg_mf_train(const LfgRatings *d, const LfgMfOptions *o, const LfgCallbacks *cb,
			 const LfgAllocator *a, LfgMfParams *out, double *train_rmse,
			 LfgError *err)
{
	LfgStatus	st;
	Triple	   *t;
	LfgRng		rng;

	memset(out, 0, sizeof(*out));
	if ((st = lfg_mf_options_check(o, err)) != LFG_OK)
		return st;
	out->kind = o->kind;
	out->n_users = d->n_users;
	out->n_items = d->n_items;
	out->k = o->factors;
	if ((st = check_data(d, &out->mu, &out->rating_min, &out->rating_max, err)) != LFG_OK)
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

	t = lfg_alloc_array(a, d->n, sizeof(Triple));
	if (t == NULL)
		return lfg_error(err, LFG_ENOMEM, NULL, "out of memory for the rating order");
	for (size_t j = 0; j < d->n; j++)
		t[j] = (Triple) {d->user[j], d->item[j], d->rating[j]};
	/* the order stream is separate from the initialisation stream */
	lfg_rng_seed(&rng, o->seed ^ UINT64_C(0x5DEECE66D));

	for (int epoch = 1; epoch <= o->epochs; epoch++)
	{
		double		rmse;

		shuffle_triples(&rng, t, d->n);
		rmse = sgd_epoch(out, t, d->n, (float) o->lr, (float) o->reg, cb);
		if (cb && cb->on_epoch)
			cb->on_epoch(cb->ctx, epoch, rmse);
		if (!isfinite(rmse) || (epoch == o->epochs && !params_finite(out)))
		{
			lfg_free(a, t);
			return lfg_error(err, LFG_EPARAM,
							 "Lower lr (the default is 0.005) or raise reg.",
							 "training diverged at epoch %d with lr %g: the parameters are no longer finite",
							 epoch, o->lr);
		}
	}
	lfg_free(a, t);
	*train_rmse = lfg_mf_rmse(out, d);
	return LFG_OK;
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
