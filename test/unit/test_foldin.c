/*
 * test_foldin.c
 *	  Unit tests of the learned fold-in (src/core/lfg_foldin.c): buckets,
 *	  the choice among candidates, the table's range checks and codec, the
 *	  selection on a trained model (never worse than plain fold-in on its
 *	  episodes; plain fold-in when the generator is broken) and serving by
 *	  the table. Prints "N passed, N failed" and exits non-zero on any
 *	  failure.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "lfg_foldin.h"
#include "lfg_model.h"
#include "lfg_net.h"
#include "lfg_serve.h"
#include "lfg_synth.h"

/* Buckets: 0, 1, 2-3, 4-7, ..., 64 and more; bucket_min is each one's start */
static void
test_buckets(void)
{
	bool		ok = true;

	CHECK(lfg_foldin_bucket(0) == 0 && lfg_foldin_bucket(1) == 1 && lfg_foldin_bucket(3) == 2 &&
		  lfg_foldin_bucket(4) == 3 && lfg_foldin_bucket(63) == 6 && lfg_foldin_bucket(64) == 7 &&
		  lfg_foldin_bucket(1000000) == 7 && lfg_foldin_bucket(INT32_MAX) == 7,
		  "bucket of n");
	for (int32_t n = 0; n < 300; n++)
	{
		int			b = lfg_foldin_bucket(n);

		ok = ok && lfg_foldin_bucket_min(b) <= n &&
			(b == LFG_FOLDIN_BUCKETS - 1 || n < lfg_foldin_bucket_min(b + 1));
	}
	CHECK(ok, "every n lies in [bucket_min(b), bucket_min(b + 1))");
}

/* The choice: the smallest error, plain fold-in on ties, the fallback without evidence */
static void
test_choose(void)
{
	double		sse[LFG_FOLDIN_SSE],
				prior,
				center,
				vbase,
				reg;
	LfgFoldinEntry e;
	bool		fold = false,
				gen = false,
				mean = false,
				base = false;

	lfg_foldin_candidate(0, &prior, &center, &vbase, &reg);
	CHECK(prior == 0.0 && center == 0.0 && vbase == 0.0 && reg == LFG_FOLDIN_BASE_REG,
		  "candidate 0 is plain fold-in");
	for (int c = 0; c < LFG_FOLDIN_CANDIDATES; c++)
	{
		lfg_foldin_candidate(c, &prior, &center, &vbase, &reg);
		fold = fold || (prior == 0.0 && center == 0.0 && vbase == 0.0 && reg == 5.0);
		gen = gen || (prior == 1.0 && isinf(reg));
		mean = mean || (center == 1.0 && isinf(reg));
		base = base || (vbase == 1.0 && isinf(reg));
		CHECK(prior + center + vbase <= 1.0 && reg > 0.0, "candidate %d in range", c);
	}
	CHECK(fold && gen && mean && base,
		  "plain fold-in, the generator alone, the mean user and the base prior are candidates");
	for (int c = 0; c < LFG_FOLDIN_CANDIDATES; c++)
		sse[c] = 100.0;
	sse[LFG_FOLDIN_CANDIDATES] = NAN;	/* BiasSVD not measured, nor the blends */
	for (int c = LFG_FOLDIN_CANDIDATES + 1; c < LFG_FOLDIN_SSE; c++)
		sse[c] = NAN;
	memset(&e, 0, sizeof(e));
	e.prior = 1.0f;
	e.reg = 2.0f;
	lfg_foldin_choose(sse, 400, 50, false, &e);
	CHECK(e.prior == 0.0f && e.center == 0.0f && e.reg == 5.0f && fabsf(e.rmse - 0.5f) < 1e-6f &&
		  e.rmse == e.rmse_foldin && e.targets == 400 && e.episodes == 50 && isnan(e.rmse_biassvd) &&
		  lfg_foldin_baseline(&e) == e.rmse_foldin, "ties choose plain fold-in");
	sse[LFG_FOLDIN_CANDIDATES] = 16.0;	/* BiasSVD: recorded, chosen only when offered */
	sse[12] = 36.0;
	lfg_foldin_candidate(12, &prior, &center, &vbase, &reg);
	lfg_foldin_choose(sse, 400, 50, false, &e);
	CHECK(e.prior == (float) prior && e.center == (float) center && e.base == (float) vbase &&
		  e.reg == (float) reg && fabsf(e.rmse - 0.3f) < 1e-6f && e.side == LFG_FOLDIN_SIDE_MODEL &&
		  fabsf(e.rmse_foldin - 0.5f) < 1e-6f && fabsf(e.rmse_biassvd - 0.2f) < 1e-6f &&
		  fabs(lfg_foldin_baseline(&e) - 0.2) < 1e-6, "the smallest error wins: prior %g reg %g",
		  e.prior, e.reg);
	lfg_foldin_choose(sse, 400, 50, true, &e);
	CHECK(e.side == LFG_FOLDIN_SIDE_BASE && e.prior == (float) prior && e.center == (float) center &&
		  e.base == (float) vbase && e.reg == (float) reg && e.rmse == e.rmse_biassvd &&
		  fabsf(e.rmse - 0.2f) < 1e-6f && lfg_foldin_baseline(&e) == e.rmse,
		  "offered, BiasSVD's own fold-in predicts when it is the smallest (the base side); "
		  "the best candidate still gives the vector");
	sse[LFG_FOLDIN_CANDIDATES] = 36.0;
	lfg_foldin_choose(sse, 400, 50, true, &e);
	CHECK(e.side == LFG_FOLDIN_SIDE_MODEL && e.prior == (float) prior && e.reg == (float) reg,
		  "a tie with the best candidate stays on the model's side");
	/* the blends: candidate c's predictions and BiasSVD's averaged, at LFG_FOLDIN_CANDIDATES + 1 + c */
	sse[LFG_FOLDIN_CANDIDATES] = 16.0;
	for (int c = LFG_FOLDIN_CANDIDATES + 1; c < LFG_FOLDIN_SSE; c++)
		sse[c] = 49.0;
	sse[LFG_FOLDIN_CANDIDATES + 1 + 40] = 16.0;
	lfg_foldin_choose(sse, 400, 50, true, &e);
	CHECK(e.side == LFG_FOLDIN_SIDE_BASE && e.prior == (float) prior && e.reg == (float) reg,
		  "a blend tied with BiasSVD's fold-in stays on the base side");
	sse[LFG_FOLDIN_CANDIDATES + 1 + 40] = 9.0;
	sse[LFG_FOLDIN_CANDIDATES + 1 + 50] = 9.0;
	lfg_foldin_choose(sse, 400, 50, false, &e);
	CHECK(e.side == LFG_FOLDIN_SIDE_MODEL && e.prior == (float) prior, "blends are chosen only when offered");
	lfg_foldin_choose(sse, 400, 50, true, &e);
	lfg_foldin_candidate(40, &prior, &center, &vbase, &reg);
	CHECK(e.side == LFG_FOLDIN_SIDE_BLEND && e.prior == (float) prior && e.center == (float) center &&
		  e.base == (float) vbase && e.reg == (float) reg && fabsf(e.rmse - 0.15f) < 1e-6f &&
		  fabsf(e.rmse_biassvd - 0.2f) < 1e-6f && lfg_foldin_baseline(&e) == e.rmse_biassvd,
		  "the best blend (the first of a tie) wins when below both sides, and its candidate gives the vector");
	for (int c = LFG_FOLDIN_CANDIDATES + 1; c < LFG_FOLDIN_SSE; c++)
		sse[c] = NAN;
	lfg_foldin_candidate(12, &prior, &center, &vbase, &reg);
	sse[LFG_FOLDIN_CANDIDATES] = 16.0;
	memset(&e, 0, sizeof(e));
	e.prior = 1.0f;
	e.reg = 2.0f;
	e.side = LFG_FOLDIN_SIDE_BASE;
	lfg_foldin_choose(sse, LFG_FOLDIN_MIN_TARGETS - 1, 5, true, &e);
	CHECK(e.prior == 1.0f && e.reg == 2.0f && e.side == LFG_FOLDIN_SIDE_BASE && isnan(e.rmse) &&
		  !isnan(e.rmse_foldin), "too few ratings keep the fallback");
	lfg_foldin_choose(sse, 0, 0, true, &e);
	CHECK(e.prior == 1.0f && isnan(e.rmse_foldin) && isnan(e.rmse_generator), "no episodes: no RMSEs");
}

/* The decoder's range checks of a table */
static void
test_valid(void)
{
	enum {K = 3};
	size_t		size = LFG_FOLDIN_TABLE_SIZE(K);
	LfgFoldinTable *t = calloc(1, size),
			   *bad = calloc(1, size);

	t->n_buckets = LFG_FOLDIN_BUCKETS;
	t->k1 = K + 1;
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
		t->e[b] = (LfgFoldinEntry) {0.5f, 0.5f, b == 3 ? INFINITY : 5.0f, 0.9f, 1.0f, NAN, 1.1f, 1.0f, 0.95f, 0.0f, 10, 2, LFG_FOLDIN_SIDE_MODEL};
	for (int j = 0; j <= K; j++)
		t->mean[j] = j < K ? -0.5f : 0.3f;
	CHECK(size == 8 + 8 * 52 + 4 * (K + 1), "%zu bytes", size);
	CHECK(lfg_foldin_table_valid(t, K, false) && lfg_foldin_table_valid(t, K, true),
		  "a good table is valid");
	CHECK(!lfg_foldin_table_valid(t, K + 1, false), "refused: another k");
	memcpy(bad, t, size);
	bad->e[6].center = 0.0f;
	bad->e[6].base = 0.5f;
	CHECK(lfg_foldin_table_valid(bad, K, true) && !lfg_foldin_table_valid(bad, K, false),
		  "a base weight is valid with the section FBAS only");
	memcpy(bad, t, size);
	bad->e[6].side = LFG_FOLDIN_SIDE_BASE;
	CHECK(lfg_foldin_table_valid(bad, K, true) && !lfg_foldin_table_valid(bad, K, false),
		  "the base side is valid with the section FBAS only");
	bad->e[6].side = LFG_FOLDIN_SIDE_BLEND;
	CHECK(lfg_foldin_table_valid(bad, K, true) && !lfg_foldin_table_valid(bad, K, false),
		  "the blend side is valid with the section FBAS only");
#define BAD(field, value, what) \
	memcpy(bad, t, size); bad->field = value; CHECK(!lfg_foldin_table_valid(bad, K, true), "refused: %s", what)
	BAD(n_buckets, 7, "7 buckets");
	BAD(e[2].prior, 1.5f, "prior above 1");
	BAD(e[2].prior, NAN, "prior NaN");
	BAD(e[2].center, 0.75f, "prior plus center above 1");
	BAD(e[2].center, -0.1f, "negative center");
	BAD(e[2].reg, 0.0f, "reg 0");
	BAD(e[2].reg, -INFINITY, "reg -inf");
	BAD(e[2].reg, NAN, "reg NaN");
	BAD(e[2].reg, 1e7f, "reg above 1e6");
	BAD(e[5].rmse, -1.0f, "negative RMSE");
	BAD(e[5].rmse_refine, INFINITY, "infinite RMSE");
	BAD(e[5].rmse_biassvd, -0.5f, "negative BiasSVD RMSE");
	BAD(e[6].base, 0.25f, "prior plus center plus base above 1");
	BAD(e[6].base, NAN, "base NaN");
	BAD(e[6].side, 3, "side 3");
	BAD(mean[1], 1.5f, "a mean factor above 1");
	BAD(mean[K], NAN, "a NaN mean bias");
#undef BAD
	free(t);
	free(bad);
}

/* Per-user lists: each user's first 80% of ratings tr, the rest va */
static void
split_lists(const LfgSynthData *s, LfgFoldinLists *l)
{
	int32_t    *tp = calloc((size_t) s->n_users + 1, sizeof(int32_t)),
			   *vp = calloc((size_t) s->n_users + 1, sizeof(int32_t)),
			   *ti = malloc(s->n * sizeof(int32_t)),
			   *vi = malloc(s->n * sizeof(int32_t));
	float	   *tr = malloc(s->n * sizeof(float)),
			   *vr = malloc(s->n * sizeof(float));
	size_t		j = 0,
				nt = 0,
				nv = 0;

	for (int32_t u = 0; u < s->n_users; u++)
	{
		size_t		start = j,
					cnt;

		while (j < s->n && s->user[j] == u)
			j++;
		cnt = j - start;
		for (size_t e = start; e < j; e++)
			if (e - start < (cnt * 4 + 4) / 5)
			{
				ti[nt] = s->item[e];
				tr[nt++] = s->rating[e];
			}
			else
			{
				vi[nv] = s->item[e];
				vr[nv++] = s->rating[e];
			}
		tp[u + 1] = (int32_t) nt;
		vp[u + 1] = (int32_t) nv;
	}
	*l = (LfgFoldinLists) {s->n_users, tp, ti, tr, vp, vi, vr, NULL};
}

/*
 * Synthetic data of nu users and ni items (12,000 ratings) and a small
 * paper preset of 8 factors, hidden layers of h, for epochs epochs
 */
static void
small_paper(int32_t nu, int32_t ni, int h, int epochs, LfgSynthData *s, LfgRatings *d,
			LfgNetOptions *o)
{
	LfgError	err;

	CHECK(lfg_synth_generate(nu, ni, 12000, 4, &A, s, &err) == LFG_OK, "synthetic data");
	*d = (LfgRatings) {s->n, nu, ni, s->user, s->item, s->rating};
	lfg_net_options_preset(o, LFG_PRESET_PAPER);
	o->h1 = o->h2 = h;
	o->factors = 8;
	o->epochs = epochs;
	o->lr = 3e-3;
	o->batch_size = 32;
	o->aux = false;
}

/*
 * Train a small LFG model; its table never loses to plain fold-in on its
 * episodes, survives the codec, serves what it says, and a broken generator
 * is given no weight
 */
static void
test_trained(void)
{
	enum {NU = 300, NI = 120};
	LfgSynthData s;
	LfgError	err;
	LfgNetOptions o;
	LfgModel	m,
				back;
	LfgNetStats st;
	LfgUsers	u = {NU, NULL, NULL, NULL, 0, 0};
	LfgRatings	d;
	LfgFoldinLists l;
	LfgFoldinTable *t1 = calloc(1, LFG_FOLDIN_TABLE_SIZE(8)),
			   *t2 = calloc(1, LFG_FOLDIN_TABLE_SIZE(8)),
			   *t3 = calloc(1, LFG_FOLDIN_TABLE_SIZE(8));
	LfgFoldinBase *self = calloc(1, LFG_FOLDIN_BASE_SIZE(NI, 8, 8)),
			   *wide = calloc(1, LFG_FOLDIN_BASE_SIZE(NI, 8, 10));
	LfgServeScratch sc;
	int64_t		uids[NU],
				iids[NI];
	uint8_t		vocab[8];
	char		opts[] = "{}",
				metr[] = "{}";
	uint8_t    *buf;
	size_t		size;
	uint32_t	nsec,
				c;
	bool		never_worse = true,
				seen[3] = {false, false, false};
	int			chosen = 0;
	float		x[9],
				y[11],
				g[9];
	int32_t		items[40];
	float		ratings[40];

	small_paper(NU, NI, 32, 30, &s, &d, &o);
	memset(&m, 0, sizeof(m));
	CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &m.mf, &m.net, &st, &err) == LFG_OK, "train: %s", err.msg);
	CHECK(m.net.foldin != NULL && lfg_foldin_table_valid(m.net.foldin, 8, m.net.foldin_base != NULL),
		  "training stores a valid table");
	CHECK((m.net.foldin_base != NULL) == lfg_foldin_uses_base(m.net.foldin),
		  "the base prior is stored when a bucket weighs it, and only then");
	CHECK(st.foldin_users == 0, "300 users: at the paper preset's share too few are drawn, none held (%d)", st.foldin_users);
	if (m.net.foldin == NULL)
		return;
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
	{
		const LfgFoldinEntry *e = &m.net.foldin->e[b];

		if (!isnan(e->rmse))
		{
			chosen++;
			never_worse = never_worse && e->rmse <= e->rmse_foldin && e->rmse <= e->rmse_refine &&
				e->rmse <= e->rmse_generator && e->rmse <= e->rmse_mean &&
				e->targets >= LFG_FOLDIN_MIN_TARGETS && !isnan(e->rmse_biassvd) &&
				e->rmse_biassvd > 0.0f && e->rmse <= e->rmse_biassvd;
		}
		printf("  bucket n >= %d: %s side, prior %.1f center %.1f reg %g, rmse %.4f, fold-in %.4f, "
			   "generator %.4f, mean %.4f, BiasSVD %.4f, %u ratings\n", lfg_foldin_bucket_min(b),
			   e->side == LFG_FOLDIN_SIDE_BASE ? "base" : e->side == LFG_FOLDIN_SIDE_BLEND ? "blend" : "model", e->prior, e->center, e->reg, e->rmse, e->rmse_foldin,
			   e->rmse_generator, e->rmse_mean, e->rmse_biassvd, e->targets);
	}
	CHECK(chosen >= 2 && never_worse,
		  "%d buckets chose, none worse than plain fold-in of either item side", chosen);

	/*
	 * every user is stored as the learned fold-in serves it from all its
	 * ratings (its vector: on the base side only its predictions differ)
	 */
	{
		LfgServeScratch ss;
		double		off = 0.0;
		size_t		j = 0,
					from;
		float		xs[9];
		LfgNetUser	user;

		CHECK(lfg_serve_scratch_alloc(&m, (int32_t) s.n, &A, &ss, &err) == LFG_OK, "scratch");
		for (int32_t uu = 0; uu < 10; uu++)
		{
			while (j < s.n && s.user[j] < uu)
				j++;
			from = j;
			while (j < s.n && s.user[j] == uu)
				j++;
			user = (LfgNetUser) {(int32_t) (j - from), s.item + from, s.rating + from, NAN, -1, -1};
			CHECK(lfg_user_vector(&m, &user, LFG_FOLDIN_LEARNED, true, &ss, xs, &err) == LFG_OK,
				  "serve user %d: %s", uu, err.msg);
			for (int f = 0; f < 8; f++)
				off = fmax(off, fabs(xs[f] - m.mf.P[uu * 8 + f]));
			off = fmax(off, fabs(xs[8] - m.mf.bu[uu]));
		}
		CHECK(off == 0.0, "every user is stored as lfg_recommend serves it (off by %g)", off);
	}

	/*
	 * the base prior's map from the model's own item side is the identity;
	 * the model then serves bucket 4 (n 8 to 15) from it, so that the codec
	 * and serving below see the section FBAS whatever training chose
	 */
	split_lists(&s, &l);
	{
		bool		ok;
		double		off = 0.0;
		const float *T = lfg_foldin_base_T(self),
				   *tv = lfg_foldin_base_t(self);

		CHECK(lfg_foldin_base_build(&m.mf, &m.mf, &l, &A, self, &ok, &err) == LFG_OK && ok,
			  "base prior built");
		for (int r = 0; r < 9; r++)
		{
			for (int c2 = 0; c2 < 9; c2++)
				off = fmax(off, fabs(T[r * 9 + c2] - (r == c2 ? 1.0 : 0.0)));
			off = fmax(off, fabs(tv[r]));
		}
		CHECK(off < 1e-3 && lfg_foldin_base_valid(self, NI, 8) && !lfg_foldin_base_valid(self, NI, 7),
			  "the map from the model's own item side is the identity (off by %g)", off);
		{
			/*
			 * a base with its own factors (k0 10): the model's Q with two
			 * columns of zeros maps by (I 0 0 | bias) (9 x 11)
			 */
			LfgMfParams pad = m.mf;
			float	   *Q10 = calloc((size_t) NI * 10, sizeof(float));
			const float *T10 = lfg_foldin_base_T(wide),
					   *t10 = lfg_foldin_base_t(wide);

			for (int i = 0; i < NI; i++)
				memcpy(Q10 + i * 10, m.mf.Q + i * 8, 8 * sizeof(float));
			pad.k = 10;
			pad.Q = Q10;
			CHECK(lfg_foldin_base_build(&m.mf, &pad, &l, &A, wide, &ok, &err) == LFG_OK && ok &&
				  wide->k == 8 && wide->k0 == 10, "base prior with 10 factors built");
			off = 0.0;
			for (int r = 0; r < 9; r++)
			{
				for (int c2 = 0; c2 < 11; c2++)
					off = fmax(off, fabs(T10[r * 11 + c2] - ((r < 8 && c2 == r) || (r == 8 && c2 == 10) ? 1.0 : 0.0)));
				off = fmax(off, fabs(t10[r]));
			}
			CHECK(off < 1e-3 && lfg_foldin_base_valid(wide, NI, 8),
				  "the map from 10 factors, two of them zero, is (I 0 | bias) (off by %g)", off);
			wide->k0 = 0;
			CHECK(!lfg_foldin_base_valid(wide, NI, 8), "k0 0 is refused");
			wide->k0 = 10;
			free(Q10);
		}
		memcpy(t3, m.net.foldin, LFG_FOLDIN_TABLE_SIZE(8));
		t3->e[4].prior = 0.5f;
		t3->e[4].center = 0.0f;
		t3->e[4].base = 0.5f;
		t3->e[4].reg = 2.0f;
		t3->e[4].side = LFG_FOLDIN_SIDE_MODEL;
		/* bucket 3 (n 4 to 7) predicted on the base side, whose item biases now differ by 0.25 */
		t3->e[3].side = LFG_FOLDIN_SIDE_BASE;
		/* and bucket 5 (n 16 to 31) on the blend side */
		t3->e[5].side = LFG_FOLDIN_SIDE_BLEND;
		for (int i = 0; i < NI; i++)
			wide->data[9 * 11 + 9 + i] += 0.25f;
		m.net.foldin = t3;
		m.net.foldin_base = wide;
	}

	/* the codec: a 14th section FOLD; a value out of range is refused */
	for (int j = 0; j < NU; j++)
		uids[j] = j;
	for (int j = 0; j < NI; j++)
		iids[j] = 10 * j;
	lfg_vocab_write(NULL, NULL, 0, vocab);
	m.user_ids = uids;
	m.item_ids = iids;
	m.vocab_gender = m.vocab_job = vocab;
	m.vocab_gender_len = m.vocab_job_len = (uint32_t) lfg_vocab_size(NULL, NULL, 0);
	m.options_json = opts;
	m.options_len = 2;
	m.metrics_json = metr;
	m.metrics_len = 2;
	CHECK(lfg_model_encoded_size(&m, &size, &err) == LFG_OK, "size: %s", err.msg);
	buf = aligned_alloc(8, (size + 7) & ~(size_t) 7);
	CHECK(lfg_model_encode(&m, crc32c_ref, buf, size, &err) == LFG_OK, "encode: %s", err.msg);
	memcpy(&nsec, buf + 12, 4);
	CHECK(nsec == 15, "%u sections", nsec);
	CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_OK, "decode: %s", err.msg);
	CHECK(back.net.foldin != NULL && memcmp(back.net.foldin, m.net.foldin, LFG_FOLDIN_TABLE_SIZE(8)) == 0,
		  "the table round-trips");
	CHECK(back.net.foldin_base != NULL &&
		  memcmp(back.net.foldin_base, wide, LFG_FOLDIN_BASE_SIZE(NI, 8, 10)) == 0,
		  "the base prior round-trips");
	{
		LfgFoldinBase *bb = (LfgFoldinBase *) back.net.foldin_base;
		float		keep = bb->data[3];

		bb->data[3] = NAN;
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT,
			  "a NaN in the base prior is refused");
		bb->data[3] = keep;
		/* k0 out of 1 .. 1024 (read before the length), or not the section's length */
		{
			const uint32_t bad_k0[] = {0, LFG_MAX_FACTORS + 1, UINT32_MAX, 9, 11};

			for (size_t j = 0; j < sizeof(bad_k0) / sizeof(bad_k0[0]); j++)
			{
				bb->k0 = bad_k0[j];
				c = crc32c_ref(buf, size - 4);
				memcpy(buf + size - 4, &c, 4);
				CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT,
					  "a base prior with k0 %u is refused", bad_k0[j]);
			}
			bb->k0 = 10;
		}
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_OK, "restored: %s", err.msg);
	}
	{
		LfgFoldinTable *tb = (LfgFoldinTable *) back.net.foldin;

		tb->e[4].prior = 2.0f;
		c = crc32c_ref(buf, size - 4);
		memcpy(buf + size - 4, &c, 4);
		CHECK(lfg_model_decode(buf, size, crc32c_ref, &back, &err) == LFG_EFORMAT,
			  "a prior weight of 2 is refused");
	}
	free(buf);

	/* serving: the table's prior and reg, or (no table) lfg 0.1's refine with 5 */
	CHECK(lfg_serve_scratch_alloc(&m, 40, &A, &sc, &err) == LFG_OK, "serve scratch");
	for (int n = 0; n <= 40; n += 5)
	{
		LfgNetUser nu;
		double		prior,
					center,
					vbase,
					reg,
					diff = 0.0;
		float		b[9];
		const LfgFoldinEntry *e = &m.net.foldin->e[lfg_foldin_bucket(n)];

		for (int j = 0; j < n; j++)
		{
			items[j] = (7 * j + 3) % NI;
			ratings[j] = (float) (1 + j % 5);
		}
		nu = (LfgNetUser) {n, items, ratings, NAN, -1, -1};
		lfg_foldin_served(&m, n, LFG_FOLDIN_LEARNED, true, &prior, &center, &vbase, &reg);
		CHECK(prior == e->prior && center == e->center && vbase == e->base && reg == e->reg,
			  "n %d served from its bucket", n);
		CHECK(lfg_user_vector(&m, &nu, LFG_FOLDIN_LEARNED, true, &sc, x, &err) == LFG_OK, "learned: %s", err.msg);
		CHECK(lfg_user_vector(&m, &nu, 5.0, false, &sc, g, &err) == LFG_OK, "generator: %s", err.msg);
		CHECK(lfg_base_prior(&m, &nu, &sc, b, &err) == LFG_OK, "base prior: %s", err.msg);
		for (int f = 0; f < 9; f++)
			g[f] = (float) prior * g[f] + (float) center * m.net.foldin->mean[f] + (float) vbase * b[f];
		if (isinf(reg) || n == 0)
			memcpy(y, g, sizeof(g));
		else
			CHECK(lfg_fold_in_prior(&m, &nu, reg, g, &sc, y, &err) == LFG_OK,
				  "fold-in: %s", err.msg);
		for (int f = 0; f < 9; f++)
			diff = fmax(diff, fabs(x[f] - y[f]));
		CHECK(diff < 1e-5, "n %d: the served vector is the table's fold-in (diff %g)", n, diff);
		{
			/*
			 * predictions: x and the model's side, on the base side the
			 * base's own fold-in x0, on the blend side the mean of both
			 */
			LfgMfParams view;
			LfgModel	bm = m;
			LfgRatingSource src;
			uint32_t	side = e->side;
			bool		base_side = side != LFG_FOLDIN_SIDE_MODEL;
			float		xr[11],
						z[9];
			double		off = 0.0;

			CHECK(lfg_rating_vector(&m, &nu, LFG_FOLDIN_LEARNED, true, x, &sc, xr, &view, &src, &err) == LFG_OK,
				  "rating vector: %s", err.msg);
			CHECK(lfg_foldin_side(&m, n, LFG_FOLDIN_LEARNED, true) == side &&
				  lfg_foldin_side(&m, n, 5.0, true) == LFG_FOLDIN_SIDE_MODEL &&
				  lfg_foldin_side(&m, n, LFG_FOLDIN_LEARNED, false) == LFG_FOLDIN_SIDE_MODEL &&
				  (src.mf == &m.mf) == (side != LFG_FOLDIN_SIDE_BASE) &&
				  (src.mf2 != NULL) == (side == LFG_FOLDIN_SIDE_BLEND),
				  "n %d: predicted on side %u", n, side);
			if (base_side)
			{
				lfg_foldin_base_view(wide, &m.mf, &bm.mf);
				CHECK(lfg_fold_in_prior(&bm, &nu, LFG_FOLDIN_BASE_REG, NULL, &sc, y, &err) == LFG_OK,
					  "base fold-in: %s", err.msg);
				for (int f = 0; f < 11; f++)
					off = fmax(off, fabs(xr[f] - y[f]));
			}
			for (int i = 0; i < NI; i++)
			{
				double		want = wide->mu + wide->data[9 * 11 + 9 + i] + xr[10],
							own = lfg_score_one(&m.mf, x, i);

				for (int f = 0; f < 10; f++)
					want += (double) wide->data[9 * 11 + 9 + NI + i * 10 + f] * xr[f];
				want = fmin(fmax(want, m.mf.rating_min), m.mf.rating_max);
				off = fmax(off, fabs(lfg_rating_score(&src, i) -
									 (side == LFG_FOLDIN_SIDE_MODEL ? own :
									  side == LFG_FOLDIN_SIDE_BASE ? want : 0.5 * (own + want))));
			}
			/* on the base side: x0's zero factors are 0, the rest the model's fold-in plus 0.25 */
			memcpy(z, xr, 8 * sizeof(float));
			z[8] = xr[10];
			CHECK(off < 1e-4 && (!base_side || (view.k == 10 && xr[8] == 0.0f && xr[9] == 0.0f &&
												fabs(lfg_score_raw(&view, xr, 0) -
													 lfg_score_raw(&m.mf, z, 0) - 0.25) < 1e-4)),
				  "n %d: its predictions come from that side (off by %g)", n, off);
			seen[side] = true;
		}
		lfg_foldin_served(&m, n, 2.0, true, &prior, &center, &vbase, &reg);
		CHECK(prior == 1.0 && center == 0.0 && vbase == 0.0 && reg == 2.0,
			  "a set lfg.foldin_reg overrides the table");
		lfg_foldin_served(&m, n, LFG_FOLDIN_LEARNED, false, &prior, &center, &vbase, &reg);
		CHECK(prior == 1.0 && center == 0.0 && vbase == 0.0 && isinf(reg),
			  "refine off: the generator alone");
	}
	CHECK(seen[LFG_FOLDIN_SIDE_MODEL] && seen[LFG_FOLDIN_SIDE_BASE] && seen[LFG_FOLDIN_SIDE_BLEND],
		  "served from all three sides");
	{
		LfgModel	old = m;
		double		prior,
					center,
					vbase,
					reg;

		old.net.foldin = NULL;
		old.net.foldin_base = NULL;
		lfg_foldin_served(&old, 10, LFG_FOLDIN_LEARNED, true, &prior, &center, &vbase, &reg);
		CHECK(prior == 1.0 && center == 0.0 && reg == LFG_DEFAULT_FOLDIN_REG,
			  "a model without a table: refine with 5");
	}

	/* selection is deterministic; with a broken generator it gives it no weight */
	CHECK(lfg_foldin_select(&m, &u, &l, m.net.foldin->mean, NULL, false, 99, NULL, NULL, &A, t1, &err) == LFG_OK &&
		  lfg_foldin_select(&m, &u, &l, m.net.foldin->mean, NULL, false, 99, NULL, NULL, &A, t2, &err) == LFG_OK &&
		  memcmp(t1, t2, LFG_FOLDIN_TABLE_SIZE(8)) == 0, "the same seed chooses the same table");
	for (int f = 0; f <= 8; f++)
		m.net.theta[m.net.layout.b3 + f] += f == 8 ? 3.0f : 2.0f;
	CHECK(lfg_foldin_select(&m, &u, &l, m.net.foldin->mean, NULL, false, 99, NULL, NULL, &A, t1, &err) == LFG_OK,
		  "select: %s", err.msg);
	{
		bool		zero = true;

		for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
			if (!isnan(t1->e[b].rmse))
				zero = zero && t1->e[b].prior == 0.0f && t1->e[b].rmse < t1->e[b].rmse_generator;
		CHECK(zero && !isnan(t1->e[0].rmse), "a broken generator gets prior 0 in every bucket");
	}
}

/*
 * Held users (foldin_users): drawn with the seed, counted in the stats, the
 * episodes theirs alone (every bucket's targets are the ratings not
 * revealed); the model is the same bytes on 1 and 3 threads
 */
static void
test_held(void)
{
	enum {NU = 300, NI = 120};
	LfgSynthData s;
	LfgError	err;
	LfgNetOptions o;
	LfgModel	m1,
				m3;
	LfgNetStats st1,
				st3;
	LfgUsers	u = {NU, NULL, NULL, NULL, 0, 0};
	LfgRatings	d;
	bool		chosen_ok = true;
	int			chosen = 0;

	small_paper(NU, NI, 16, 8, &s, &d, &o);
	o.foldin_users = 0.45;
	memset(&m1, 0, sizeof(m1));
	memset(&m3, 0, sizeof(m3));
	CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &m1.mf, &m1.net, &st1, &err) == LFG_OK, "train: %s", err.msg);
	o.parallel = 3;
	CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &m3.mf, &m3.net, &st3, &err) == LFG_OK, "train: %s", err.msg);
	CHECK(st1.foldin_users >= 110 && st1.foldin_users <= 160, "about 0.45 of the users held (%d)",
		  st1.foldin_users);
	if (m1.net.foldin == NULL || m3.net.foldin == NULL)
	{
		CHECK(false, "held users give a learned fold-in");
		return;
	}
	CHECK(lfg_foldin_table_valid(m1.net.foldin, 8, m1.net.foldin_base != NULL), "a valid table");
	for (int b = 0; b < LFG_FOLDIN_BUCKETS; b++)
	{
		const LfgFoldinEntry *e = &m1.net.foldin->e[b];

		if (isnan(e->rmse))
			continue;
		chosen++;
		/* a held user's targets are all its ratings but the revealed ones */
		chosen_ok = chosen_ok && e->rmse <= e->rmse_foldin &&
			e->targets >= e->episodes * (uint32_t) 1 && e->episodes <= (uint32_t) st1.foldin_users * LFG_FOLDIN_HELD_ROUNDS;
	}
	CHECK(chosen >= 2 && chosen_ok, "%d buckets chose on the held users' episodes, none worse than fold-in",
		  chosen);
	CHECK(st3.foldin_users == st1.foldin_users &&
		  memcmp(m1.net.foldin, m3.net.foldin, LFG_FOLDIN_TABLE_SIZE(8)) == 0 &&
		  memcmp(m1.mf.P, m3.mf.P, (size_t) NU * 8 * sizeof(float)) == 0 &&
		  memcmp(m1.mf.Q, m3.mf.Q, (size_t) NI * 8 * sizeof(float)) == 0,
		  "the same held users, table and factors on 1 and 3 threads");
}

/*
 * Too few drawn: exactly LFG_FOLDIN_HELD_MIN_USERS held where they are at
 * most LFG_FOLDIN_HELD_MAX_SHARE of the users, else none
 */
static void
test_held_floor(void)
{
	for (int32_t nu = 600; nu <= 700; nu += 100)
	{
		LfgSynthData s;
		LfgError	err;
		LfgNetOptions o;
		LfgModel	m;
		LfgNetStats st;
		LfgUsers	u = {nu, NULL, NULL, NULL, 0, 0};
		LfgRatings	d;
		int			want = nu * LFG_FOLDIN_HELD_MAX_SHARE >= LFG_FOLDIN_HELD_MIN_USERS ? LFG_FOLDIN_HELD_MIN_USERS : 0;

		small_paper(nu, 40, 8, 1, &s, &d, &o);
		o.base_factors = 8;
		memset(&m, 0, sizeof(m));
		CHECK(lfg_net_train(&d, &u, &o, NULL, &A, &m.mf, &m.net, &st, &err) == LFG_OK, "train: %s", err.msg);
		CHECK(o.foldin_users * nu < LFG_FOLDIN_HELD_MIN_USERS && st.foldin_users == want,
			  "%d users, the paper preset's share: %d held (%d)", nu, want, st.foldin_users);
	}
}

int
main(void)
{
	test_buckets();
	test_choose();
	test_valid();
	test_trained();
	test_held();
	test_held_floor();
	return report_results();
}
