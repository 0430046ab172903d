/*
 * lfg_mf.h
 *	  Matrix factorization (SVD and BiasSVD, Funk style) trained by SGD.
 */
#ifndef LFG_MF_H
#define LFG_MF_H

#include "lfg_core.h"

/* Limits and Surprise-compatible defaults */
#define LFG_MIN_FACTORS		1
#define LFG_MAX_FACTORS		1024
#define LFG_DEFAULT_FACTORS 100
#define LFG_MIN_EPOCHS		1
#define LFG_MAX_EPOCHS		10000
#define LFG_DEFAULT_EPOCHS	20
#define LFG_DEFAULT_LR		0.005
#define LFG_MAX_LR			1.0
#define LFG_DEFAULT_REG		0.02
#define LFG_MAX_REG			1000.0
#define LFG_DEFAULT_INIT_STD 0.1
#define LFG_MAX_INIT_STD	10.0
#define LFG_DEFAULT_SEED	42
#define LFG_MAX_IDS			(INT32_MAX / 2)
#define LFG_MAX_PARALLEL	64
/* the block grid of SGD (see lfg_mf_grid): G x G blocks, G in this range */
#define LFG_MF_MIN_GRID		16
#define LFG_MF_MAX_GRID		2048

struct LfgNet;

/*
 * Warm start: an earlier model to start from, its rows mapped by id:
 * user_map[u] and item_map[i] give the row of dense user u and item i in
 * from, or -1 for ones it did not know (they keep the fresh start). Both
 * models have the same number of factors. For lfg_net_train, net and
 * dense_map (the row in the old generator's dense input weights of each new
 * dense input, or -1) also start the generator, when its shapes match.
 */
typedef struct LfgWarmStart
{
	const struct LfgMfParams *from;
	const int32_t *user_map;
	const int32_t *item_map;
	const struct LfgNet *net;
	const int32_t *dense_map;
} LfgWarmStart;

typedef struct LfgMfOptions
{
	int			kind;			/* LFG_KIND_SVD or LFG_KIND_BIASSVD */
	int			factors;
	int			epochs;
	double		lr;
	double		reg;
	double		init_std;
	uint64_t	seed;
	bool		verbose;
	int			parallel;		/* threads, 1..LFG_MAX_PARALLEL; not in the model */
	const LfgWarmStart *warm;	/* NULL: a fresh start */
} LfgMfOptions;

/* One rating with dense indexes, as SGD reads it (12 bytes) */
typedef struct LfgRating
{
	int32_t		u;
	int32_t		i;
	float		r;
} LfgRating;

/* Ratings with dense user and item indexes */
typedef struct LfgRatings
{
	size_t		n;
	int32_t		n_users;
	int32_t		n_items;
	const int32_t *user;
	const int32_t *item;
	const float *rating;
} LfgRatings;

/* Called after each epoch; may raise (longjmp) to cancel training */
typedef void (*LfgEpochFn) (void *ctx, int epoch, double train_rmse);
/* Called every few thousand ratings; may raise to cancel training */
typedef void (*LfgCheckFn) (void *ctx);

typedef struct LfgCallbacks
{
	LfgEpochFn	on_epoch;
	LfgCheckFn	check;
	void	   *ctx;
} LfgCallbacks;

/* The trained parameters; bu and bi are NULL for kind svd */
typedef struct LfgMfParams
{
	int			kind;
	int32_t		n_users;
	int32_t		n_items;
	int32_t		k;
	float		mu;
	float		rating_min;
	float		rating_max;
	float	   *P;				/* n_users x k, row major */
	float	   *Q;				/* n_items x k, row major */
	float	   *bu;
	float	   *bi;
	/*
	 * lfg only, or NULL: a ranking prior per item, added to the raw score
	 * when lists are ordered (not to the predicted rating): popularity_prior
	 * times ln(1 + the item's training raters)
	 */
	float	   *rank_prior;
	/*
	 * lfg only, or NULL (0.2.0, rank_weight > 0): the ranking head, an item
	 * side of its own trained with the ranking generator (LfgNet) by the
	 * multinomial ranking term. Lists are ordered by rank_c_i + rank_R_i .
	 * r_u, r_u the ranking generator's output (rank_P for the training
	 * users); rank_c starts at the ranking prior, so it includes it.
	 * Predictions keep mu + b_u + b_i + p_u . q_i.
	 */
	float	   *rank_R;			/* n_items x k, row major */
	float	   *rank_c;			/* n_items */
	float	   *rank_P;			/* n_users x k: r_u of the training users */
} LfgMfParams;

extern void lfg_mf_options_default(LfgMfOptions *opts);
extern LfgStatus lfg_mf_options_check(const LfgMfOptions *opts, LfgError *err);
extern LfgStatus lfg_mf_train(const LfgRatings *data, const LfgMfOptions *opts,
							  const LfgCallbacks *cb, const LfgAllocator *a,
							  LfgMfParams *out, double *train_rmse,
							  LfgError *err);
extern LfgStatus lfg_mf_train_rows(LfgRating *rows, size_t n, int32_t n_users,
								   int32_t n_items, const LfgMfOptions *opts,
								   const LfgCallbacks *cb, const LfgAllocator *a,
								   LfgMfParams *out, double *train_rmse, LfgError *err);
extern int	lfg_mf_grid(size_t n, int32_t n_users, int32_t n_items, int k);
extern double lfg_mf_predict(const LfgMfParams *m, int32_t u, int32_t i);
extern double lfg_mf_rmse(const LfgMfParams *m, const LfgRatings *data);

#endif							/* LFG_MF_H */
