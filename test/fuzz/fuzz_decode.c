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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "lfg_mf.h"
#include "lfg_model.h"
#include "lfg_rng.h"

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
		sink += lfg_mf_predict(&m.mf, 0, 0);
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

static void *
m_alloc(void *c, size_t s)
{
	(void) c;
	return malloc(s);
}

static void
m_free(void *c, void *p)
{
	(void) c;
	free(p);
}

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
	size_t		size;
	uint8_t    *good = seed_model(&size);
	uint8_t    *buf = malloc(size + 64);
	LfgRng		rng;
	long		accepted = 0;

	(void) m_alloc;
	(void) m_free;
	lfg_rng_seed(&rng, 1234);
	if (!decode_and_touch(good, size))
	{
		printf("seed model does not decode\n");
		free(buf);
		free(good);
		return 1;
	}
	for (long it = 0; it < iterations; it++)
	{
		size_t		len = size;
		int			kind = (int) lfg_rng_below(&rng, 6);
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
				default:		/* header or table edit, CRC recomputed */
					pos = (size_t) lfg_rng_below(&rng, LFG_MODEL_HEADER_SIZE +
												 8 * LFG_MODEL_SECTION_SIZE);
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
	free(good);
	printf("fuzz_decode: %ld mutated models decoded, %ld accepted (valid by construction)\n",
		   iterations, accepted);
	printf("1 passed, 0 failed\n");
	return 0;
}
#endif
