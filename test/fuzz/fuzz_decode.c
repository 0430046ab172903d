/*
 * fuzz_decode.c
 *	  Fuzz the model decoder. Two builds:
 *	  - libFuzzer: clang -fsanitize=fuzzer,address -DLFG_LIBFUZZER ...
 *	  - standalone (make fuzzcheck, gcc with ASan/UBSan): mutate a valid
 *	    model N times (bit flips, byte overwrites, truncation, extension,
 *	    and header/section-table edits with the CRC recomputed, so that the
 *	    checks behind the CRC are reached) and decode each result. A decode
 *	    that succeeds must give a model whose every array lies inside the
 *	    buffer; any crash or sanitizer report fails the run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "lfg_mf.h"
#include "lfg_model.h"
#include "lfg_rng.h"
#include "lfg_synth.h"
#include "test_util.h"

/* Decode buf; on success touch every byte the model points to */
static int
decode_and_touch(const uint8_t *data, size_t len)
{
	uint8_t    *buf = aligned_alloc(8, (len + 8) & ~(size_t) 7);
	LfgModel	m;
	LfgError	err;
	int			ok;
	volatile double sink = 0;

	memcpy(buf, data, len);
	ok = lfg_model_decode(buf, len, crc32c_ref, &m, &err) == LFG_OK;
	if (ok)
	{
		size_t		k = (size_t) m.mf.k;

		for (size_t j = 0; j < (size_t) m.mf.n_users * k; j++)
			sink += m.mf.P[j];
		for (size_t j = 0; j < (size_t) m.mf.n_items * k; j++)
			sink += m.mf.Q[j];
		for (int32_t j = 0; j < m.mf.n_users; j++)
			sink += (double) m.user_ids[j] + (m.mf.bu ? m.mf.bu[j] : 0);
		for (int32_t j = 0; j < m.mf.n_items; j++)
			sink += (double) m.item_ids[j] + (m.mf.bi ? m.mf.bi[j] : 0);
		sink += m.options_json[m.options_len - 1] + m.metrics_json[m.metrics_len - 1];
		if (m.mf.kind == LFG_KIND_EASE)
		{
			for (size_t j = 0; j < (size_t) m.mf.n_items * (size_t) m.mf.n_items; j++)
				sink += m.ease.B[j];
			for (int32_t j = 0; j < m.mf.n_items; j++)
				sink += m.ease.pop[j];
			for (uint64_t j = 0; j < m.ease.n_rated; j++)
				sink += m.ease.user_items[j];
			for (int32_t u = 0; u < m.mf.n_users; u++)
				sink += lfg_ease_predict(&m.ease, u, m.mf.n_items - 1);
		}
		else
			sink += lfg_mf_predict(&m.mf, 0, 0);
		if (m.mf.rank_prior != NULL)
			for (int32_t j = 0; j < m.mf.n_items; j++)
				sink += m.mf.rank_prior[j];
		if (m.mf.rank_R != NULL)
		{
			for (size_t j = 0; j < (size_t) m.mf.n_items * k; j++)
				sink += m.mf.rank_R[j];
			for (int32_t j = 0; j < m.mf.n_items; j++)
				sink += m.mf.rank_c[j];
			for (size_t j = 0; j < (size_t) m.mf.n_users * k; j++)
				sink += m.mf.rank_P[j];
			for (size_t j = 0; j < m.net.layout.total; j++)
				sink += m.net.rank_theta[j];
			for (size_t j = 0; j < m.net.layout.n_running; j++)
				sink += m.net.rank_running[j];
		}
		if (m.net.foldin != NULL)
		{
			/* the learned fold-in: in range, and what serving reads of it */
			double		prior,
						center,
						vbase,
						reg;
			float		g[LFG_MAX_FACTORS + 1] = {0},
						b[LFG_MAX_FACTORS + 1] = {0},
						x0[LFG_MAX_FACTORS + 1] = {0};

			CHECK(lfg_foldin_table_valid(m.net.foldin, m.mf.k, m.net.foldin_base != NULL),
				  "an accepted table is valid");
			if (m.net.foldin_base != NULL)
			{
				/* the base prior: in range, and what serving reads of it */
				LfgMfParams view;

				CHECK(lfg_foldin_base_valid(m.net.foldin_base, m.mf.n_items, m.mf.k),
					  "an accepted base prior is valid");
				lfg_foldin_base_view(m.net.foldin_base, &m.mf, &view);
				x0[0] = 1.0f;
				lfg_foldin_base_map(m.net.foldin_base, x0, b);
				for (size_t j = 0; j < (size_t) view.n_items * view.k; j++)
					sink += view.Q[j];
				for (int32_t j = 0; j < view.n_items; j++)
					sink += view.bi[j];
				sink += b[m.mf.k] + view.mu;
			}
			for (int32_t n = 0; n < 200; n += 7)
			{
				lfg_foldin_served(&m, n, LFG_FOLDIN_LEARNED, true, &prior, &center, &vbase, &reg);
				lfg_foldin_prior(&m, prior, center, vbase, b, g);
				sink += prior + center + vbase + (isinf(reg) ? 1.0 : reg) + g[m.mf.k];
			}
		}
	}
	free(buf);
	return ok;
}

#ifdef LFG_LIBFUZZER
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_and_touch(data, size);
	return 0;
}
#else

/* A small valid model to mutate */
static uint8_t *
seed_model(size_t *size)
{
	static const char opts[] = "{\"kind\": \"biassvd\"}";
	static const char metr[] = "{\"rows\": 3}";
	static int64_t uids[3] = {-5, 2, 900};
	static int64_t iids[2] = {1, 7};
	static float P[6] = {0.1f, 0.2f, 0.3f, -0.1f, 0.0f, 1.0f};
	static float Q[4] = {0.5f, 0.5f, -0.5f, 0.25f};
	static float bu[3] = {0.1f, -0.1f, 0.0f};
	static float bi[2] = {0.2f, 0.3f};
	LfgModel	m = {{LFG_KIND_BIASSVD, 3, 2, 2, 3.5f, 1.0f, 5.0f, P, Q, bu, bi},
	uids, iids, opts, sizeof(opts) - 1, metr, sizeof(metr) - 1};
	LfgError	err;
	uint8_t    *buf;

	if (lfg_model_encoded_size(&m, size, &err) != LFG_OK)
		abort();
	buf = malloc(*size);
	if (lfg_model_encode(&m, crc32c_ref, buf, *size, &err) != LFG_OK)
		abort();
	return buf;
}

/* A small valid EASE model (B, popularity, user lists) to mutate */
static uint8_t *
seed_ease_model(size_t *size)
{
	static const char opts[] = "{\"kind\": \"ease\", \"lambda\": 1}";
	static const char metr[] = "{\"rows\": 5}";
	static int64_t uids[3] = {-5, 2, 900};
	static int64_t iids[3] = {1, 7, 8};
	static float B[9] = {0.0f, -0.2f, 0.1f, 0.3f, 0.0f, -0.1f, 0.05f, 0.2f, 0.0f};
	static float pop[3] = {0.5f, 1.0f, 0.25f};
	static int64_t ptr[4] = {0, 2, 3, 5};
	static int32_t items[5] = {0, 1, 2, 0, 2};
	LfgModel	m;
	LfgError	err;
	uint8_t    *buf;

	memset(&m, 0, sizeof(m));
	m.mf = (LfgMfParams) {LFG_KIND_EASE, 3, 3, 0, 3.5f, 1.0f, 5.0f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
	m.user_ids = uids;
	m.item_ids = iids;
	m.options_json = opts;
	m.options_len = sizeof(opts) - 1;
	m.metrics_json = metr;
	m.metrics_len = sizeof(metr) - 1;
	m.ease = (LfgEase) {3, 3, B, pop, ptr, items, 5};
	if (lfg_model_encoded_size(&m, size, &err) != LFG_OK)
		abort();
	buf = malloc(*size);
	if (lfg_model_encode(&m, crc32c_ref, buf, *size, &err) != LFG_OK)
		abort();
	return buf;
}

/* An allocator that remembers its blocks, to free the seed's training buffers */
static void *arena_blocks[4096];
static int	arena_n;

static void *
arena_alloc(void *ctx, size_t size)
{
	void	   *p = malloc(size);

	(void) ctx;
	if (p != NULL && arena_n < 4096)
		arena_blocks[arena_n++] = p;
	return p;
}

static void
arena_free_all(void)
{
	while (arena_n > 0)
		free(arena_blocks[--arena_n]);
}

/*
 * A small valid LFG model (generator sections, vocabularies, the ranking
 * prior and the ranking head) to mutate
 */
static uint8_t *
seed_lfg_model(size_t *size)
{
	static const char opts[] = "{\"kind\": \"lfg\"}";
	static const char metr[] = "{\"rows\": 60}";
	static const char *genders[] = {"F", "M"};
	static const char *jobs[] = {"doctor", "writer", "x"};
	uint32_t	glen[] = {1, 1},
				jlen[] = {6, 6, 1};
	float		age[12];
	int32_t		g[12],
				j[12];
	LfgUsers	u = {12, age, g, j, 2, 3};
	LfgSynthData d;
	LfgNetOptions o;
	LfgNetStats st;
	LfgModel	m;
	LfgError	err;
	LfgRatings	r;
	LfgAllocator arena = {arena_alloc, NULL, NULL};
	int64_t    *uids = arena_alloc(NULL, 12 * sizeof(int64_t)),
			   *iids = arena_alloc(NULL, 8 * sizeof(int64_t));
	uint8_t    *buf,
			   *vg,
			   *vj;

	for (int k = 0; k < 12; k++)
	{
		age[k] = (float) (20 + k);
		g[k] = k % 2;
		j[k] = k % 4 == 3 ? -1 : k % 3;
		uids[k] = 100 + k;
	}
	for (int k = 0; k < 8; k++)
		iids[k] = k * k;
	if (lfg_synth_generate(12, 8, 40, 3, &arena, &d, &err) != LFG_OK)
		abort();
	r = (LfgRatings) {d.n, 12, 8, d.user, d.item, d.rating};
	lfg_net_options_preset(&o, LFG_PRESET_PAPER);
	o.h1 = 4;
	o.h2 = 3;
	o.factors = 2;
	o.epochs = 2;
	o.batch_size = 4;
	o.popularity_prior = 1.0;
	o.rank_weight = 1.0;
	o.rank_epochs = 2;
	memset(&m, 0, sizeof(m));
	if (lfg_net_train(&r, &u, &o, NULL, &arena, &m.mf, &m.net, &st, &err) != LFG_OK)
		abort();
	if (m.net.foldin != NULL && m.net.foldin_base == NULL)
	{
		/*
		 * a base prior to mutate: the map from an item side of 3 factors (the
		 * model's 2, then the first again), weighed by bucket 2 (the ratings
		 * are sorted by user: one list each)
		 */
		int32_t    *ptr = arena_alloc(NULL, 13 * sizeof(int32_t));
		LfgFoldinLists l = {12, ptr, d.item, d.rating, ptr, d.item, d.rating, NULL};
		LfgFoldinBase *b = arena_alloc(NULL, LFG_FOLDIN_BASE_SIZE(8, 2, 3));
		LfgMfParams b3 = m.mf;
		float	   *Q3 = arena_alloc(NULL, 8 * 3 * sizeof(float));
		LfgFoldinTable *t = (LfgFoldinTable *) m.net.foldin;
		bool		ok;
		size_t		e = 0;

		for (int32_t k = 0; k <= 12; k++)
		{
			while (e < d.n && d.user[e] < k)
				e++;
			ptr[k] = (int32_t) e;
		}
		for (int32_t i = 0; i < 8; i++)
		{
			Q3[i * 3] = m.mf.Q[i * 2];
			Q3[i * 3 + 1] = m.mf.Q[i * 2 + 1];
			Q3[i * 3 + 2] = m.mf.Q[i * 2] * 0.5f + 0.1f;
		}
		b3.k = 3;
		b3.Q = Q3;
		if (lfg_foldin_base_build(&m.mf, &b3, &l, &arena, b, &ok, &err) != LFG_OK || !ok)
			abort();
		t->e[2].prior = 0.5f;
		t->e[2].center = 0.0f;
		t->e[2].base = 0.5f;
		m.net.foldin_base = b;
	}
	vg = arena_alloc(NULL, lfg_vocab_size(genders, glen, 2));
	vj = arena_alloc(NULL, lfg_vocab_size(jobs, jlen, 3));
	lfg_vocab_write(genders, glen, 2, vg);
	lfg_vocab_write(jobs, jlen, 3, vj);
	m.user_ids = uids;
	m.item_ids = iids;
	m.vocab_gender = vg;
	m.vocab_gender_len = (uint32_t) lfg_vocab_size(genders, glen, 2);
	m.vocab_job = vj;
	m.vocab_job_len = (uint32_t) lfg_vocab_size(jobs, jlen, 3);
	m.options_json = opts;
	m.options_len = sizeof(opts) - 1;
	m.metrics_json = metr;
	m.metrics_len = sizeof(metr) - 1;
	if (lfg_model_encoded_size(&m, size, &err) != LFG_OK)
		abort();
	buf = malloc(*size);
	if (lfg_model_encode(&m, crc32c_ref, buf, *size, &err) != LFG_OK)
		abort();
	arena_free_all();
	return buf;
}

/* Rewrite the trailing CRC so the mutation reaches the checks behind it */
static void
fix_crc(uint8_t *buf, size_t len)
{
	uint32_t	c;

	if (len < 4)
		return;
	c = crc32c_ref(buf, len - 4);
	memcpy(buf + len - 4, &c, 4);
}

int
main(int argc, char **argv)
{
	long		iterations = argc > 1 ? atol(argv[1]) : 200000;
	size_t		sizes[3];
	uint8_t    *seeds[3];
	uint8_t    *buf;
	LfgRng		rng;
	long		accepted = 0;

	seeds[0] = seed_model(&sizes[0]);
	seeds[1] = seed_lfg_model(&sizes[1]);
	seeds[2] = seed_ease_model(&sizes[2]);
	buf = malloc((sizes[0] > sizes[1] ? sizes[0] : sizes[1]) + sizes[2] + 64);
	lfg_rng_seed(&rng, 1234);
	for (int k = 0; k < 3; k++)
		CHECK(decode_and_touch(seeds[k], sizes[k]), "seed model %d decodes", k);
	{
		uint8_t    *b = aligned_alloc(8, (sizes[1] + 8) & ~(size_t) 7);
		LfgModel	m;
		LfgError	err;

		memcpy(b, seeds[1], sizes[1]);
		CHECK(lfg_model_decode(b, sizes[1], crc32c_ref, &m, &err) == LFG_OK && m.net.foldin != NULL &&
			  m.net.foldin_base != NULL,
			  "the lfg seed has a learned fold-in and its base prior to mutate");
		free(b);
	}
	for (long it = 0; it < iterations; it++)
	{
		uint8_t    *good = seeds[it % 3];
		size_t		size = sizes[it % 3];
		size_t		len = size;
		int			kind = (int) lfg_rng_below(&rng, 7);
		int			edits = 1 + (int) lfg_rng_below(&rng, 4);

		memcpy(buf, good, size);
		for (int e = 0; e < edits; e++)
		{
			size_t		pos = (size_t) lfg_rng_below(&rng, len);

			switch (kind)
			{
				case 0:			/* bit flip */
					buf[pos] ^= (uint8_t) (1u << lfg_rng_below(&rng, 8));
					break;
				case 1:			/* random byte */
					buf[pos] = (uint8_t) lfg_rng_next(&rng);
					break;
				case 2:			/* truncate */
					len = (size_t) lfg_rng_below(&rng, len + 1);
					break;
				case 3:			/* extend */
					len = size + 1 + (size_t) lfg_rng_below(&rng, 60);
					break;
				case 6:			/* the last sections (the learned fold-in), CRC recomputed */
					pos = len - 1 - (size_t) lfg_rng_below(&rng, len < 400 ? len : 400);
					buf[pos] = (uint8_t) lfg_rng_next(&rng);
					break;
				default:		/* header or table edit, CRC recomputed */
					pos = (size_t) lfg_rng_below(&rng, LFG_MODEL_HEADER_SIZE +
												 20 * LFG_MODEL_SECTION_SIZE);
					if (pos < len)
						buf[pos] = (uint8_t) lfg_rng_next(&rng);
					break;
			}
			if (len == 0)
				break;
		}
		if (kind >= 3)
		{
			/* keep the length field consistent sometimes, so later checks run */
			if (kind == 3 || lfg_rng_below(&rng, 2))
			{
				uint64_t	l = len;

				if (len >= 24)
					memcpy(buf + 16, &l, 8);
			}
			fix_crc(buf, len);
		}
		accepted += decode_and_touch(buf, len);
	}
	free(buf);
	free(seeds[0]);
	free(seeds[1]);
	free(seeds[2]);
	printf("fuzz_decode: %ld mutated models (biassvd, lfg and ease) decoded without a fault, "
		   "%ld of them accepted\n", iterations, accepted);
	CHECK(1, "no fault");
	return report_results();
}
#endif
