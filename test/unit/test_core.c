/*
 * test_core.c
 *	  Unit tests of the numeric core, built without PostgreSQL headers.
 *	  Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c_ref.h"
#include "test_util.h"
#include "lfg_blas.h"
#include "lfg_mf.h"
#include "lfg_model.h"
#include "lfg_rng.h"
#include "lfg_synth.h"


/* A trained model and its encoding, from synthetic data */
typedef struct Fixture
{
	LfgSynthData data;
	LfgModel	model;
	int64_t    *uids,
			   *iids;
	uint8_t    *bytes;
	size_t		size;
	double		train_rmse;
} Fixture;

static const char OPTS[] = "{\"kind\": \"biassvd\"}";
static const char METR[] = "{\"rows\": 1}";

static void
build_fixture(Fixture *f, int kind, int factors, int epochs, uint64_t seed, int nu, int ni, int nr)
{
	LfgError	err;
	LfgMfOptions o;
	LfgRatings	r;
	LfgStatus	st;

	memset(f, 0, sizeof(*f));
	st = lfg_synth_generate(nu, ni, nr, 7, &A, &f->data, &err);
	if (st != LFG_OK)
	{
		printf("synth: %s\n", err.msg);
		exit(2);
	}
	lfg_mf_options_default(&o);
	o.kind = kind;
	o.factors = factors;
	o.epochs = epochs;
	o.seed = seed;
	r = (LfgRatings) {f->data.n, nu, ni, f->data.user, f->data.item, f->data.rating};
	st = lfg_mf_train(&r, &o, NULL, &A, &f->model.mf, &f->train_rmse, &err);
	if (st != LFG_OK)
	{
		printf("train: %s\n", err.msg);
		exit(2);
	}
	f->uids = malloc(sizeof(int64_t) * nu);
	f->iids = malloc(sizeof(int64_t) * ni);
	for (int j = 0; j < nu; j++)
		f->uids[j] = -1000000000000LL + 3 * j;	/* sparse, negative */
	for (int j = 0; j < ni; j++)
		f->iids[j] = 5 + 1000LL * j;
	f->model.user_ids = f->uids;
	f->model.item_ids = f->iids;
	f->model.options_json = OPTS;
	f->model.options_len = sizeof(OPTS) - 1;
	f->model.metrics_json = METR;
	f->model.metrics_len = sizeof(METR) - 1;
	st = lfg_model_encoded_size(&f->model, &f->size, &err);
	f->bytes = aligned_alloc(8, (f->size + 7) & ~(size_t) 7);
	if (st == LFG_OK)
		st = lfg_model_encode(&f->model, crc32c_ref, f->bytes, f->size, &err);
	if (st != LFG_OK)
	{
		printf("encode: %s\n", err.msg);
		exit(2);
	}
}

/* lfg_model_metric: numbers at the top level of the metrics JSON */
static void
test_model_metric(void)
{
	const char *json = "{\"rows\": 12, \"name\": \"x\\\"age_max\\\": 9\", \"age_min\": 7.5, "
		"\"age_max\":-1e2, \"bad\": \"text\", \"inf\": 1e999}";
	LfgModel	m = {0};
	double		v = 0.0;

	m.metrics_json = json;
	m.metrics_len = (uint32_t) strlen(json);
	CHECK(lfg_model_metric(&m, "rows", &v) && v == 12.0, "integer metric");
	CHECK(lfg_model_metric(&m, "age_min", &v) && v == 7.5, "fractional metric");
	CHECK(lfg_model_metric(&m, "age_max", &v) && v == -100.0, "metric without a space, not the one inside a string");
	CHECK(!lfg_model_metric(&m, "bad", &v), "a string is not a number");
	CHECK(!lfg_model_metric(&m, "inf", &v), "an infinite number is refused");
	CHECK(!lfg_model_metric(&m, "missing", &v), "absent key");
	m.metrics_len = (uint32_t) (strstr(json, "7.5") - json);
	CHECK(!lfg_model_metric(&m, "age_min", &v), "the text ends before the number");
	m.metrics_json = NULL;
	CHECK(!lfg_model_metric(&m, "rows", &v), "no metrics");
}

static void
test_crc(void)
{
	CHECK(crc32c_ref("123456789", 9) == 0xE3069283u, "crc32c check value");
}

static void
test_rng(void)
{
	LfgRng		a,
				b;
	double		sum = 0,
				sq = 0;
	int			n = 100000;
	uint32_t	perm[100];
	int			seen[100] = {0};

	lfg_rng_seed(&a, 1);
	lfg_rng_seed(&b, 1);
	CHECK(lfg_rng_next(&a) == lfg_rng_next(&b), "same seed, same stream");
	lfg_rng_seed(&b, 2);
	CHECK(lfg_rng_next(&a) != lfg_rng_next(&b), "other seed, other stream");
	for (int j = 0; j < n; j++)
	{
		double		x = lfg_rng_normal(&a);

		sum += x;
		sq += x * x;
	}
	CHECK(fabs(sum / n) < 0.02 && fabs(sq / n - 1.0) < 0.03, "normal moments %g %g", sum / n, sq / n);
	for (int j = 0; j < 100; j++)
		perm[j] = (uint32_t) j;
	lfg_rng_shuffle_u32(&a, perm, 100);
	for (int j = 0; j < 100; j++)
		seen[perm[j]]++;
	for (int j = 0; j < 100; j++)
		if (seen[j] != 1)
			break;
	CHECK(memcmp(seen, (int[100]) {[0 ... 99] = 1}, sizeof(seen)) == 0, "shuffle is a permutation");
	for (int j = 0; j < 1000; j++)
		if (lfg_rng_below(&a, 7) >= 7)
		{
			CHECK(0, "below out of range");
			break;
		}
}

static void
test_sgd_update(void)
{
	float		p[5] = {1, 2, 3, 4, 5},
				q[5] = {-1, 0.5f, 2, 0, 1};
	float		p2[5],
				q2[5];
	float		lr = 0.01f,
				e = 0.7f,
				reg = 0.02f;
	double		maxdiff = 0;

	for (int f = 0; f < 5; f++)
	{
		p2[f] = p[f] + lr * (e * q[f] - reg * p[f]);
		q2[f] = q[f] + lr * (e * p[f] - reg * q[f]);
	}
	lfg_sgd_pair_update(p, q, 5, lr, e, reg);
	for (int f = 0; f < 5; f++)
		maxdiff = fmax(maxdiff, fmax(fabs(p[f] - p2[f]), fabs(q[f] - q2[f])));
	CHECK(maxdiff < 1e-6, "rotm update equals the SGD rule (diff %g)", maxdiff);
	CHECK(fabs(lfg_dot(p, q, 5) - (p[0] * q[0] + p[1] * q[1] + p[2] * q[2] + p[3] * q[3] + p[4] * q[4])) < 1e-4,
		  "dot");
}

static void
test_options(void)
{
	LfgMfOptions o;
	LfgError	err;

	lfg_mf_options_default(&o);
	CHECK(lfg_mf_options_check(&o, &err) == LFG_OK, "defaults valid");
	CHECK(o.factors == 100 && o.epochs == 20 && o.lr == 0.005 && o.reg == 0.02 && o.init_std == 0.1,
		  "defaults are Surprise's");
	o.factors = 0;
	CHECK(lfg_mf_options_check(&o, &err) == LFG_EPARAM && strstr(err.msg, "factors"), "factors 0");
	lfg_mf_options_default(&o);
	o.lr = -1;
	CHECK(lfg_mf_options_check(&o, &err) == LFG_EPARAM, "negative lr");
	lfg_mf_options_default(&o);
	o.lr = NAN;
	CHECK(lfg_mf_options_check(&o, &err) == LFG_EPARAM, "NaN lr");
	lfg_mf_options_default(&o);
	o.epochs = LFG_MAX_EPOCHS + 1;
	CHECK(lfg_mf_options_check(&o, &err) == LFG_EPARAM, "too many epochs");
}

/* Training learns: held-out RMSE well below the global-mean baseline */
static void
test_training(void)
{
	Fixture		f;
	double		sse_mean = 0,
				mean = 0;

	build_fixture(&f, LFG_KIND_BIASSVD, 20, 30, 1, 300, 200, 15000);
	for (size_t j = 0; j < f.data.n; j++)
		mean += f.data.rating[j];
	mean /= f.data.n;
	for (size_t j = 0; j < f.data.n; j++)
		sse_mean += (f.data.rating[j] - mean) * (f.data.rating[j] - mean);
	CHECK(f.train_rmse < 0.9 * sqrt(sse_mean / f.data.n), "training fits: %g vs baseline %g",
		  f.train_rmse, sqrt(sse_mean / f.data.n));
	CHECK(f.model.mf.rating_min == 1.0f && f.model.mf.rating_max == 5.0f, "rating range");
	/* unknown ids fall back to mu + known bias, clipped */
	CHECK(fabs(lfg_mf_predict(&f.model.mf, -1, -1) - f.model.mf.mu) < 1e-6, "unknown both: mu");
	CHECK(fabs(lfg_mf_predict(&f.model.mf, -1, 3) - (f.model.mf.mu + f.model.mf.bi[3])) < 1e-5,
		  "unknown user: mu + b_i");
	for (int u = 0; u < 300; u += 7)
		for (int i = 0; i < 200; i += 5)
		{
			double		p = lfg_mf_predict(&f.model.mf, u, i);

			if (p < 1.0 || p > 5.0)
			{
				CHECK(0, "prediction %g outside the rating range", p);
				return;
			}
		}
}

/* Same seed, same bytes; other seed, other bytes */
static void
test_determinism(void)
{
	Fixture		a,
				b,
				c;

	build_fixture(&a, LFG_KIND_BIASSVD, 8, 5, 11, 100, 80, 3000);
	build_fixture(&b, LFG_KIND_BIASSVD, 8, 5, 11, 100, 80, 3000);
	build_fixture(&c, LFG_KIND_BIASSVD, 8, 5, 12, 100, 80, 3000);
	CHECK(a.size == b.size && memcmp(a.bytes, b.bytes, a.size) == 0, "same seed: identical bytes");
	CHECK(a.size == c.size && memcmp(a.bytes, c.bytes, a.size) != 0, "other seed: other bytes");
}

/* Train on rows (copied) with the given threads; the parameters in m */
static void
train_parallel(const LfgSynthData *d, int nu, int ni, int parallel, bool reverse, LfgMfParams *m)
{
	LfgRating  *t = malloc(sizeof(LfgRating) * d->n);
	LfgMfOptions o;
	LfgError	err;
	double		rmse;

	for (size_t j = 0; j < d->n; j++)
	{
		size_t		s = reverse ? d->n - 1 - j : j;

		t[j] = (LfgRating) {d->user[s], d->item[s], d->rating[s]};
	}
	lfg_mf_options_default(&o);
	o.factors = 16;
	o.epochs = 4;
	o.parallel = parallel;
	CHECK(lfg_mf_train_rows(t, d->n, nu, ni, &o, NULL, &A, m, &rmse, &err) == LFG_OK,
		  "blocked training with %d threads: %s", parallel, err.msg);
	free(t);
}

static bool
same_params(const LfgMfParams *a, const LfgMfParams *b)
{
	return memcmp(a->P, b->P, sizeof(float) * a->n_users * a->k) == 0 &&
		memcmp(a->Q, b->Q, sizeof(float) * a->n_items * a->k) == 0 &&
		memcmp(a->bu, b->bu, sizeof(float) * a->n_users) == 0 &&
		memcmp(a->bi, b->bi, sizeof(float) * a->n_items) == 0;
}

/*
 * The blocked SGD gives the same bits for 1, 2 and 5 threads and for the
 * ratings in another order, on a grid of more than the minimum size
 */
static void
test_parallel_identical(void)
{
	int			nu = 3000,
				ni = 1500;
	LfgSynthData d;
	LfgMfParams m1,
				m2,
				m5,
				mr;
	LfgError	err;

	CHECK(lfg_synth_generate(nu, ni, 60000, 3, &A, &d, &err) == LFG_OK, "synth: %s", err.msg);
	CHECK(lfg_mf_grid(d.n, nu, ni, 16) == LFG_MF_MIN_GRID, "small data: the minimum grid");
	CHECK(lfg_mf_grid(10000000, 60000, 22000, 100) == 17, "10M ratings, 100 factors: grid %d",
		  lfg_mf_grid(10000000, 60000, 22000, 100));
	train_parallel(&d, nu, ni, 1, false, &m1);
	train_parallel(&d, nu, ni, 2, false, &m2);
	train_parallel(&d, nu, ni, 5, false, &m5);
	train_parallel(&d, nu, ni, 2, true, &mr);
	CHECK(same_params(&m1, &m2), "parallel 1 and 2: identical parameters");
	CHECK(same_params(&m1, &m5), "parallel 1 and 5: identical parameters");
	CHECK(same_params(&m1, &mr), "input order does not matter");
}

static void
test_codec_roundtrip(int kind)
{
	Fixture		f;
	LfgModel	d;
	LfgError	err;
	LfgStatus	st;

	build_fixture(&f, kind, 6, 3, 3, 50, 40, 800);
	st = lfg_model_decode(f.bytes, f.size, crc32c_ref, &d, &err);
	CHECK(st == LFG_OK, "decode ok: %s", err.msg);
	if (st != LFG_OK)
		return;
	CHECK(d.mf.kind == kind && d.mf.n_users == 50 && d.mf.n_items == 40 && d.mf.k == 6, "dims");
	CHECK(memcmp(d.mf.Q, f.model.mf.Q, 40 * 6 * sizeof(float)) == 0, "Q roundtrip");
	CHECK(memcmp(d.mf.P, f.model.mf.P, 50 * 6 * sizeof(float)) == 0, "P roundtrip");
	CHECK((kind == LFG_KIND_SVD) == (d.mf.bu == NULL), "biases present only for biassvd");
	CHECK(d.options_len == sizeof(OPTS) - 1 && memcmp(d.options_json, OPTS, d.options_len) == 0, "options");
	CHECK(lfg_find_id(d.user_ids, 50, f.uids[17]) == 17, "user id lookup");
	CHECK(lfg_find_id(d.item_ids, 40, 6) == -1, "unknown item id");
	CHECK(lfg_mf_predict(&d.mf, 3, 4) == lfg_mf_predict(&f.model.mf, 3, 4), "same prediction");
}

/* Every truncation and every single-bit flip is refused with a status */
static void
test_codec_corruption(void)
{
	Fixture		f;
	LfgModel	d;
	LfgError	err;
	uint8_t    *buf;
	int			bad_trunc = 0,
				bad_flip = 0,
				corrupt = 0;

	build_fixture(&f, LFG_KIND_BIASSVD, 4, 2, 5, 12, 9, 40);
	buf = aligned_alloc(8, (f.size + 7) & ~(size_t) 7);
	for (size_t len = 0; len < f.size; len++)
	{
		memcpy(buf, f.bytes, len);
		if (lfg_model_decode(buf, len, crc32c_ref, &d, &err) != LFG_EFORMAT)
			bad_trunc++;
	}
	CHECK(bad_trunc == 0, "%d truncations not refused as format errors", bad_trunc);
	for (size_t bit = 0; bit < f.size * 8; bit++)
	{
		LfgStatus	st;

		memcpy(buf, f.bytes, f.size);
		buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
		st = lfg_model_decode(buf, f.size, crc32c_ref, &d, &err);
		if (st == LFG_OK)
			bad_flip++;
		corrupt += st == LFG_ECORRUPT;
	}
	CHECK(bad_flip == 0, "%d bit flips accepted", bad_flip);
	CHECK(corrupt > (int) f.size * 8 * 9 / 10, "most flips are checksum errors (%d)", corrupt);
	memset(buf, 0x5a, 72);
	memcpy(buf, "PK\003\004", 4);
	CHECK(lfg_model_decode(buf, 72, crc32c_ref, &d, &err) == LFG_EFORMAT, "foreign bytes");

	/* finite but extreme factors, with a valid checksum: scores would overflow */
	f.model.mf.Q[3] = 1e31f;
	{
		LfgStatus	st = lfg_model_encode(&f.model, crc32c_ref, buf, f.size, &err);

		if (st == LFG_OK)
			st = lfg_model_decode(buf, f.size, crc32c_ref, &d, &err);
		CHECK(st == LFG_EFORMAT && strstr(err.msg, "too large") != NULL,
			  "extreme factors refused (%s)", err.msg);
	}
	f.model.mf.Q[3] = 1e3f;		/* large but harmless */
	CHECK(lfg_model_encode(&f.model, crc32c_ref, buf, f.size, &err) == LFG_OK &&
		  lfg_model_decode(buf, f.size, crc32c_ref, &d, &err) == LFG_OK, "large factor accepted (%s)", err.msg);
	free(buf);
}

/* Store the CRC32C of buf's contents in its last 4 bytes */
static void
reseal(uint8_t *buf, size_t len)
{
	uint32_t	c = crc32c_ref(buf, len - 4);

	memcpy(buf + len - 4, &c, 4);
}

/*
 * Flags and reserved fields are zero in version 1: a non-zero one (a later
 * writer's flag) is refused even behind a valid CRC, and a model with
 * zeros there (any version-1 writer's) still decodes.
 */
static void
test_codec_reserved(void)
{
	static const struct
	{
		size_t		off;
		uint8_t		bit;
		const char *msg;
	}			cases[] = {
		{36, 0x01, "unknown flags 0x00000001"},
		{39, 0x80, "unknown flags 0x80000000"},
		{52, 0x01, "reserved header fields"},
		{56, 0x01, "reserved header fields"},
		{63, 0x80, "reserved header fields"},
		{64 + 4, 0x01, "reserved field of section 0"},
		{64 + 7 * 24 + 7, 0x80, "reserved field of section 7"},
	};
	Fixture		f;
	LfgModel	d;
	LfgError	err;
	uint8_t    *buf;

	build_fixture(&f, LFG_KIND_BIASSVD, 4, 2, 5, 12, 9, 40);
	buf = aligned_alloc(8, (f.size + 7) & ~(size_t) 7);
	memcpy(buf, f.bytes, f.size);
	reseal(buf, f.size);
	CHECK(lfg_model_decode(buf, f.size, crc32c_ref, &d, &err) == LFG_OK, "resealed model decodes");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		LfgStatus	st;

		memcpy(buf, f.bytes, f.size);
		CHECK(buf[cases[c].off] == 0, "byte %zu is zero as written", cases[c].off);
		buf[cases[c].off] = cases[c].bit;
		reseal(buf, f.size);
		st = lfg_model_decode(buf, f.size, crc32c_ref, &d, &err);
		CHECK(st == LFG_EFORMAT && strstr(err.msg, cases[c].msg) != NULL && err.hint[0] != '\0',
			  "byte %zu = 0x%02x refused: %s", cases[c].off, cases[c].bit, err.msg);
	}
	free(buf);
}

static void
test_synth(void)
{
	LfgSynthData a,
				b;
	LfgError	err;
	int			dup = 0;

	CHECK(lfg_synth_generate(200, 100, 5000, 9, &A, &a, &err) == LFG_OK, "synth");
	CHECK(lfg_synth_generate(200, 100, 5000, 9, &A, &b, &err) == LFG_OK, "synth again");
	CHECK(a.n == 5000, "exact rating count %zu", a.n);
	CHECK(memcmp(a.rating, b.rating, a.n * sizeof(float)) == 0 &&
		  memcmp(a.item, b.item, a.n * sizeof(int32_t)) == 0, "synth deterministic");
	for (size_t j = 1; j < a.n; j++)
		for (size_t l = j; l-- > 0 && a.user[l] == a.user[j];)
			dup += a.item[l] == a.item[j];
	CHECK(dup == 0, "no repeated (user, item) pairs (%d)", dup);
	CHECK(lfg_synth_generate(10, 10, 1000, 1, &A, &a, &err) == LFG_EPARAM, "too dense refused");

	/* the stream, in blocks of 1 to 700 ratings, gives the same ratings */
	{
		LfgSynthStream s;
		int32_t		u[700],
					it[700];
		float		r[700];
		size_t		pos = 0,
					got;
		int			same = 1;

		CHECK(lfg_synth_begin(200, 100, 5000, 9, &A, NULL, NULL, &s, &err) == LFG_OK, "stream");
		for (size_t block = 1; (got = lfg_synth_next(&s, block, u, it, r)) > 0; block = block * 7 % 701)
		{
			for (size_t j = 0; j < got; j++)
				same &= pos + j < b.n && u[j] == b.user[pos + j] && it[j] == b.item[pos + j] &&
					r[j] == b.rating[pos + j];
			pos += got;
		}
		CHECK(same && pos == 5000 && s.emitted == 5000, "stream equals the whole (%zu ratings)", pos);
		lfg_synth_end(&s, &A);
	}
}

/*
 * lfg_find_id and the direct index (lfg_id_index_find) against a linear
 * search: every id in and around ascending arrays of every length up to
 * 70, with gaps and negatives, and with the int64 extremes (too sparse for
 * the direct index: the binary search answers).
 */
static void
test_find_id(void)
{
	int64_t		ids[70];
	int32_t		slot[4 * 70 + 4096];
	int			wrong = 0,
				lookups = 0,
				direct = 0;

	for (int extremes = 0; extremes < 2; extremes++)
		for (int32_t n = 0; n <= 70; n++)
		{
			LfgIdIndex	ix;
			size_t		nslots;

			for (int32_t j = 0; j < n; j++)
				ids[j] = 3 * (int64_t) j - 40 + j % 2;
			if (extremes && n > 0)
				ids[0] = INT64_MIN;
			if (extremes && n > 1)
				ids[n - 1] = INT64_MAX;
			nslots = lfg_id_index_slots(ids, n);
			if (nslots > sizeof(slot) / sizeof(slot[0]))
			{
				wrong++;
				continue;
			}
			lfg_id_index_init(ids, n, nslots > 0 ? slot : NULL, nslots, &ix);
			direct += nslots > 0;
			for (int64_t id = -45; id <= 3 * 70 - 35; id++)
			{
				int64_t		probe[3] = {id, INT64_MIN, INT64_MAX};

				for (int p = 0; p < (id == -45 ? 3 : 1); p++)
				{
					int32_t		expect = -1;

					for (int32_t j = 0; j < n; j++)
						if (ids[j] == probe[p])
							expect = j;
					wrong += lfg_find_id(ids, n, probe[p]) != expect;
					wrong += lfg_id_index_find(&ix, probe[p]) != expect;
					lookups += 2;
				}
			}
		}
	CHECK(wrong == 0 && direct > 60, "lfg_find_id and the direct index (%d arrays) equal a "
		  "linear search (%d of %d lookups differ)", direct, wrong, lookups);
}

int
main(void)
{
	test_find_id();
	lfg_blas_single_thread();
	test_crc();
	test_model_metric();
	test_rng();
	test_sgd_update();
	test_options();
	test_synth();
	test_training();
	test_determinism();
	test_parallel_identical();
	test_codec_roundtrip(LFG_KIND_SVD);
	test_codec_roundtrip(LFG_KIND_BIASSVD);
	test_codec_corruption();
	test_codec_reserved();
	return report_results();
}
