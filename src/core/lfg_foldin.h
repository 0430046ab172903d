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
/*
 * Held users (option foldin_users, lfg_net.c): drawn among users of at
 * least LFG_FOLDIN_HELD_MIN_RATINGS ratings, used when at least
 * LFG_FOLDIN_HELD_MIN_USERS are drawn; each rating of theirs is held out of
 * training with probability LFG_FOLDIN_HELD_SHARE, and each gives up to
 * LFG_FOLDIN_HELD_ROUNDS episodes per bucket from those (other draws of n
 * and of the revealed ratings)
 */
#define LFG_FOLDIN_HELD_SHARE 0.5
/* the paper preset's foldin_users */
#define LFG_PAPER_FOLDIN_USERS 0.05
#define LFG_FOLDIN_HELD_MIN_RATINGS 2
/*
 * at least this many held users, or none: the choice among 64 candidates on
 * fewer overfits their episodes (ml-100k, 47 held users: at n = 10 one seed
 * of four served new users 0.009 worse than BiasSVD's fold-in)
 */
#define LFG_FOLDIN_HELD_MIN_USERS 100
/*
 * Where foldin_users draws fewer than LFG_FOLDIN_HELD_MIN_USERS, exactly
 * that many are held instead (a seeded choice), when they are at most this
 * share of the users that may be held; else none. Without held users the
 * episodes are the training users', which flatter the generator (ml-100k,
 * 764 users: at 0.05 none held, and the paper preset served n = 5 0.0006
 * worse than BiasSVD's fold-in; 108 held: level with it, and better at n =
 * 10, 20 and half)
 */
#define LFG_FOLDIN_HELD_MAX_SHARE 0.15
#define LFG_FOLDIN_HELD_ROUNDS 8
/* the fold-in the table never loses to: toward zero with reg 5, as BiasSVD's */
#define LFG_FOLDIN_BASE_REG 5.0
/* "reg 0": serve with the model's table (lfg_user_vector) */
#define LFG_FOLDIN_LEARNED	0.0

/*
 * One bucket's choice: the user vector x minimises
 *	 sum_i (r_i - mu - b_i - q_i . p_u - b_u)^2 + reg ||x - (w g + c m + v b)||^2
 * with g the generator's output, m the mean generated vector of the
 * training users (the table's mean) and b the base prior: plain fold-in of
 * the base BiasSVD's item side, mapped into the model's space
 * (LfgFoldinBase); reg infinite (stored as +inf) is x = w g + c m + v b
 * alone. w = c = v = 0 with reg 5 is plain fold-in. The RMSEs are those of
 * the held-out episodes (NaN when the bucket had too few and copied the
 * choice of the bucket below).
 */
typedef struct LfgFoldinEntry
{
	float		prior;			/* w: the generator's weight in the prior, 0 .. 1 */
	float		center;			/* c: the mean user's weight, 0 .. 1 - w - v */
	float		reg;			/* > 0, or +inf */
	float		rmse;			/* of this choice */
	float		rmse_foldin;	/* plain fold-in: w 0, c 0, reg 5 */
	float		rmse_generator; /* the generator alone: w 1, reg inf */
	float		rmse_refine;	/* w 1, reg 5: lfg 0.1's served default */
	float		rmse_mean;		/* the mean user alone: c 1, reg inf */
	float		rmse_biassvd;	/* plain fold-in of the base BiasSVD, or NaN */
	float		base;			/* v: the base prior's weight, 0 .. 1 - w - c (0 before 0.2.0's FBAS) */
	uint32_t	targets;		/* held-out ratings scored */
	uint32_t	episodes;		/* users */
	uint32_t	side;			/* LFG_FOLDIN_SIDE_MODEL, _BASE or _BLEND: see below */
} LfgFoldinEntry;

/*
 * Where a bucket's predicted ratings come from. LFG_FOLDIN_SIDE_BASE: the
 * BiasSVD of FBAS predicts them by itself, its plain fold-in (reg 5)
 * scored by its own item side (mu0, b_i0, Q0 of FBAS), with no map into
 * the model's space and none of the map's loss (lfg_rating_vector).
 * LFG_FOLDIN_SIDE_BLEND: the mean of the model's prediction (the entry's
 * fold-in) and that BiasSVD's, each clipped: two models whose errors
 * differ. Either way the entry's prior, center, base and reg still give
 * the user's vector in the model's space: the one lists are ordered by
 * (without a ranking head), lfg_user_factors returns and known users are
 * stored as.
 */
#define LFG_FOLDIN_SIDE_MODEL 0
#define LFG_FOLDIN_SIDE_BASE 1
#define LFG_FOLDIN_SIDE_BLEND 2

/*
 * As stored (section FOLD, doc/model-format.md): 8 + 8 * 52 bytes, then
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

/*
 * Whether a decoded table's values are in range for k factors (the
 * decoder's check); has_base: the model has the section FBAS, without
 * which no bucket may weigh the base prior
 */
extern bool lfg_foldin_table_valid(const LfgFoldinTable *t, int32_t k, bool has_base);

/* Whether some bucket of t weighs the base prior (v > 0) or predicts on the base side */
extern bool lfg_foldin_uses_base(const LfgFoldinTable *t);

/*
 * The base prior (section FBAS, doc/model-format.md): the item side of a
 * BiasSVD trained on the model's training ratings with k0 factors
 * (base_factors: by default lfg's default BiasSVD; with k0 = k the one the
 * model was pretrained from) (mu0, b_i0, Q0), and the affine map x = T x0
 * + t from its user space into the model's: the least-squares fit, over
 * the items weighted by their training ratings, of the model's
 * predictions to the BiasSVD's. Plain fold-in of a new user on that item
 * side (x0, k0 + 1 values), mapped, is the base prior b. Stored only when
 * a bucket weighs it or predicts on its side (an item side trained for
 * known users can serve new users worse than a plain BiasSVD).
 */
typedef struct LfgFoldinBase
{
	uint32_t	n_items;
	uint32_t	k;				/* the model's */
	float		mu;				/* mu0 */
	uint32_t	k0;				/* the BiasSVD's factors, 1 .. LFG_MAX_FACTORS */
	float		data[];			/* T ((k + 1) x (k0 + 1), row major), t (k + 1), b_i0 (n_items), Q0 (n_items x k0) */
} LfgFoldinBase;

#define LFG_FOLDIN_BASE_SIZE(ni, k, k0) \
	((uint64_t) sizeof(LfgFoldinBase) + 4 * (((uint64_t) (k) + 1) * ((uint64_t) (k0) + 2) + \
											 (uint64_t) (ni) * ((uint64_t) (k0) + 1)))

/* The map T and t, and the BiasSVD view (mu0, b_i0, Q0, the model's rating range) of b */
extern const float *lfg_foldin_base_T(const LfgFoldinBase *b);
extern const float *lfg_foldin_base_t(const LfgFoldinBase *b);
extern void lfg_foldin_base_view(const LfgFoldinBase *b, const LfgMfParams *mf, LfgMfParams *view);

/*
 * Whether a decoded FBAS section is consistent and finite for n_items
 * items and k factors (its k0 is read before: LFG_FOLDIN_BASE_SIZE)
 */
extern bool lfg_foldin_base_valid(const LfgFoldinBase *b, int32_t n_items, int32_t k);

/*
 * The candidates a bucket chooses among, in order of preference on ties:
 * plain fold-in first. (w, c, v) is one of (0, 0, 0), (0.5, 0, 0), (1, 0,
 * 0), (0, 1, 0), (0.5, 0.5, 0), (0, 0, 1), (0.5, 0, 0.5), (0, 0.5, 0.5);
 * reg one of 5, 0.5, 1, 2, 10, 20, 50, inf.
 */
#define LFG_FOLDIN_CANDIDATES 64
extern void lfg_foldin_candidate(int cand, double *w, double *c, double *v, double *reg);

/*
 * The choice of a bucket from its candidates' squared errors over targets
 * held-out ratings: the smallest, or (fewer than LFG_FOLDIN_MIN_TARGETS)
 * the fallback (*e's prior, center, base, reg and side on entry). Fills
 * e. sse has LFG_FOLDIN_SSE entries: the candidates' on the model's side,
 * then BiasSVD's plain fold-in (NaN when not measured), recorded, then
 * each candidate's blended with it (LFG_FOLDIN_SIDE_BLEND; NaN when not
 * measured). With offer_side the bucket's ratings are predicted by the
 * BiasSVD (LFG_FOLDIN_SIDE_BASE, rmse its RMSE) when it is strictly
 * smaller than every candidate's, or by the best blend (its candidate
 * chosen) when that is strictly smaller than both.
 */
#define LFG_FOLDIN_SSE (2 * LFG_FOLDIN_CANDIDATES + 1)
extern void lfg_foldin_choose(const double *sse, uint64_t targets, uint32_t episodes,
							  bool offer_side, LfgFoldinEntry *e);

/*
 * The RMSE that e's choice is measured against: the smaller of plain
 * fold-in of the model's own item side and (when measured) of BiasSVD's
 */
extern double lfg_foldin_baseline(const LfgFoldinEntry *e);

struct LfgModel;
struct LfgUsers;

/*
 * Training users' ratings split in two (CSR by dense user): the revealed
 * side of an episode is drawn from tr, the scored side is va. With held
 * (not NULL), the users it marks have part of their ratings held out of
 * training, in va: the episodes are then theirs only, n revealed from va
 * and the rest of va scored.
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
	const uint8_t *held;
} LfgFoldinLists;

/*
 * Build the base prior of model mf (kind lfg) from base, a BiasSVD item
 * side (base->k factors: k0) trained on the same ratings, the items
 * weighted by their ratings in the lists' tr side; out has room for
 * LFG_FOLDIN_BASE_SIZE(n_items, k, k0) bytes.
 * *ok is false when the map's system is singular (then there is no base
 * prior, and out is left as it was).
 */
extern LfgStatus lfg_foldin_base_build(const LfgMfParams *mf, const LfgMfParams *base,
									   const LfgFoldinLists *l, const LfgAllocator *a,
									   LfgFoldinBase *out, bool *ok, LfgError *err);

/*
 * Choose every bucket's fold-in for model m (kind lfg: mf and net set) from
 * seeded episodes: for up to LFG_FOLDIN_MAX_USERS users per bucket, n of
 * their tr ratings revealed (n drawn within the bucket), their va ratings
 * scored by every candidate and, when base is not NULL, by plain fold-in
 * of the base BiasSVD itself for comparison. The candidates that weigh the
 * base prior are chosen only with base and offer_base (without, the choice
 * is that of the 40 others); so is the base side (LFG_FOLDIN_SIDE_BASE).
 * mean (k + 1 values) is the mean user vector; out has room for
 * LFG_FOLDIN_TABLE_SIZE(k) bytes. check(ctx), when not NULL, is called
 * every few dozen episodes.
 */
extern LfgStatus lfg_foldin_select(const struct LfgModel *m, const struct LfgUsers *u,
								   const LfgFoldinLists *l, const float *mean,
								   const LfgFoldinBase *base, bool offer_base, uint64_t seed,
								   void (*check) (void *), void *ctx, const LfgAllocator *a,
								   LfgFoldinTable *out, LfgError *err);

/*
 * The fold-in that serves a new user with n ratings: the weights w of the
 * generator's output, c of the mean user and v of the base prior in the
 * prior, and reg (+inf: the prior alone). reg LFG_FOLDIN_LEARNED is the
 * model's table (kind lfg with a table, refine on), else 5; refine off is
 * the generator alone; SVD and BiasSVD fold in toward zero.
 */
extern void lfg_foldin_served(const struct LfgModel *m, int32_t n, double reg, bool refine,
							  double *w, double *c, double *v, double *reg_out);

/*
 * Where that fold-in's predicted ratings come from (LFG_FOLDIN_SIDE_*):
 * the base or blend side only with the model's table (reg
 * LFG_FOLDIN_LEARNED, refine) and FBAS, else the model's
 */
extern uint32_t lfg_foldin_side(const struct LfgModel *m, int32_t n, double reg, bool refine);

/*
 * The prior w g + c mean + v b of lfg_foldin_served in place of g (k + 1
 * values); b, the base prior, is read only when v is not 0
 */
extern void lfg_foldin_prior(const struct LfgModel *m, double w, double c, double v,
							 const float *b, float *g);

/*
 * The base prior b (k + 1 values) from x0 (k0 + 1 values), a new user's
 * plain fold-in on the base item side: T x0 + t
 */
extern void lfg_foldin_base_map(const LfgFoldinBase *base, const float *x0, float *b);

/*
 * The most values a new user's vector of m has: k + 1, or k0 + 1 where
 * m has FBAS with more factors (its plain fold-in x0, lfg_rating_vector)
 */
extern int32_t lfg_foldin_vector_dim(const struct LfgModel *m);

#endif							/* LFG_FOLDIN_H */
