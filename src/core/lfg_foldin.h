/*
 * lfg_foldin.h
 *	  The learned fold-in of an LFG model: for each bucket of n (the
 *	  ratings a new user gives), the weight of the generator's output in the
 *	  served fold-in, chosen at training time on held-out episodes
 *	  (lfg_foldin.c; doc/lfg.md, "New users").
 */
#ifndef LFG_FOLDIN_H
#define LFG_FOLDIN_H

#include "lfg_core.h"
#include "lfg_mf.h"

/*
 * Buckets of n: 0, 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64 and more
 * (lfg_foldin_bucket)
 */
#define LFG_FOLDIN_BUCKETS	8
/* a bucket chooses its own fold-in from at least this many held-out ratings */
#define LFG_FOLDIN_MIN_TARGETS 100
/* at most this many users' episodes per bucket */
#define LFG_FOLDIN_MAX_USERS 2000
/* the fold-in the table never loses to: toward zero with reg 5, as BiasSVD's */
#define LFG_FOLDIN_BASE_REG 5.0
/* "reg 0": serve with the model's table (lfg_user_vector) */
#define LFG_FOLDIN_LEARNED	0.0

/*
 * One bucket's choice: the user vector x minimises
 *	 sum_i (r_i - mu - b_i - q_i . p_u - b_u)^2 + reg ||x - (w g + c m)||^2
 * with g the generator's output and m the mean generated vector of the
 * training users (the table's mean); reg infinite (stored as +inf) is x =
 * w g + c m alone. w = c = 0 with reg 5 is plain fold-in. The RMSEs are
 * those of the held-out episodes (NaN when the bucket had too few and
 * copied the choice of the bucket below).
 */
typedef struct LfgFoldinEntry
{
	float		prior;			/* w: the generator's weight in the prior, 0 .. 1 */
	float		center;			/* c: the mean user's weight, 0 .. 1 - w */
	float		reg;			/* > 0, or +inf */
	float		rmse;			/* of this choice */
	float		rmse_foldin;	/* plain fold-in: w 0, c 0, reg 5 */
	float		rmse_generator; /* the generator alone: w 1, reg inf */
	float		rmse_refine;	/* w 1, reg 5: lfg 0.1's served default */
	float		rmse_mean;		/* the mean user alone: c 1, reg inf */
	float		rmse_biassvd;	/* plain fold-in of the pretrained BiasSVD, or NaN */
	uint32_t	reserved;		/* 0 */
	uint32_t	targets;		/* held-out ratings scored */
	uint32_t	episodes;		/* users */
} LfgFoldinEntry;

/*
 * As stored (section FOLD, doc/model-format.md): 8 + 8 * 48 bytes, then
 * the mean user vector (k1 floats)
 */
typedef struct LfgFoldinTable
{
	uint32_t	n_buckets;		/* LFG_FOLDIN_BUCKETS */
	uint32_t	k1;				/* the model's k + 1 */
	LfgFoldinEntry e[LFG_FOLDIN_BUCKETS];
	float		mean[];			/* k1: the mean generated (p_u, b_u) */
} LfgFoldinTable;

#define LFG_FOLDIN_TABLE_SIZE(k) ((uint64_t) sizeof(LfgFoldinTable) + 4 * ((uint64_t) (k) + 1))

/* The bucket of a user with n ratings */
extern int	lfg_foldin_bucket(int32_t n);

/* The smallest n of bucket b */
extern int32_t lfg_foldin_bucket_min(int b);

/* Whether a decoded table's values are in range for k factors (the decoder's check) */
extern bool lfg_foldin_table_valid(const LfgFoldinTable *t, int32_t k);

/*
 * The candidates a bucket chooses among, in order of preference on ties:
 * plain fold-in first. (w, c) is one of (0, 0), (0.5, 0), (1, 0), (0, 1),
 * (0.5, 0.5); reg one of 5, 0.5, 1, 2, 10, 20, 50, inf.
 */
#define LFG_FOLDIN_CANDIDATES 40
extern void lfg_foldin_candidate(int cand, double *w, double *c, double *reg);

/*
 * The choice of a bucket from its candidates' squared errors over targets
 * held-out ratings: the smallest, or (fewer than LFG_FOLDIN_MIN_TARGETS)
 * the fallback (*e's prior, center and reg on entry). Fills e. sse has
 * LFG_FOLDIN_CANDIDATES + 1 entries: the last is BiasSVD's plain fold-in
 * (NaN when not measured), which is recorded, never chosen.
 */
extern void lfg_foldin_choose(const double *sse, uint64_t targets, uint32_t episodes,
							  LfgFoldinEntry *e);

/*
 * The RMSE that e's choice is measured against: the smaller of plain
 * fold-in of the model's own item side and (when measured) of BiasSVD's
 */
extern double lfg_foldin_baseline(const LfgFoldinEntry *e);

struct LfgModel;
struct LfgUsers;

/*
 * Training users' ratings split in two (CSR by dense user): the revealed
 * side of an episode is drawn from tr, the scored side is va
 */
typedef struct LfgFoldinLists
{
	int32_t		n_users;
	const int32_t *tr_ptr;
	const int32_t *tr_item;
	const float *tr_rating;
	const int32_t *va_ptr;
	const int32_t *va_item;
	const float *va_rating;
} LfgFoldinLists;

/*
 * Choose every bucket's fold-in for model m (kind lfg: mf and net set) from
 * seeded episodes: for up to LFG_FOLDIN_MAX_USERS users per bucket, n of
 * their tr ratings revealed (n drawn within the bucket), their va ratings
 * scored by every candidate and, when base is not NULL, by plain fold-in
 * of base (a BiasSVD item side: mu, Q, b_i and the rating range) for
 * comparison. mean (k + 1 values) is the mean user vector;
 * out has room for LFG_FOLDIN_TABLE_SIZE(k) bytes. check(ctx), when not
 * NULL, is called every few dozen episodes.
 */
extern LfgStatus lfg_foldin_select(const struct LfgModel *m, const struct LfgUsers *u,
								   const LfgFoldinLists *l, const float *mean,
								   const LfgMfParams *base, uint64_t seed,
								   void (*check) (void *), void *ctx, const LfgAllocator *a,
								   LfgFoldinTable *out, LfgError *err);

/*
 * The fold-in that serves a new user with n ratings: the weights w of the
 * generator's output and c of the mean user in the prior, and reg (+inf:
 * the prior alone). reg LFG_FOLDIN_LEARNED is the model's table (kind lfg
 * with a table, refine on), else 5; refine off is the generator alone;
 * SVD and BiasSVD fold in toward zero.
 */
extern void lfg_foldin_served(const struct LfgModel *m, int32_t n, double reg, bool refine,
							  double *w, double *c, double *reg_out);

/* The prior w g + c mean of lfg_foldin_served in place of g (k + 1 values) */
extern void lfg_foldin_prior(const struct LfgModel *m, double w, double c, float *g);

#endif							/* LFG_FOLDIN_H */
