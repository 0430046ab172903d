/*
 * lfg_net.h
 *	  The LFG model: item side from (Bias)SVD, the generator for the user
 *	  side, and its training (PAPER.md "The model").
 */
#ifndef LFG_NET_H
#define LFG_NET_H

#include "lfg_core.h"
#include "lfg_foldin.h"
#include "lfg_gen.h"
#include "lfg_mf.h"

#define LFG_INPUT_RAW		0	/* the paper: rating values of the rated items */
#define LFG_INPUT_CENTERED	1	/* (r - mu - b_i)/sqrt(n), 1/sqrt(n), log1p(n) */

#define LFG_INIT_SVD		0
#define LFG_INIT_RANDOM		1

#define LFG_WEIGHT_DECAY_AUTO (-1.0)	/* 240 / max(training ratings, 20,000) */
/* 0.5 + 0.2 log2(40,000 / training ratings), within 0.5 .. 0.7 */
#define LFG_DROPOUT_AUTO	(-1.0)

/*
 * The ranking stage keeps the mean of its weights over this fraction of
 * its epochs, the last ones (61 to 120 by default; lfg_net.c,
 * train_ranking)
 */
#define LFG_RANK_AVERAGE	0.5

#define LFG_MAX_AVERAGE_STEPS 1000000

/*
 * The new_user preset's popularity_prior: on MovieLens-100k's ranking split
 * (test/bench/ranking.sh) P@10 of the served list peaked between 2 and 3
 */
#define LFG_NEW_USER_POPULARITY_PRIOR 3.0

/*
 * The new_user preset's rank_weight (with rank_epochs 120 and rank_lr
 * 0.001): the values the ranking preset of 0.2.0's first draft was tuned to
 * on the same ml-100k split, kept for the ranking stage
 */
#define LFG_NEW_USER_RANK_WEIGHT 3.0

/*
 * The new_user preset's average_steps: early stopping validates and keeps
 * a moving average of the weights over about 400 Adam steps (50 epochs of
 * ml-100k u1, 8 of ml-1m): over 5 seeds on ml-100k u1 its test RMSE then
 * spread 0.003 instead of 0.015 (doc/lfg.md, "Seeds")
 */
#define LFG_NEW_USER_AVERAGE_STEPS 400

#define LFG_PRESET_PAPER	0
#define LFG_PRESET_NEW_USER 1
#define LFG_PRESET_RANKING	2	/* 0.2.0: the same as new_user (doc/lfg.md, "Ranking") */

typedef struct LfgNetOptions
{
	int			preset;
	int			factors;
	int			h1;
	int			h2;
	int			epochs;
	int			patience;		/* 0: no early stopping */
	int			lr_decays;		/* times lr is cut at a plateau before stopping */
	double		lr_decay;		/* factor applied to lr at a plateau */
	double		lr;
	int			batch_size;
	double		mask_prob;
	double		dropout;
	double		weight_decay;
	double		leaky_slope;
	uint64_t	seed;
	double		val_fraction;
	double		foldin_users;	/* share of users half of whose ratings are held out for the fold-in episodes */
	bool		batchnorm;
	bool		aux;			/* demographics as input */
	int			init;			/* LFG_INIT_SVD or LFG_INIT_RANDOM */
	bool		train_items;	/* Q and b_i trained jointly, else frozen */
	int			input;			/* LFG_INPUT_RAW or LFG_INPUT_CENTERED */
	bool		episodes;		/* reveal a random subset, loss on the rest */
	double		revealed_weight;	/* loss weight of revealed ratings */
	int			pretrain_epochs;	/* BiasSVD pretraining */
	int			base_factors;	/* the BiasSVD of the fold-in's base prior (lfg_foldin.h) */
	int			parallel;		/* threads of the training; not stored */
	double		popularity_prior;	/* ranking prior weight on ln(1 + raters); 0: none */
	double		rank_weight;	/* weight of the multinomial ranking term; 0: none */
	int			rank_epochs;	/* epochs of the ranking stage (rank_weight > 0) */
	double		rank_lr;		/* its Adam learning rate */
	int			average_steps;	/* horizon in Adam steps of the weights' moving average; 0: none */
	bool		verbose;
	const LfgWarmStart *warm;	/* NULL: a fresh start */
} LfgNetOptions;

/* Per-user demographics, dense user index order */
typedef struct LfgUsers
{
	int32_t		n_users;
	const float *age;			/* NaN: missing */
	const int32_t *gender;		/* -1: missing or unseen */
	const int32_t *job;
	int32_t		n_genders;
	int32_t		n_jobs;
} LfgUsers;

/* A trained (or decoded) LFG model's generator side */
typedef struct LfgNet
{
	LfgGenConfig gen;
	LfgGenLayout layout;
	int32_t		input;
	int32_t		aux;
	int32_t		n_genders;
	int32_t		n_jobs;
	float		age_mean;
	float		age_std;
	float	   *theta;			/* layout.total */
	float	   *running;		/* layout.n_running */
	/*
	 * 0.2.0, or NULL: the ranking generator (same layout), trained with the
	 * ranking head (rank_weight > 0): lists are ordered by the head's
	 * scores of its output, ratings predicted from the generator above
	 */
	float	   *rank_theta;
	float	   *rank_running;
	const LfgFoldinTable *foldin;	/* the learned fold-in, or NULL (lfg_foldin.h) */
	const LfgFoldinBase *foldin_base;	/* its base prior, or NULL (lfg_foldin.h) */
} LfgNet;

/*
 * Whether an earlier LFG model's generator can start one with this
 * configuration: same hidden sizes, factors, input channels and BatchNorm
 */
extern bool lfg_net_warm_compatible(const LfgNet *old, const LfgNetOptions *o);

typedef struct LfgNetStats
{
	int			epochs_run;
	int			best_epoch;
	double		best_val_rmse;	/* NaN without a validation slice */
	double		train_rmse;
	double		seconds_per_epoch;
	double		flops_per_epoch;
	double		pretrain_seconds;
	double		weight_decay;	/* the value used ("auto" resolved) */
	double		dropout;		/* the value used ("auto" resolved) */
	double		rank_seconds;	/* the ranking stage, 0 without one */
	double		foldin_seconds; /* choosing the learned fold-in (lfg_foldin.c) */
	int32_t		foldin_users;	/* users half of whose ratings were held out for its episodes */
	double		store_seconds;	/* storing every user as served (lfg_net.c) */
	int32_t		store_kept;		/* users whose fold-in failed: generated vector kept */
} LfgNetStats;

/* Epoch report: epoch, training loss RMSE, validation RMSE, elapsed seconds */
typedef void (*LfgNetEpochFn) (void *ctx, int epoch, double train_rmse,
							   double val_rmse, double seconds);

typedef struct LfgNetCallbacks
{
	LfgNetEpochFn on_epoch;
	LfgCheckFn	check;
	void	   *ctx;
	LfgEpochFn	on_pretrain_epoch;	/* each epoch of the BiasSVD pretraining, or NULL */
	/*
	 * Whether check would act (an interrupt is pending), without acting: the
	 * training threads are joined for check only then. NULL: they are
	 * joined for check about every LFG_PAR_CHECK_SECONDS.
	 */
	bool		(*pending) (void *ctx);
} LfgNetCallbacks;

/*
 * The training loss of a batch: the weighted mean of (mu + b_u + b_i + p_u .
 * q_i - r)^2 over the targets of each batch row (CSR t_ptr), from generator
 * outputs out (p_u, b_u per row). Fills dout and, when not NULL, adds to dQ
 * and dbi. *wsum receives the sum of the weights.
 */
extern double lfg_net_loss(const LfgMfParams *mf, const float *out, int32_t B,
						   const int32_t *t_ptr, const int32_t *t_item,
						   const float *t_rating, const float *t_weight, float *dout,
						   float *dQ, float *dbi, double *wsum);

/*
 * The multinomial ranking term of a batch (Liang et al., WWW 2018): for each
 * row b, the softmax over the items of s_i = c_i + r_i . p_b (R, c: the
 * ranking head, n_items x k and n_items), the input items of the row
 * (in_ptr, in_idx) masked out, and the mean of -log softmax(s)_i over the
 * row's targets that were not input. Returns weight times the mean over the
 * rows that have such targets and adds its gradient with respect to p_b to
 * dout (rows of k + 1) when dout is not NULL, and with respect to R and c to
 * dR and dc when they are not NULL. S is B x n_items scratch.
 */
extern double lfg_net_rank_loss(int32_t k, int32_t n_items, const float *R, const float *c,
								 const float *out, int32_t B, const int32_t *in_ptr,
								 const int32_t *in_idx, const int32_t *t_ptr,
								 const int32_t *t_item, double weight, float *S, float *dout,
								 float *dR, float *dc);

extern void lfg_net_options_preset(LfgNetOptions *o, int preset);
extern LfgStatus lfg_net_options_check(const LfgNetOptions *o, LfgError *err);
extern int32_t lfg_net_dense_width(int aux, int input, int32_t n_genders, int32_t n_jobs);

/*
 * Train on ratings sorted by user (d) with demographics u. On success mf
 * holds mu, the rating range, Q, b_i and the generated P and b_u of every
 * training user; net holds the generator.
 */
extern LfgStatus lfg_net_train(const LfgRatings *d, const LfgUsers *u,
							   const LfgNetOptions *o, const LfgNetCallbacks *cb,
							   const LfgAllocator *a, LfgMfParams *mf, LfgNet *net,
							   LfgNetStats *stats, LfgError *err);

/* One user's input, for inference */
typedef struct LfgNetUser
{
	int32_t		n;				/* rated items known to the model */
	const int32_t *item;
	const float *rating;
	float		age;			/* NaN: missing */
	int32_t		gender;			/* -1: missing or unseen */
	int32_t		job;
} LfgNetUser;

/* Scratch for single-user inference */
typedef struct LfgNetScratch
{
	LfgGenWork	work;
	float	   *val;			/* 2 per input entry */
	float	   *dense;
	int32_t		cap;
} LfgNetScratch;

extern LfgStatus lfg_net_scratch_alloc(const LfgNet *net, int32_t max_ratings,
									   const LfgAllocator *a, LfgNetScratch *s,
									   LfgError *err);

/* Generate p_u (k values) and b_u for one user (evaluation mode) */
extern void lfg_net_generate(const LfgNet *net, const LfgMfParams *mf,
							 const LfgNetUser *user, LfgNetScratch *s,
							 float *p_out, float *bu_out);

#endif							/* LFG_NET_H */
