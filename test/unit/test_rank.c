/*
 * test_rank.c
 *	  Unit tests of the ranking metrics (lfg_rank.c) and of EASE
 *	  (lfg_ease.c), built without PostgreSQL headers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "lfg_ease.h"
#include "lfg_model.h"
#include "lfg_rank.h"
#include "lfg_synth.h"
#include "lfg_net.h"
#include "lfg_blas.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

/* The three metrics of rec against rel at k */
static void
metrics(const int64_t *rec, int64_t n_rec, const int64_t *rel_in, int64_t n_rel, int64_t k,
		double *p, double *r, double *nd)
{
	int64_t    *rel = malloc(sizeof(int64_t) * (size_t) (n_rel + 1));
	uint8_t    *seen = malloc((size_t) n_rel + 1);
	LfgRankCounts c;
	int64_t		m;

	memcpy(rel, rel_in, sizeof(int64_t) * (size_t) n_rel);
	m = lfg_rank_set(rel, n_rel);
	lfg_rank_count(rec, n_rec, rel, m, k, seen, &c);
	*p = lfg_rank_precision(&c, k);
	*r = lfg_rank_recall(&c);
	*nd = lfg_rank_ndcg(&c);
	free(rel);
	free(seen);
}

static void
test_metrics(void)
{
	int64_t		rec[] = {7, 3, 9, 1, 4};
	int64_t		rel[] = {1, 3, 8};
	int64_t		dup[] = {3, 3, 1};
	int64_t		reldup[] = {3, 1, 3, 8, 1};
	double		p,
				r,
				nd,
				dcg,
				idcg;

	/* hits at positions 2 and 4 of the first 5 */
	metrics(rec, 5, rel, 3, 5, &p, &r, &nd);
	dcg = 1.0 / log2(3.0) + 1.0 / log2(5.0);
	idcg = 1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0);
	CHECK(NEAR(p, 2.0 / 5.0) && NEAR(r, 2.0 / 3.0) && NEAR(nd, dcg / idcg),
		  "P@5 %g R@5 %g NDCG@5 %g", p, r, nd);

	/* k = 2: one hit; the ideal DCG has min(2, 3) = 2 terms */
	metrics(rec, 5, rel, 3, 2, &p, &r, &nd);
	CHECK(NEAR(p, 0.5) && NEAR(r, 1.0 / 3.0) &&
		  NEAR(nd, (1.0 / log2(3.0)) / (1.0 + 1.0 / log2(3.0))), "k=2: %g %g %g", p, r, nd);

	/* k beyond the list: missing positions are misses, precision divides by k */
	metrics(rec, 5, rel, 3, 20, &p, &r, &nd);
	CHECK(NEAR(p, 2.0 / 20.0) && NEAR(r, 2.0 / 3.0), "k=20: %g %g", p, r);

	/* a perfect list */
	metrics(rel, 3, rel, 3, 3, &p, &r, &nd);
	CHECK(NEAR(p, 1.0) && NEAR(r, 1.0) && NEAR(nd, 1.0), "perfect: %g %g %g", p, r, nd);

	/* repeats in the list count once, at the first position */
	metrics(dup, 3, rel, 3, 3, &p, &r, &nd);
	dcg = 1.0 + 1.0 / log2(4.0);
	CHECK(NEAR(p, 2.0 / 3.0) && NEAR(r, 2.0 / 3.0) &&
		  NEAR(nd, dcg / (1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0))), "repeats: %g %g %g", p, r, nd);

	/* repeats in the relevant set are one item */
	metrics(rec, 5, reldup, 5, 5, &p, &r, &nd);
	CHECK(NEAR(r, 2.0 / 3.0), "relevant repeats: recall %g", r);

	/* empty list, empty relevant set */
	metrics(rec, 0, rel, 3, 10, &p, &r, &nd);
	CHECK(p == 0.0 && r == 0.0 && nd == 0.0, "empty list: %g %g %g", p, r, nd);
	metrics(rec, 5, rel, 0, 10, &p, &r, &nd);
	CHECK(p == 0.0 && r == 0.0 && nd == 0.0, "nothing relevant: %g %g %g", p, r, nd);

	/* a long random list: every metric within [0, 1], NDCG 1 iff the hits lead */
	{
		int64_t		big[200],
					brel[50];
		uint64_t	s = 12345;

		for (int j = 0; j < 200; j++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			big[j] = (int64_t) (s >> 56);	/* 0..255, with repeats */
		}
		for (int j = 0; j < 50; j++)
			brel[j] = 3 * j;
		for (int k = 1; k <= 200; k += 7)
		{
			metrics(big, 200, brel, 50, k, &p, &r, &nd);
			CHECK(p >= 0 && p <= 1 && r >= 0 && r <= 1 && nd >= 0 && nd <= 1 + 1e-12,
				  "bounds at k=%d: %g %g %g", k, p, r, nd);
		}
	}
}

/* Seeded ratings, sorted by user and item, with a repeated pair */
#define EU 60
#define EI 25

typedef struct EaseData
{
	int32_t		user[EU * EI + 1],
				item[EU * EI + 1];
	float		rating[EU * EI + 1];
	size_t		n;
	uint8_t		x[EU][EI];		/* the binary matrix */
} EaseData;

static void
ease_data(EaseData *d)
{
	uint64_t	s = 99;

	memset(d, 0, sizeof(*d));
	for (int u = 0; u < EU; u++)
		for (int i = 0; i < EI; i++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			/* popular low items, a taste that depends on the user */
			if ((s >> 40) % 100 < (uint64_t) (60 - 2 * i + ((u + i) % 3 == 0 ? 30 : 0)) || i == u % EI)
			{
				d->user[d->n] = u;
				d->item[d->n] = i;
				d->rating[d->n++] = (float) (1 + (s >> 33) % 5);
				d->x[u][i] = 1;
				if (u == 3 && i == u % EI)
				{
					/* the same pair again: X stays binary */
					d->user[d->n] = u;
					d->item[d->n] = i;
					d->rating[d->n++] = 2.0f;
				}
			}
		}
}

/* B from the definition, in double: Gauss-Jordan inverse of X'X + lambda I */
static void
ease_reference(const EaseData *d, double lambda, double *B)
{
	static double G[EI][2 * EI];

	memset(G, 0, sizeof(G));
	for (int i = 0; i < EI; i++)
	{
		for (int j = 0; j < EI; j++)
			for (int u = 0; u < EU; u++)
				G[i][j] += d->x[u][i] * d->x[u][j];
		G[i][i] += lambda;
		G[i][EI + i] = 1.0;
	}
	for (int c = 0; c < EI; c++)
	{
		double		piv = G[c][c];

		for (int j = 0; j < 2 * EI; j++)
			G[c][j] /= piv;
		for (int r = 0; r < EI; r++)
			if (r != c)
			{
				double		f = G[r][c];

				for (int j = 0; j < 2 * EI; j++)
					G[r][j] -= f * G[c][j];
			}
	}
	for (int i = 0; i < EI; i++)
		for (int j = 0; j < EI; j++)
			B[i * EI + j] = i == j ? 0.0 : -G[i][EI + j] / G[j][EI + j];
}

static int	checks_called;

static void
count_check(void *ctx)
{
	(void) ctx;
	checks_called++;
}

static void
test_ease_train(void)
{
	static EaseData d;
	static double ref[EI * EI];
	LfgRatings	r;
	LfgEase		e;
	LfgError	err;
	LfgCallbacks cb = {NULL, count_check, NULL};
	double		worst = 0.0,
				bmax = 0.0;
	float		scores[EI];
	int32_t		items[2] = {1, 4};
	LfgStatus	st;

	ease_data(&d);
	r = (LfgRatings) {d.n, EU, EI, d.user, d.item, d.rating};
	st = lfg_ease_train(&r, 20.0, &cb, &A, &e, &err);
	CHECK(st == LFG_OK, "ease train: %s", err.msg);
	if (st != LFG_OK)
		return;
	CHECK(checks_called >= 3, "interrupt checks between the steps (%d)", checks_called);
	ease_reference(&d, 20.0, ref);
	for (int j = 0; j < EI * EI; j++)
	{
		worst = fmax(worst, fabs(e.B[j] - ref[j]));
		bmax = fmax(bmax, fabs(ref[j]));
	}
	CHECK(worst < 1e-4 * fmax(bmax, 1.0), "B against the double reference: max error %g (max |B| %g)",
		  worst, bmax);
	for (int i = 0; i < EI; i++)
		if (e.B[i * EI + i] != 0.0f)
		{
			CHECK(0, "diagonal of B is not zero at %d", i);
			break;
		}
	/* the repeated pair counts once; popularity is the share of users */
	CHECK(e.n_rated == d.n - 1, "distinct pairs %llu of %zu rows", (unsigned long long) e.n_rated, d.n);
	{
		int			c0 = 0;

		for (int u = 0; u < EU; u++)
			c0 += d.x[u][0];
		CHECK(fabsf(e.pop[0] - (float) c0 / EU) < 1e-6f, "popularity of item 0");
	}
	/* scores: the sum of the rated items' rows; none rated: the popularity prior */
	lfg_ease_scores(&e, items, 2, scores);
	worst = 0.0;
	for (int j = 0; j < EI; j++)
		worst = fmax(worst, fabs(scores[j] - (ref[1 * EI + j] + ref[4 * EI + j])));
	CHECK(worst < 1e-4, "x B for items 1 and 4: max error %g", worst);
	lfg_ease_scores(&e, items, 0, scores);
	CHECK(memcmp(scores, e.pop, sizeof(scores)) == 0, "no rated item: popularity");
	/* known users: the same sums over what they rated */
	{
		double		s = 0.0;

		for (int i = 0; i < EI; i++)
			if (d.x[7][i])
				s += ref[i * EI + 9];
		CHECK(fabs(lfg_ease_predict(&e, 7, 9) - s) < 1e-4, "predict user 7 item 9: %g vs %g",
			  lfg_ease_predict(&e, 7, 9), s);
		CHECK(lfg_ease_predict(&e, -1, 2) == e.pop[2] && lfg_ease_predict(&e, 7, -1) == 0.0,
			  "unknown user or item");
	}
	/* bad arguments */
	CHECK(lfg_ease_train(&r, 0.0, NULL, &A, &e, &err) == LFG_EPARAM, "lambda 0 refused");
	/* user 0 rates items 0 and 1 (see ease_data): swap them */
	CHECK(d.user[1] == 0 && d.item[0] == 0 && d.item[1] == 1, "fixture: user 0 rates 0 and 1");
	d.item[0] = 1;
	d.item[1] = 0;
	CHECK(lfg_ease_train(&r, 20.0, NULL, &A, &e, &err) == LFG_EDATA, "unsorted items refused");
}

/* Encode an EASE model, decode it, and refuse bad lists */
static void
test_ease_codec(void)
{
	static EaseData d;
	static const char opts[] = "{\"kind\": \"ease\", \"lambda\": 20}";
	static const char metr[] = "{\"rows\": 1}";
	int64_t		uids[EU],
				iids[EI];
	LfgRatings	r;
	LfgModel	m,
				back;
	LfgError	err;
	size_t		size;
	uint8_t    *buf;
	uint32_t	c;
	LfgStatus	st;

	ease_data(&d);
	r = (LfgRatings) {d.n, EU, EI, d.user, d.item, d.rating};
	memset(&m, 0, sizeof(m));
	if (lfg_ease_train(&r, 20.0, NULL, &A, &m.ease, &err) != LFG_OK)
	{
		CHECK(0, "ease train: %s", err.msg);
		return;
	}
	for (int j = 0; j < EU; j++)
		uids[j] = 100 + 2 * j;
	for (int j = 0; j < EI; j++)
		iids[j] = -50 + 7 * j;
	m.mf = (LfgMfParams) {LFG_KIND_EASE, EU, EI, 0, 3.0f, 1.0f, 5.0f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
	m.user_ids = uids;
	m.item_ids = iids;
	m.options_json = opts;
	m.options_len = sizeof(opts) - 1;
	m.metrics_json = metr;
	m.metrics_len = sizeof(metr) - 1;
	st = lfg_model_encoded_size(&m, &size, &err);
	CHECK(st == LFG_OK, "ease size: %s", err.msg);
	buf = aligned_alloc(8, (size + 7) & ~(size_t) 7);
	st = lfg_model_encode(&m, crc32c_ref, buf, size, &err);
	CHECK(st == LFG_OK, "ease encode: %s", err.msg);
	st = lfg_model_decode(buf, size, crc32c_ref, &back, &err);
	CHECK(st == LFG_OK, "ease decode: %s", err.msg);
	if (st == LFG_OK)
	{
		CHECK(back.mf.kind == LFG_KIND_EASE && back.mf.k == 0 && back.ease.n_rated == m.ease.n_rated &&
			  memcmp(back.ease.B, m.ease.B, sizeof(float) * EI * EI) == 0 &&
			  memcmp(back.ease.user_items, m.ease.user_items, 4 * m.ease.n_rated) == 0 &&
			  back.mf.P == NULL && back.mf.Q == NULL, "ease round trip");
		CHECK(lfg_ease_predict(&back.ease, 7, 9) == lfg_ease_predict(&m.ease, 7, 9), "decoded predict");
	}
	/* an item index out of range, a decreasing list, a bad offset: refused after the CRC */
	{
		int32_t    *items = (int32_t *) (uintptr_t) back.ease.user_items;
		int64_t    *ptr = (int64_t *) (uintptr_t) back.ease.user_ptr;
		int32_t		save = items[1];
		int64_t		psave = ptr[5];

		items[1] = EI;
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT &&
			  strstr(err.msg, "user lists") != NULL, "item out of range refused: %s", err.msg);
		items[1] = items[0];
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT, "repeat refused");
		items[1] = save;
		ptr[5] = ptr[6] + 1;
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT, "offsets refused");
		ptr[5] = psave;
		((float *) (uintptr_t) back.ease.B)[3] = NAN;
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT, "NaN in B refused");
	}
	/* a factor count in the header of an ease model */
	{
		int32_t		k = 8;

		st = lfg_model_encode(&m, crc32c_ref, buf, size, &err);
		memcpy(buf + 32, &k, 4);
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT, "ease with k = 8 refused");
	}
	/* truncated bytes */
	st = lfg_model_encode(&m, crc32c_ref, buf, size, &err);
	CHECK(lfg_model_decode(buf, size - 8, crc32c_ref, &back, &err) != LFG_OK, "truncated refused");
	free(buf);
}

/*
 * An LFG model's ranking prior and ranking head: the prior computed from
 * the raters; the head's stage leaves the rating model bit for bit as
 * without it; both stored and decoded, each optional
 */
static void
test_rank_prior(void)
{
	static const char opts[] = "{\"kind\": \"lfg\"}";
	static const char metr[] = "{\"rows\": 1}";
	LfgSynthData sd;
	LfgNetOptions o;
	LfgNetStats st;
	LfgUsers	u = {80, NULL, NULL, NULL, 0, 0};
	LfgRatings	r;
	LfgModel	m,
				back,
				plain;
	LfgError	err;
	int64_t		uids[80],
				iids[30];
	uint8_t		vocab[8];
	int			raters[30] = {0};
	double		worst = 0.0;
	size_t		size;
	uint8_t    *buf;

	if (lfg_synth_generate(80, 30, 1000, 3, &A, &sd, &err) != LFG_OK)
	{
		CHECK(0, "synthetic data: %s", err.msg);
		return;
	}
	lfg_net_options_preset(&o, LFG_PRESET_NEW_USER);
	CHECK(o.popularity_prior == LFG_NEW_USER_POPULARITY_PRIOR, "new_user preset has the prior");
	o.h1 = o.h2 = 8;
	o.factors = 4;
	o.epochs = 2;
	o.pretrain_epochs = 2;
	o.rank_epochs = 3;
	o.aux = false;
	CHECK(o.rank_weight == LFG_NEW_USER_RANK_WEIGHT, "new_user preset has the ranking head");
	r = (LfgRatings) {sd.n, 80, 30, sd.user, sd.item, sd.rating};
	memset(&m, 0, sizeof(m));
	memset(&plain, 0, sizeof(plain));
	if (lfg_net_train(&r, &u, &o, NULL, &A, &m.mf, &m.net, &st, &err) != LFG_OK)
	{
		CHECK(0, "train: %s", err.msg);
		return;
	}
	o.rank_weight = 0.0;
	if (lfg_net_train(&r, &u, &o, NULL, &A, &plain.mf, &plain.net, &st, &err) != LFG_OK)
	{
		CHECK(0, "train: %s", err.msg);
		return;
	}
	CHECK(m.mf.rank_R != NULL && m.mf.rank_c != NULL && m.mf.rank_P != NULL &&
		  m.net.rank_theta != NULL && plain.mf.rank_R == NULL && plain.net.rank_theta == NULL,
		  "a ranking head with rank_weight > 0 only");
	CHECK(memcmp(m.mf.P, plain.mf.P, 80 * 4 * sizeof(float)) == 0 &&
		  memcmp(m.mf.bu, plain.mf.bu, 80 * sizeof(float)) == 0 &&
		  memcmp(m.mf.Q, plain.mf.Q, 30 * 4 * sizeof(float)) == 0 &&
		  memcmp(m.mf.bi, plain.mf.bi, 30 * sizeof(float)) == 0 &&
		  memcmp(m.net.theta, plain.net.theta, m.net.layout.total * sizeof(float)) == 0,
		  "the ranking stage leaves the rating model as it is, bit for bit");
	CHECK(memcmp(m.net.theta, m.net.rank_theta, m.net.layout.total * sizeof(float)) != 0 &&
		  memcmp(m.mf.Q, m.mf.rank_R, 30 * 4 * sizeof(float)) != 0,
		  "the ranking stage trains its own generator and item side");
	for (size_t j = 0; j < sd.n; j++)
		if (j == 0 || sd.user[j] != sd.user[j - 1] || sd.item[j] != sd.item[j - 1])
			raters[sd.item[j]]++;
	for (int i = 0; i < 30; i++)
		worst = fmax(worst, fabs(m.mf.rank_prior[i] - 3.0 * log1p(raters[i])));
	CHECK(m.mf.rank_prior != NULL && worst < 1e-5, "prior = 3 ln(1 + raters): max error %g", worst);
	for (int j = 0; j < 80; j++)
		uids[j] = j;
	for (int j = 0; j < 30; j++)
		iids[j] = 10 * j;
	lfg_vocab_write(NULL, NULL, 0, vocab);
	m.user_ids = uids;
	m.item_ids = iids;
	m.vocab_gender = m.vocab_job = vocab;
	m.vocab_gender_len = m.vocab_job_len = sizeof(vocab);
	m.options_json = opts;
	m.options_len = sizeof(opts) - 1;
	m.metrics_json = metr;
	m.metrics_len = sizeof(metr) - 1;
	m.net.foldin = NULL;		/* the learned fold-in's own tests: test_net.c */
	for (int variant = 3; variant >= 0; variant--)
	{
		int			with = variant & 1,
					head = variant >> 1;
		float	   *keep = m.mf.rank_prior,
				   *keep_R = m.mf.rank_R;
		uint32_t	nsec;

		if (!with)
			m.mf.rank_prior = NULL;
		if (!head)
			m.mf.rank_R = NULL;
		CHECK(lfg_model_encoded_size(&m, &size, &err) == LFG_OK, "lfg size: %s", err.msg);
		buf = aligned_alloc(8, (size + 7) & ~(size_t) 7);
		CHECK(lfg_model_encode(&m, crc32c_ref, buf, size, &err) == LFG_OK, "lfg encode: %s", err.msg);
		memcpy(&nsec, buf + 12, 4);
		CHECK(nsec == 13u + (uint32_t) with + (head ? 5u : 0u), "%u sections", nsec);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_OK, "lfg decode: %s", err.msg);
		CHECK(with ? back.mf.rank_prior != NULL &&
			  memcmp(back.mf.rank_prior, keep, 30 * sizeof(float)) == 0 : back.mf.rank_prior == NULL,
			  "prior %s round trip", with ? "with" : "without");
		CHECK(head ? back.mf.rank_R != NULL &&
			  memcmp(back.mf.rank_R, m.mf.rank_R, 30 * 4 * sizeof(float)) == 0 &&
			  memcmp(back.mf.rank_c, m.mf.rank_c, 30 * sizeof(float)) == 0 &&
			  memcmp(back.mf.rank_P, m.mf.rank_P, 80 * 4 * sizeof(float)) == 0 &&
			  memcmp(back.net.rank_theta, m.net.rank_theta, m.net.layout.total * sizeof(float)) == 0 :
			  back.mf.rank_R == NULL && back.mf.rank_c == NULL && back.mf.rank_P == NULL &&
			  back.net.rank_theta == NULL,
			  "ranking head %s round trip", head ? "with" : "without");
		if (head)
		{
			/* the head's sections in another order: refused */
			uint32_t	tag = LFG_SEC_RANK_P,
						c;
			size_t		at = LFG_MODEL_HEADER_SIZE + (13 + (size_t) with + 1) * LFG_MODEL_SECTION_SIZE;

			memcpy(buf + at, &tag, 4);
			c = crc32c_ref(buf, size - 4);
			memcpy(buf + size - 4, &c, 4);
			CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT,
				  "ranking head sections out of order are refused");
		}
		else if (with)
		{
			/* the last entry with another tag: refused */
			uint32_t	tag = LFG_SEC_METRICS,
						c;

			memcpy(buf + LFG_MODEL_HEADER_SIZE + 13 * LFG_MODEL_SECTION_SIZE, &tag, 4);
			c = crc32c_ref(buf, size - 4);
			memcpy(buf + size - 4, &c, 4);
			CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT,
				  "a 14th section that is not the prior is refused");
		}
		m.mf.rank_prior = keep;
		m.mf.rank_R = keep_R;
		free(buf);
	}
}

/* The multinomial ranking term: loss against a direct sum, gradient against finite differences */
static void
test_rank_loss(void)
{
	enum { NI = 12, K = 3, B = 3 };
	float		R[NI * K],
				c[NI],
				out[B * (K + 1)],
				dout[B * (K + 1)],
				dtmp[B * (K + 1)],
				dR[NI * K],
				dc[NI],
				S[B * NI];
	int32_t		in_ptr[B + 1] = {0, 2, 2, 3},
				in_idx[3] = {1, 2, 5},
				t_ptr[B + 1] = {0, 3, 4, 5},
				t_item[5] = {3, 4, 2, 0, 5};
	/* the three arrays a gradient is checked for, with their analytic gradients */
	float	   *param[3] = {out, R, c},
			   *grad[3] = {dout, dR, dc};
	int			len[3] = {B * (K + 1), NI * K, NI};
	uint64_t	st = 5;
	double		L,
				ref = 0.0,
				worst = 0.0;

#define RND() ((st = st * 6364136223846793005ULL + 1442695040888963407ULL), ((double) (st >> 11) / 9007199254740992.0) - 0.5)
	for (int j = 0; j < NI * K; j++)
		R[j] = (float) RND();
	for (int j = 0; j < NI; j++)
		c[j] = (float) (2.0 * RND());
	for (int j = 0; j < B * (K + 1); j++)
		out[j] = (float) RND();
	memset(dout, 0, sizeof(dout));
	memset(dR, 0, sizeof(dR));
	memset(dc, 0, sizeof(dc));
	L = lfg_net_rank_loss(K, NI, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, 0.7, S, dout, dR, dc);
	/* row 0: targets 3 and 4 (2 was input), items 1 and 2 masked; row 1: target 0; row 2: none */
	for (int b = 0; b < 2; b++)
	{
		double		z = 0.0,
					sv[NI];

		for (int i = 0; i < NI; i++)
		{
			sv[i] = c[i];
			for (int f = 0; f < K; f++)
				sv[i] += (double) R[i * K + f] * out[b * (K + 1) + f];
			if (!(b == 0 && (i == 1 || i == 2)))
				z += exp(sv[i]);
		}
		ref += b == 0 ? log(z) - (sv[3] + sv[4]) / 2 : log(z) - sv[0];
	}
	ref *= 0.7 / 2;
	CHECK(fabs(L - ref) < 1e-4, "ranking loss %g against %g", L, ref);
	for (int a = 0; a < 3; a++)
		for (int j = 0; j < len[a]; j++)
		{
			float		keep = param[a][j];
			double		lp,
						lm,
						num;

			param[a][j] = keep + 1e-2f;
			lp = lfg_net_rank_loss(K, NI, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, 0.7, S,
								   NULL, NULL, NULL);
			param[a][j] = keep - 1e-2f;
			lm = lfg_net_rank_loss(K, NI, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, 0.7, S,
								   NULL, NULL, NULL);
			param[a][j] = keep;
			num = (lp - lm) / 2e-2;
			worst = fmax(worst, fabs(num - grad[a][j]) / fmax(1e-2, fabs(num) + fabs(grad[a][j])));
		}
	CHECK(worst < 1e-2, "ranking term gradient check: max relative error %.2e", worst);
	printf("  gradient check multinomial ranking term (p_u, R and c)     max error %.2e (relative; 1e-2 = tolerance)\n", worst);
	CHECK(dout[2 * (K + 1)] == 0.0f && dout[K] == 0.0f, "no gradient for a row without targets, nor for b_u");
	/* without dout, dR and dc the loss is the same and nothing is written */
	memcpy(dtmp, dout, sizeof(dout));
	CHECK(fabs(lfg_net_rank_loss(K, NI, R, c, out, B, in_ptr, in_idx, t_ptr, t_item, 0.7, S,
								 NULL, NULL, NULL) - L) < 1e-9 && memcmp(dtmp, dout, sizeof(dout)) == 0,
		  "ranking loss without gradients");
#undef RND
}

/* The blocked factorization and inverse against LAPACK's spotrf + spotri */
static void
test_blocked_inverse(void)
{
	enum { N = 37 };
	static float G[N * N],
				a[N * N],
				b[N * N];
	uint64_t	st = 11;
	double		worst = 0.0,
				big = 0.0;
	int			calls = 0;

	for (int i = 0; i < N; i++)
		for (int j = 0; j <= i; j++)
		{
			st = st * 6364136223846793005ULL + 1442695040888963407ULL;
			G[i * N + j] = G[j * N + i] = (float) ((double) (st >> 40) / (1 << 24) - 0.5);
		}
	for (int i = 0; i < N; i++)
		G[i * N + i] += (float) N;	/* diagonally dominant: positive definite */
	for (int nb = 1; nb <= 40; nb += nb < 8 ? 7 : 16)
	{
		memcpy(a, G, sizeof(G));
		memcpy(b, G, sizeof(G));
		CHECK(lfg_spd_factor(N, a) == 0 && lfg_spd_invert_factored(N, a) == 0, "LAPACK inverse");
		CHECK(lfg_spd_factor_blocked(N, b, nb, count_check, NULL) == 0 &&
			  lfg_spd_invert_factored_blocked(N, b, nb, count_check, NULL) == 0, "blocked inverse, nb %d", nb);
		/* compare the triangle both write (row-major upper) */
		for (int i = 0; i < N; i++)
			for (int j = i; j < N; j++)
			{
				worst = fmax(worst, fabs(a[i * N + j] - b[i * N + j]));
				big = fmax(big, fabs(a[i * N + j]));
			}
		calls++;
	}
	CHECK(worst < 1e-5 * big, "blocked inverse equals spotri's within %g (max |P| %g)", worst, big);
	memcpy(b, G, sizeof(G));
	b[5 * N + 5] = -1.0f;
	CHECK(lfg_spd_factor_blocked(N, b, 8, NULL, NULL) == 6, "not positive definite: info 6");
	(void) calls;
}

int
main(void)
{
	test_metrics();
	test_ease_train();
	test_ease_codec();
	test_rank_prior();
	test_rank_loss();
	test_blocked_inverse();
	return report_results();
}
