/*
 * lfg_model.c
 *	  Encode and decode the model bytes.
 *
 * Layout (all integers and floats little-endian, doc/model-format.md):
 *	 header (64 bytes) | section table (24 bytes each) | sections, each at an
 *	 8-byte aligned offset | CRC32C of everything before it (4 bytes)
 * The decoder checks, in this order: the magic, the byte-order marker, the
 * total length, the CRC, the format version, the flags and reserved fields
 * (zero in version 1: a later writer's flag is refused, not misread), then
 * every dimension, offset and length before it reads a section, and finally
 * the contents (sorted ids, finite floats). It never reads outside
 * [buf, buf + len).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lfg_model.h"

typedef struct ModelHeader
{
	char		magic[4];
	uint32_t	byte_order;
	uint16_t	version;
	uint16_t	kind;
	uint32_t	n_sections;
	uint64_t	total_len;
	int32_t		n_users;
	int32_t		n_items;
	int32_t		k;
	uint32_t	flags;
	float		mu;
	float		rating_min;
	float		rating_max;
	uint32_t	reserved1;
	uint64_t	reserved2;
} ModelHeader;

typedef struct SectionEntry
{
	uint32_t	tag;
	uint32_t	reserved;
	uint64_t	offset;
	uint64_t	length;
} SectionEntry;

/* The generator configuration as stored (section GCFG) */
typedef struct GenConfigDisk
{
	int32_t		n_dense;
	int32_t		h1;
	int32_t		h2;
	int32_t		channels;
	int32_t		batchnorm;
	int32_t		input;
	int32_t		aux;
	int32_t		n_genders;
	int32_t		n_jobs;
	float		leaky_slope;
	float		dropout;
	float		age_mean;
	float		age_std;
	uint32_t	reserved[3];
} GenConfigDisk;

_Static_assert(sizeof(GenConfigDisk) == LFG_GEN_CONFIG_SIZE, "generator config size");
_Static_assert(sizeof(ModelHeader) == LFG_MODEL_HEADER_SIZE, "header size");
_Static_assert(sizeof(SectionEntry) == LFG_MODEL_SECTION_SIZE, "section size");

/* The sections a model of this kind has, in the order they are written */
typedef struct SectionSpec
{
	uint32_t	tag;
	uint64_t	length;
	const void *data;
} SectionSpec;

static size_t
align8(size_t x)
{
	return (x + 7) & ~(size_t) 7;
}

/* The generator configuration of m in its stored form */
static void
gen_config_to_disk(const LfgModel *m, GenConfigDisk *g)
{
	memset(g, 0, sizeof(*g));
	g->n_dense = m->net.gen.n_dense;
	g->h1 = m->net.gen.h1;
	g->h2 = m->net.gen.h2;
	g->channels = m->net.gen.channels;
	g->batchnorm = m->net.gen.batchnorm;
	g->input = m->net.input;
	g->aux = m->net.aux;
	g->n_genders = m->net.n_genders;
	g->n_jobs = m->net.n_jobs;
	g->leaky_slope = m->net.gen.leaky_slope;
	g->dropout = m->net.gen.dropout;
	g->age_mean = m->net.age_mean;
	g->age_std = m->net.age_std;
}

/*
 * List the sections of m with their lengths; returns the count. For kind
 * lfg, cfg receives the stored generator configuration and m->net.layout
 * must be set.
 */
static int
model_sections(const LfgModel *m, SectionSpec *s, GenConfigDisk *cfg)
{
	const LfgMfParams *p = &m->mf;
	uint64_t	nu = (uint64_t) p->n_users,
				ni = (uint64_t) p->n_items,
				k = (uint64_t) p->k;
	int			n = 0;

	s[n++] = (SectionSpec) {LFG_SEC_USER_IDS, nu * 8, m->user_ids};
	s[n++] = (SectionSpec) {LFG_SEC_ITEM_IDS, ni * 8, m->item_ids};
	if (p->kind == LFG_KIND_EASE)
	{
		/* the length of EUIT is variable: checked against EUPT in check_contents */
		s[n++] = (SectionSpec) {LFG_SEC_EASE_B, ni * ni * 4, m->ease.B};
		s[n++] = (SectionSpec) {LFG_SEC_EASE_POP, ni * 4, m->ease.pop};
		s[n++] = (SectionSpec) {LFG_SEC_EASE_PTR, (nu + 1) * 8, m->ease.user_ptr};
		s[n++] = (SectionSpec) {LFG_SEC_EASE_ITEMS, m->ease.n_rated * 4, m->ease.user_items};
		s[n++] = (SectionSpec) {LFG_SEC_OPTIONS, m->options_len, m->options_json};
		s[n++] = (SectionSpec) {LFG_SEC_METRICS, m->metrics_len, m->metrics_json};
		return n;
	}
	s[n++] = (SectionSpec) {LFG_SEC_P, nu * k * 4, p->P};
	s[n++] = (SectionSpec) {LFG_SEC_Q, ni * k * 4, p->Q};
	if (p->kind == LFG_KIND_BIASSVD || p->kind == LFG_KIND_LFG)
	{
		s[n++] = (SectionSpec) {LFG_SEC_BU, nu * 4, p->bu};
		s[n++] = (SectionSpec) {LFG_SEC_BI, ni * 4, p->bi};
	}
	if (p->kind == LFG_KIND_LFG)
	{
		gen_config_to_disk(m, cfg);
		s[n++] = (SectionSpec) {LFG_SEC_GEN_CONFIG, LFG_GEN_CONFIG_SIZE, cfg};
		s[n++] = (SectionSpec) {LFG_SEC_GEN_THETA, (uint64_t) m->net.layout.total * 4, m->net.theta};
		s[n++] = (SectionSpec) {LFG_SEC_GEN_RUNNING, (uint64_t) m->net.layout.n_running * 4, m->net.running};
		s[n++] = (SectionSpec) {LFG_SEC_VOCAB_GENDER, m->vocab_gender_len, m->vocab_gender};
		s[n++] = (SectionSpec) {LFG_SEC_VOCAB_JOB, m->vocab_job_len, m->vocab_job};
	}
	s[n++] = (SectionSpec) {LFG_SEC_OPTIONS, m->options_len, m->options_json};
	s[n++] = (SectionSpec) {LFG_SEC_METRICS, m->metrics_len, m->metrics_json};
	/* lfg 0.2.0: the optional ranking prior comes last, so older models keep their layout */
	if (p->kind == LFG_KIND_LFG && p->rank_prior != NULL)
		s[n++] = (SectionSpec) {LFG_SEC_RANK_PRIOR, ni * 4, p->rank_prior};
	/* then the optional learned fold-in (lfg_foldin.h) */
	if (p->kind == LFG_KIND_LFG && m->net.foldin != NULL)
		s[n++] = (SectionSpec) {LFG_SEC_FOLDIN, LFG_FOLDIN_TABLE_SIZE(k), m->net.foldin};
	/* then, with the fold-in, its optional base prior */
	if (p->kind == LFG_KIND_LFG && m->net.foldin != NULL && m->net.foldin_base != NULL)
		s[n++] = (SectionSpec) {LFG_SEC_FOLDIN_BASE,
			LFG_FOLDIN_BASE_SIZE(ni, k, m->net.foldin_base->k0), m->net.foldin_base};
	/* then the optional ranking head and generator (0.2.0): all five or none */
	if (p->kind == LFG_KIND_LFG && p->rank_R != NULL)
	{
		s[n++] = (SectionSpec) {LFG_SEC_RANK_R, ni * k * 4, p->rank_R};
		s[n++] = (SectionSpec) {LFG_SEC_RANK_C, ni * 4, p->rank_c};
		s[n++] = (SectionSpec) {LFG_SEC_RANK_P, nu * k * 4, p->rank_P};
		s[n++] = (SectionSpec) {LFG_SEC_RANK_THETA, (uint64_t) m->net.layout.total * 4, m->net.rank_theta};
		s[n++] = (SectionSpec) {LFG_SEC_RANK_RUNNING, (uint64_t) m->net.layout.n_running * 4, m->net.rank_running};
	}
	return n;
}

/* Sections whose length is not fixed by the dimensions */
static bool
variable_length(uint32_t tag)
{
	return tag == LFG_SEC_OPTIONS || tag == LFG_SEC_METRICS ||
		tag == LFG_SEC_VOCAB_GENDER || tag == LFG_SEC_VOCAB_JOB || tag == LFG_SEC_EASE_ITEMS;
}

/* Check the dimensions a header declares */
static LfgStatus
check_dims(int kind, int64_t nu, int64_t ni, int64_t k, LfgError *err)
{
	if (lfg_kind_name(kind) == NULL)
		return lfg_error(err, LFG_EFORMAT, NULL, "unknown model kind %d", kind);
	/* an EASE model has no factors */
	if (nu < 1 || nu > LFG_MAX_IDS || ni < 1 || ni > LFG_MAX_IDS ||
		(kind == LFG_KIND_EASE ? k != 0 : (k < LFG_MIN_FACTORS || k > LFG_MAX_FACTORS)))
		return lfg_error(err, LFG_EFORMAT, NULL,
						 "model dimensions out of range (%lld users, %lld items, %lld factors)",
						 (long long) nu, (long long) ni, (long long) k);
	return LFG_OK;
}

/* The encoded size of m */
LfgStatus
lfg_model_encoded_size(const LfgModel *m, size_t *size, LfgError *err)
{
	SectionSpec s[LFG_MODEL_MAX_SECTIONS];
	GenConfigDisk cfg;
	int			n;
	uint64_t	total;
	LfgStatus	st;

	if ((st = check_dims(m->mf.kind, m->mf.n_users, m->mf.n_items, m->mf.k, err)) != LFG_OK)
		return st;
	if (m->options_len > LFG_MODEL_MAX_JSON || m->metrics_len > LFG_MODEL_MAX_JSON)
		return lfg_error(err, LFG_ELIMIT, NULL, "model metadata too large");
	n = model_sections(m, s, &cfg);
	total = LFG_MODEL_HEADER_SIZE + (uint64_t) n * LFG_MODEL_SECTION_SIZE;
	for (int j = 0; j < n; j++)
		total = align8(total) + s[j].length;
	total += 4;
	if (total > SIZE_MAX / 2)
		return lfg_error(err, LFG_ELIMIT, NULL, "model too large");
	*size = (size_t) total;
	return LFG_OK;
}

/* Write m into buf, which holds exactly lfg_model_encoded_size bytes */
LfgStatus
lfg_model_encode(const LfgModel *m, LfgCrcFn crc, uint8_t *buf, size_t size,
				 LfgError *err)
{
	SectionSpec s[LFG_MODEL_MAX_SECTIONS];
	GenConfigDisk cfg;
	ModelHeader h;
	size_t		expected,
				pos;
	int			n;
	uint32_t	c;
	LfgStatus	st;

	if ((st = lfg_model_encoded_size(m, &expected, err)) != LFG_OK)
		return st;
	if (size != expected)
		return lfg_error(err, LFG_EPARAM, NULL, "model buffer has the wrong size");
	n = model_sections(m, s, &cfg);
	memset(buf, 0, size);
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, LFG_MODEL_MAGIC, 4);
	h.byte_order = LFG_MODEL_BYTE_ORDER;
	h.version = LFG_MODEL_VERSION;
	h.kind = (uint16_t) m->mf.kind;
	h.n_sections = (uint32_t) n;
	h.total_len = size;
	h.n_users = m->mf.n_users;
	h.n_items = m->mf.n_items;
	h.k = m->mf.k;
	h.mu = m->mf.mu;
	h.rating_min = m->mf.rating_min;
	h.rating_max = m->mf.rating_max;
	memcpy(buf, &h, sizeof(h));

	pos = LFG_MODEL_HEADER_SIZE + (size_t) n * LFG_MODEL_SECTION_SIZE;
	for (int j = 0; j < n; j++)
	{
		SectionEntry e = {s[j].tag, 0, 0, s[j].length};

		pos = align8(pos);
		e.offset = pos;
		memcpy(buf + LFG_MODEL_HEADER_SIZE + (size_t) j * LFG_MODEL_SECTION_SIZE, &e, sizeof(e));
		if (s[j].length > 0)
			memcpy(buf + pos, s[j].data, s[j].length);
		pos += s[j].length;
	}
	c = crc(buf, size - 4);
	memcpy(buf + size - 4, &c, 4);
	return LFG_OK;
}

/* Check that ids are strictly ascending (the lookup is a binary search) */
static bool
ids_sorted(const int64_t *ids, int32_t n)
{
	for (int32_t j = 1; j < n; j++)
		if (ids[j - 1] >= ids[j])
			return false;
	return true;
}

/* Check that every float is finite */
static bool
all_finite(const float *x, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (!isfinite(x[j]))
			return false;
	return true;
}

/* The largest absolute value of n floats (0 for none) */
static double
max_abs(const float *x, size_t n)
{
	double		m = 0.0;

	for (size_t j = 0; x != NULL && j < n; j++)
		if (fabs(x[j]) > m)
			m = fabs(x[j]);
	return m;
}

/* Check a JSON text section: non-empty, an object, no NUL bytes */
static bool
json_plausible(const char *s, uint64_t len)
{
	return len >= 2 && len <= LFG_MODEL_MAX_JSON && s[0] == '{' &&
		s[len - 1] == '}' && memchr(s, '\0', len) == NULL;
}

/* Check a string table: count, monotone offsets, no NUL bytes */
static bool
vocab_valid(const uint8_t *t, uint64_t len, int32_t expected_count)
{
	uint32_t	count,
				off,
				prev = 0;
	uint64_t	data;

	if (len < 8)
		return false;
	memcpy(&count, t, 4);
	if ((int64_t) count != expected_count || count > LFG_MAX_VOCAB ||
		len < 4 + 4 * ((uint64_t) count + 1))
		return false;
	data = len - 4 - 4 * ((uint64_t) count + 1);
	for (uint32_t j = 0; j <= count; j++)
	{
		memcpy(&off, t + 4 + 4 * (size_t) j, 4);
		if ((j == 0 && off != 0) || off < prev || off > data)
			return false;
		prev = off;
	}
	return prev == data && memchr(t + 4 + 4 * ((size_t) count + 1), 0, data) == NULL;
}

/* Read the generator configuration (section GCFG) into out->net */
static LfgStatus
decode_gen_config(const uint8_t *p, LfgModel *out, LfgError *err)
{
	GenConfigDisk g;
	LfgNet	   *net = &out->net;
	LfgStatus	st;

	memcpy(&g, p, sizeof(g));
	if (g.n_genders < 0 || g.n_genders > LFG_MAX_VOCAB || g.n_jobs < 0 ||
		g.n_jobs > LFG_MAX_VOCAB || (g.input != LFG_INPUT_RAW && g.input != LFG_INPUT_CENTERED) ||
		(g.aux != 0 && g.aux != 1) ||
		g.n_dense != lfg_net_dense_width(g.aux, g.input, g.n_genders, g.n_jobs) ||
		g.channels != (g.input == LFG_INPUT_CENTERED ? 2 : 1) ||
		!isfinite(g.age_mean) || !(g.age_std > 0.0f) || !isfinite(g.age_std))
		return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad generator configuration");
	if (g.reserved[0] != 0 || g.reserved[1] != 0 || g.reserved[2] != 0)
		return lfg_error(err, LFG_EFORMAT,
						 "A newer lfg may have written this model: upgrade the extension to read it.",
						 "invalid lfg model: reserved generator configuration fields are not zero");
	net->gen = (LfgGenConfig) {out->mf.n_items, g.n_dense, g.h1, g.h2, out->mf.k, g.channels,
	g.batchnorm, g.leaky_slope, g.dropout};
	if ((st = lfg_gen_config_check(&net->gen, err)) != LFG_OK)
	{
		char		why[sizeof(err->msg)];

		memcpy(why, err->msg, sizeof(why));
		return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: %s", why);
	}
	net->input = g.input;
	net->aux = g.aux;
	net->n_genders = g.n_genders;
	net->n_jobs = g.n_jobs;
	net->age_mean = g.age_mean;
	net->age_std = g.age_std;
	lfg_gen_layout(&net->gen, &net->layout);
	return LFG_OK;
}

/* Read and check the section table; fill the pointers of out */
static LfgStatus
decode_sections(const uint8_t *buf, uint64_t body_end, const ModelHeader *h,
				LfgModel *out, LfgError *err)
{
	SectionSpec want[LFG_MODEL_MAX_SECTIONS];
	SectionEntry e[LFG_MODEL_MAX_SECTIONS];
	GenConfigDisk cfg;
	int			nwant;
	uint32_t	optional;
	uint64_t	table_end = LFG_MODEL_HEADER_SIZE +
		(uint64_t) h->n_sections * LFG_MODEL_SECTION_SIZE;
	LfgStatus	st;

	if (h->n_sections > LFG_MODEL_MAX_SECTIONS || table_end > body_end)
		return lfg_error(err, LFG_EFORMAT, NULL, "model has %u sections", h->n_sections);
	/* bounds and order of every section before any is read */
	for (uint32_t j = 0; j < h->n_sections; j++)
	{
		memcpy(&e[j], buf + LFG_MODEL_HEADER_SIZE + (size_t) j * LFG_MODEL_SECTION_SIZE,
			   sizeof(SectionEntry));
		if (e[j].offset % 8 != 0 || e[j].offset < table_end ||
			e[j].offset > body_end || e[j].length > body_end - e[j].offset ||
			(j > 0 && e[j].offset < e[j - 1].offset + e[j - 1].length))
			return lfg_error(err, LFG_EFORMAT, NULL, "model section %u lies outside the model", j);
		if (e[j].reserved != 0)
			return lfg_error(err, LFG_EFORMAT,
							 "A newer lfg may have written this model: upgrade the extension to read it.",
							 "invalid lfg model: reserved field of section %u is not zero", j);
	}
	/* an lfg model's layout depends on its generator configuration (section 6) */
	if (out->mf.kind == LFG_KIND_LFG)
	{
		if (h->n_sections < 7 || e[6].tag != LFG_SEC_GEN_CONFIG ||
			e[6].length != LFG_GEN_CONFIG_SIZE)
			return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: no generator configuration");
		if ((st = decode_gen_config(buf + e[6].offset, out, err)) != LFG_OK)
			return st;
		/*
		 * the optional sections follow the 13 of every lfg model, in this
		 * order: the ranking prior, the learned fold-in and its base prior,
		 * then the ranking head's five (their lengths are checked below,
		 * against model_sections)
		 */
		optional = 13;
		if (optional < h->n_sections && e[optional].tag == LFG_SEC_RANK_PRIOR)
			out->mf.rank_prior = (float *) (buf + e[optional++].offset);
		if (optional < h->n_sections && e[optional].tag == LFG_SEC_FOLDIN)
			out->net.foldin = (const LfgFoldinTable *) (buf + e[optional++].offset);
		if (out->net.foldin != NULL && optional < h->n_sections &&
			e[optional].tag == LFG_SEC_FOLDIN_BASE)
		{
			const LfgFoldinBase *fb = (const LfgFoldinBase *) (buf + e[optional].offset);

			/* its length depends on its header's k0: read and bounded first */
			if (e[optional].length < sizeof(LfgFoldinBase) ||
				fb->k0 < LFG_MIN_FACTORS || fb->k0 > LFG_MAX_FACTORS)
				return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad fold-in base prior");
			out->net.foldin_base = fb;
			optional++;
		}
		/* the ranking head's pointers are all set by tag below */
		if (optional < h->n_sections && e[optional].tag == LFG_SEC_RANK_R)
			out->mf.rank_R = (float *) (buf + e[optional].offset);
	}
	nwant = model_sections(out, want, &cfg);
	if (h->n_sections != (uint32_t) nwant)
		return lfg_error(err, LFG_EFORMAT, NULL,
						 "model has %u sections where %d are expected", h->n_sections, nwant);
	for (int j = 0; j < nwant; j++)
	{
		if (e[j].tag != want[j].tag)
			return lfg_error(err, LFG_EFORMAT, NULL, "model section %d has an unexpected tag", j);
		if (e[j].length != want[j].length && !variable_length(want[j].tag))
			return lfg_error(err, LFG_EFORMAT, NULL,
							 "model section %d has length %llu where %llu is expected",
							 j, (unsigned long long) e[j].length,
							 (unsigned long long) want[j].length);
	}
	for (int j = 0; j < nwant; j++)
	{
		const void *p = buf + e[j].offset;

		switch (e[j].tag)
		{
			case LFG_SEC_USER_IDS:
				out->user_ids = p;
				break;
			case LFG_SEC_ITEM_IDS:
				out->item_ids = p;
				break;
			case LFG_SEC_P:
				out->mf.P = (float *) p;
				break;
			case LFG_SEC_Q:
				out->mf.Q = (float *) p;
				break;
			case LFG_SEC_BU:
				out->mf.bu = (float *) p;
				break;
			case LFG_SEC_BI:
				out->mf.bi = (float *) p;
				break;
			case LFG_SEC_GEN_THETA:
				out->net.theta = (float *) p;
				break;
			case LFG_SEC_GEN_RUNNING:
				out->net.running = (float *) p;
				break;
			case LFG_SEC_RANK_R:
				out->mf.rank_R = (float *) p;
				break;
			case LFG_SEC_RANK_C:
				out->mf.rank_c = (float *) p;
				break;
			case LFG_SEC_RANK_P:
				out->mf.rank_P = (float *) p;
				break;
			case LFG_SEC_RANK_THETA:
				out->net.rank_theta = (float *) p;
				break;
			case LFG_SEC_RANK_RUNNING:
				out->net.rank_running = (float *) p;
				break;
			case LFG_SEC_VOCAB_GENDER:
				out->vocab_gender = p;
				out->vocab_gender_len = (uint32_t) e[j].length;
				if (!vocab_valid(p, e[j].length, out->net.n_genders))
					return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad gender vocabulary");
				break;
			case LFG_SEC_VOCAB_JOB:
				out->vocab_job = p;
				out->vocab_job_len = (uint32_t) e[j].length;
				if (!vocab_valid(p, e[j].length, out->net.n_jobs))
					return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad job vocabulary");
				break;
			case LFG_SEC_OPTIONS:
				out->options_json = p;
				out->options_len = (uint32_t) e[j].length;
				if (!json_plausible(p, e[j].length))
					return lfg_error(err, LFG_EFORMAT, NULL, "model options are not a JSON object");
				break;
			case LFG_SEC_EASE_B:
				out->ease.B = (float *) p;
				break;
			case LFG_SEC_EASE_POP:
				out->ease.pop = (float *) p;
				break;
			case LFG_SEC_EASE_PTR:
				out->ease.user_ptr = (int64_t *) p;
				break;
			case LFG_SEC_EASE_ITEMS:
				out->ease.user_items = (int32_t *) p;
				out->ease.n_rated = e[j].length / 4;
				if (e[j].length % 4 != 0)
					return lfg_error(err, LFG_EFORMAT, NULL, "invalid ease model: bad user lists");
				break;
			case LFG_SEC_METRICS:
				out->metrics_json = p;
				out->metrics_len = (uint32_t) e[j].length;
				if (!json_plausible(p, e[j].length))
					return lfg_error(err, LFG_EFORMAT, NULL, "model metrics are not a JSON object");
				break;
		}
	}
	return LFG_OK;
}

/* Check the contents: ids sorted, parameters finite */
static LfgStatus
check_contents(const LfgModel *m, LfgError *err)
{
	const LfgMfParams *p = &m->mf;
	size_t		k = (size_t) p->k;

	if (!ids_sorted(m->user_ids, p->n_users) || !ids_sorted(m->item_ids, p->n_items))
		return lfg_error(err, LFG_EFORMAT, NULL, "model id maps are not strictly ascending");
	if (p->kind == LFG_KIND_EASE)
	{
		if (!lfg_ease_lists_valid(&m->ease))
			return lfg_error(err, LFG_EFORMAT, NULL, "invalid ease model: bad user lists");
		if (!all_finite(m->ease.B, (size_t) p->n_items * (size_t) p->n_items) ||
			!all_finite(m->ease.pop, (size_t) p->n_items))
			return lfg_error(err, LFG_EFORMAT, NULL, "model parameters are not finite");
		return LFG_OK;
	}
	if (!all_finite(p->P, (size_t) p->n_users * k) || !all_finite(p->Q, (size_t) p->n_items * k) ||
		(p->bu && !all_finite(p->bu, (size_t) p->n_users)) ||
		(p->bi && !all_finite(p->bi, (size_t) p->n_items)) ||
		(m->net.theta && !all_finite(m->net.theta, m->net.layout.total)) ||
		(m->net.running && !all_finite(m->net.running, m->net.layout.n_running)) ||
		(p->rank_prior && !all_finite(p->rank_prior, (size_t) p->n_items)) ||
		(p->rank_R && (!all_finite(p->rank_R, (size_t) p->n_items * k) ||
					   !all_finite(p->rank_c, (size_t) p->n_items) ||
					   !all_finite(p->rank_P, (size_t) p->n_users * k) ||
					   !all_finite(m->net.rank_theta, m->net.layout.total) ||
					   !all_finite(m->net.rank_running, m->net.layout.n_running))))
		return lfg_error(err, LFG_EFORMAT, NULL, "model parameters are not finite");
	if (m->net.foldin && !lfg_foldin_table_valid(m->net.foldin, p->k, m->net.foldin_base != NULL))
		return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad learned fold-in table");
	if (m->net.foldin_base && !lfg_foldin_base_valid(m->net.foldin_base, p->n_items, p->k))
		return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad fold-in base prior");
	{
		/*
		 * Every score (mu + b_u + b_i + p . q, for a stored user or the
		 * generator's output, whose factors are at most 1 in absolute value)
		 * must stay far from float overflow, so that ordering is defined.
		 */
		double		q = max_abs(p->Q, (size_t) p->n_items * k);
		double		bound = fabs(p->mu) + max_abs(p->bu, (size_t) p->n_users) +
			max_abs(p->bi, (size_t) p->n_items) +
			(double) k * q * fmax(1.0, max_abs(p->P, (size_t) p->n_users * k));

		/* the ranking head's scores, c_i + r_u . r_i, likewise */
		if (p->rank_R != NULL)
			bound = fmax(bound, max_abs(p->rank_c, (size_t) p->n_items) +
						 (double) k * max_abs(p->rank_R, (size_t) p->n_items * k) *
						 fmax(1.0, max_abs(p->rank_P, (size_t) p->n_users * k)));
		if (!(bound <= LFG_MODEL_MAX_SCORE))
			return lfg_error(err, LFG_EFORMAT, NULL,
							 "model parameters are too large: scores could reach %g", bound);
	}
	for (int g = 0; g < 2 && m->net.gen.batchnorm; g++)
	{
		/* running statistics: mean1, var1 (h1 each), mean2, var2 (h2 each) */
		const float *running = g == 0 ? m->net.running : m->net.rank_running;
		const float *var1,
				   *var2;

		if (running == NULL)
			continue;
		var1 = running + m->net.gen.h1;
		var2 = running + 2 * m->net.gen.h1 + m->net.gen.h2;
		for (int32_t j = 0; j < m->net.gen.h1; j++)
			if (var1[j] < 0.0f)
				return lfg_error(err, LFG_EFORMAT, NULL, "model BatchNorm variances are negative");
		for (int32_t j = 0; j < m->net.gen.h2; j++)
			if (var2[j] < 0.0f)
				return lfg_error(err, LFG_EFORMAT, NULL, "model BatchNorm variances are negative");
	}
	return LFG_OK;
}

static LfgStatus decode(const uint8_t *buf, size_t len, LfgCrcFn crc, bool contents,
					  LfgModel *out, LfgError *err);

/* Decode and check model bytes; see the file header for the order of checks */
LfgStatus
lfg_model_decode(const uint8_t *buf, size_t len, LfgCrcFn crc, LfgModel *out,
				 LfgError *err)
{
	return decode(buf, len, crc, true, out, err);
}

/* Decode bytes already accepted by lfg_model_decode (lfg_model.h) */
LfgStatus
lfg_model_decode_trusted(const uint8_t *buf, size_t len, LfgModel *out, LfgError *err)
{
	return decode(buf, len, NULL, false, out, err);
}

/* lfg_model_decode, with the CRC checked when crc is set, the contents when contents */
static LfgStatus
decode(const uint8_t *buf, size_t len, LfgCrcFn crc, bool contents, LfgModel *out,
	   LfgError *err)
{
	static const char *hint = "The bytes are not an lfg model: store only values returned by lfg_fit.";
	static const char *newer_hint = "A newer lfg may have written this model: upgrade the extension to read it.";
	ModelHeader h;
	uint32_t	stored,
				actual;
	LfgStatus	st;

	memset(out, 0, sizeof(*out));
	if (((uintptr_t) buf & 7) != 0)
		return lfg_error(err, LFG_EPARAM, NULL, "model buffer is not 8-byte aligned");
	if (len < 4 || memcmp(buf, LFG_MODEL_MAGIC, 4) != 0)
		return lfg_error(err, LFG_EFORMAT, hint, "invalid lfg model: wrong magic number");
	if (len < LFG_MODEL_HEADER_SIZE + 4)
		return lfg_error(err, LFG_EFORMAT, hint,
						 "invalid lfg model: %zu bytes is shorter than the header", len);
	memcpy(&h, buf, sizeof(h));
	if (h.byte_order != LFG_MODEL_BYTE_ORDER)
		return lfg_error(err, LFG_EFORMAT, hint,
						 "invalid lfg model: byte order marker 0x%08x does not match this machine",
						 h.byte_order);
	if (h.total_len != len)
		return lfg_error(err, LFG_EFORMAT, "The model bytes were truncated or extended.",
						 "invalid lfg model: header says %llu bytes but %zu are present",
						 (unsigned long long) h.total_len, len);
	memcpy(&stored, buf + len - 4, 4);
	actual = crc != NULL ? crc(buf, len - 4) : stored;
	if (stored != actual)
	{
		lfg_error(err, LFG_ECORRUPT, "Restore the model from a backup or train it again.",
				  "lfg model checksum mismatch");
		lfg_error_detail(err, "The stored CRC32C is %08x, the bytes give %08x.", stored, actual);
		return LFG_ECORRUPT;
	}
	if (h.version != LFG_MODEL_VERSION)
		return lfg_error(err, LFG_EFORMAT, "Upgrade the lfg extension to read this model.",
						 "unsupported lfg model format version %u (this build reads version %d)",
						 h.version, LFG_MODEL_VERSION);
	/* version 1 defines no flag and writes zeros in the reserved fields */
	if (h.flags != 0)
		return lfg_error(err, LFG_EFORMAT, newer_hint,
						 "invalid lfg model: unknown flags 0x%08x", h.flags);
	if (h.reserved1 != 0 || h.reserved2 != 0)
		return lfg_error(err, LFG_EFORMAT, newer_hint,
						 "invalid lfg model: reserved header fields are not zero");
	if ((st = check_dims(h.kind, h.n_users, h.n_items, h.k, err)) != LFG_OK)
		return st;
	if (!isfinite(h.mu) || !isfinite(h.rating_min) || !isfinite(h.rating_max) ||
		h.rating_min > h.rating_max)
		return lfg_error(err, LFG_EFORMAT, NULL, "invalid lfg model: bad rating statistics");
	out->mf.kind = h.kind;
	out->mf.n_users = h.n_users;
	out->mf.n_items = h.n_items;
	out->mf.k = h.k;
	out->mf.mu = h.mu;
	out->mf.rating_min = h.rating_min;
	out->mf.rating_max = h.rating_max;
	if (h.kind == LFG_KIND_EASE)
	{
		out->ease.n_users = h.n_users;
		out->ease.n_items = h.n_items;
	}
	if ((st = decode_sections(buf, len - 4, &h, out, err)) != LFG_OK)
		return st;
	return contents ? check_contents(out, err) : LFG_OK;
}

/* Dense index of id in a strictly ascending array, or -1 */
int32_t
lfg_find_id(const int64_t *ids, int32_t n, int64_t id)
{
	int32_t		lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (ids[mid] == id)
			return mid;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* See lfg_model.h: at most 4 slots per id plus 4096 */
size_t
lfg_id_index_slots(const int64_t *ids, int32_t n)
{
	uint64_t	span;

	if (n <= 0)
		return 0;
	span = (uint64_t) ids[n - 1] - (uint64_t) ids[0] + 1;
	return span != 0 && span <= 4 * (uint64_t) n + 4096 ? (size_t) span : 0;
}

/* See lfg_model.h; slot has nslots = lfg_id_index_slots(ids, n) entries, or is NULL */
void
lfg_id_index_init(const int64_t *ids, int32_t n, int32_t *slot, size_t nslots, LfgIdIndex *ix)
{
	ix->ids = ids;
	ix->n = n;
	ix->base = n > 0 ? ids[0] : 0;
	ix->span = slot != NULL ? nslots : 0;
	ix->slot = slot;
	if (slot == NULL)
		return;
	for (size_t j = 0; j < nslots; j++)
		slot[j] = -1;
	for (int32_t i = 0; i < n; i++)
		slot[(uint64_t) ids[i] - (uint64_t) ix->base] = i;
}

/* Size of a string table of n strings */
size_t
lfg_vocab_size(const char *const *strings, const uint32_t *lens, int32_t n)
{
	size_t		size = 4 + 4 * ((size_t) n + 1);

	(void) strings;
	for (int32_t j = 0; j < n; j++)
		size += lens[j];
	return size;
}

/* Write a string table (see lfg_model.h) */
void
lfg_vocab_write(const char *const *strings, const uint32_t *lens, int32_t n, uint8_t *out)
{
	uint32_t	count = (uint32_t) n,
				off = 0;
	uint8_t    *data = out + 4 + 4 * ((size_t) n + 1);

	memcpy(out, &count, 4);
	for (int32_t j = 0; j < n; j++)
	{
		memcpy(out + 4 + 4 * (size_t) j, &off, 4);
		memcpy(data + off, strings[j], lens[j]);
		off += lens[j];
	}
	memcpy(out + 4 + 4 * (size_t) n, &off, 4);
}

/* Number of strings in a (checked) string table */
int32_t
lfg_vocab_count(const uint8_t *tab)
{
	uint32_t	count;

	if (tab == NULL)
		return 0;
	memcpy(&count, tab, 4);
	return (int32_t) count;
}

/* String j of a checked string table */
const char *
lfg_vocab_get(const uint8_t *tab, int32_t j, uint32_t *len)
{
	uint32_t	count = (uint32_t) lfg_vocab_count(tab),
				a,
				b;

	memcpy(&a, tab + 4 + 4 * (size_t) j, 4);
	memcpy(&b, tab + 4 + 4 * ((size_t) j + 1), 4);
	*len = b - a;
	return (const char *) tab + 4 + 4 * ((size_t) count + 1) + a;
}

/* Index of s in a checked string table, or -1 */
int32_t
lfg_vocab_find(const uint8_t *tab, const char *s, size_t len)
{
	int32_t		n = lfg_vocab_count(tab);

	for (int32_t j = 0; j < n; j++)
	{
		uint32_t	l;
		const char *v = lfg_vocab_get(tab, j, &l);

		if (l == len && memcmp(v, s, len) == 0)
			return j;
	}
	return -1;
}

/*
 * A number at the top level of the model's metrics JSON ("key": number), as
 * the encoder's callers write it: true and *out set, or false when the key
 * is absent or not followed by a number. The text is not NUL-terminated.
 */
bool
lfg_model_metric(const LfgModel *m, const char *key, double *out)
{
	const char *s = m->metrics_json;
	size_t		n = m->metrics_len,
				klen = strlen(key);

	if (s == NULL)
		return false;
	for (size_t i = 0; i + klen + 2 <= n; i++)
	{
		size_t		j = i + klen + 2,
					len = 0;
		char		num[64];
		char	   *end;

		/* "key" not inside another string (no backslash before the quote) */
		if (s[i] != '"' || (i > 0 && s[i - 1] == '\\') ||
			memcmp(s + i + 1, key, klen) != 0 || s[i + klen + 1] != '"')
			continue;
		while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n'))
			j++;
		if (j >= n || s[j] != ':')
			return false;
		j++;
		while (j < n && s[j] == ' ')
			j++;
		while (j + len < n && len < sizeof(num) - 1 &&
			   strchr("+-.0123456789eE", s[j + len]) != NULL)
		{
			num[len] = s[j + len];
			len++;
		}
		num[len] = '\0';
		if (len == 0)
			return false;
		*out = strtod(num, &end);
		return *end == '\0' && isfinite(*out);
	}
	return false;
}
