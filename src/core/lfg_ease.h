/*
 * lfg_ease.h
 *	  EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
 *	  WWW 2019): an item-item weight matrix in closed form over the binary
 *	  matrix of who rated what, and the scores it gives a user.
 */
#ifndef LFG_EASE_H
#define LFG_EASE_H

#include "lfg_core.h"
#include "lfg_mf.h"

#define LFG_EASE_DEFAULT_LAMBDA 500.0
#define LFG_EASE_MAX_LAMBDA		1e9

/*
 * A trained (or decoded) EASE model: B, the popularity prior and what each
 * training user rated (to serve known users).
 */
typedef struct LfgEase
{
	int32_t		n_users;
	int32_t		n_items;
	float	   *B;				/* n_items x n_items, row-major; B[i][i] = 0 */
	float	   *pop;			/* n_items: share of training users who rated the item */
	int64_t    *user_ptr;		/* n_users + 1 offsets into user_items */
	int32_t    *user_items;		/* each user's distinct items, ascending */
	uint64_t	n_rated;		/* user_ptr[n_users] */
} LfgEase;

/* Bytes of B for n_items, or 0 when the count overflows */
extern size_t lfg_ease_matrix_bytes(int32_t n_items);

/*
 * Train on ratings sorted by user, then by item (lfg_fit's canonical
 * order): X is the binary users x items matrix (a pair rated twice counts
 * once), G = X'X + lambda I, P = G^-1 by Cholesky (spotrf, spotri), and
 * B = I - P diag(1 / diag(P)): B[i][j] = -P[i][j] / P[j][j], B[i][i] = 0.
 * cb->check runs between blocks of users, of the factorization and of the
 * inverse (256 rows each), and of the column scaling.
 */
extern LfgStatus lfg_ease_train(const LfgRatings *d, double lambda, const LfgCallbacks *cb,
								const LfgAllocator *a, LfgEase *out, LfgError *err);

/*
 * The catalogue scores of a user who rated the n distinct items (dense
 * indexes; ratings are not needed: x is binary): scores[j] = sum over the
 * rated items i of B[i][j], the rated items included. A user with no rated
 * item (x = 0) gets the popularity prior pop instead, so that their list
 * is the most-rated items rather than every item tied at 0.
 */
extern void lfg_ease_scores(const LfgEase *e, const int32_t *items, int32_t n, float *scores);

/*
 * The score of item i (dense; -1: unknown, score 0) for training user u
 * (dense; -1: unknown, as a user with no rated item)
 */
extern double lfg_ease_predict(const LfgEase *e, int32_t u, int32_t i);

/* Check a decoded model's user lists: offsets, item range and order */
extern bool lfg_ease_lists_valid(const LfgEase *e);

#endif							/* LFG_EASE_H */
