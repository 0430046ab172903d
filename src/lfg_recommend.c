/*
 * lfg_recommend.c
 *	  The serving path: lfg_recommend, lfg_predict over a candidate list and
 *	  lfg_user_factors for users the model has never seen.
 *
 * A call parses the user's ratings (a jsonb object or two arrays), maps item
 * ids to the model's dense indexes (unknown items are ignored: catalogues
 * grow between retrains), computes the user vector (lfg_serve.c: fold-in,
 * or the generator plus fold-in for LFG), scores the whole catalogue with
 * one sgemv into a buffer of the cached model, and selects the top k with
 * a bounded heap. Nothing proportional to the model is allocated per call.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/supportnodes.h"
#include "utils/syscache.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "lfg.h"

/* A new user's input, mapped to the model */
typedef struct UserInput
{
	int32		n;				/* ratings of items the model knows */
	int32	   *item;
	float	   *rating;
	int32		ignored;		/* ratings of unknown items */
	LfgNetUser	net;
} UserInput;

/* Append one rating after checking it against the model's rating range */
static void
AddInput(const LfgCachedModel *c, UserInput *in, int64 id, double r)
{
	const LfgModel *m = &c->model;
	int32		i;

	if (isnan(r) || isinf(r))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("rating of item " INT64_FORMAT " must be a finite number", id)));
	if (r < m->mf.rating_min || r > m->mf.rating_max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("rating %.15g of item " INT64_FORMAT " is outside the model's rating range", r, id),
				 errdetail("The model was trained on ratings from %g to %g.",
						   m->mf.rating_min, m->mf.rating_max),
				 errhint("Rescale the ratings to the training scale.")));
	i = lfg_id_index_find(&c->items, id);
	if (i < 0)
	{
		in->ignored++;
		return;
	}
	in->item[in->n] = i;
	in->rating[in->n++] = (float) r;
}

/*
 * Parse a JSON object key as an item id: an optional sign and decimal
 * digits, as strtoll would take them whole (no spaces), without copying.
 */
static int64
ParseItemId(const char *s, int len)
{
	uint64		v = 0,
				limit;
	bool		neg = len > 0 && s[0] == '-';
	int			j = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
	bool		ok = j < len;

	limit = neg ? (uint64) PG_INT64_MAX + 1 : (uint64) PG_INT64_MAX;
	for (; ok && j < len; j++)
	{
		unsigned	d = (unsigned char) s[j] - '0';

		ok = d <= 9 && v <= (limit - d) / 10;
		v = v * 10 + d;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("user_ratings key \"%s\" is not an integer item id", pnstrdup(s, len)),
				 errhint("Pass an object such as '{\"50\": 5, \"181\": 4}'.")));
	return neg ? (int64) (0 - v) : (int64) v;
}

/* Check that no item appears twice (the indexes are sorted in place) */
static int
CompareRated(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void
CheckDuplicates(const LfgModel *m, const UserInput *in)
{
	int32	   *s = palloc(sizeof(int32) * Max(in->n, 1));

	memcpy(s, in->item, sizeof(int32) * in->n);
	qsort(s, in->n, sizeof(int32), CompareRated);
	for (int32 j = 1; j < in->n; j++)
		if (s[j] == s[j - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("item " INT64_FORMAT " is rated twice", m->item_ids[s[j]]),
					 errhint("Pass each item once.")));
	pfree(s);
}

/* Allocate room for n ratings */
static void
InitInput(UserInput *in, int32 n)
{
	if (n > LFG_MAX_RATINGS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many ratings for one user"),
				 errdetail("At most %d ratings are accepted.", LFG_MAX_RATINGS)));
	memset(in, 0, sizeof(*in));
	in->item = palloc(sizeof(int32) * Max(n, 1));
	in->rating = palloc(sizeof(float) * Max(n, 1));
}

/*
 * A JSON rating as a double. An integral one (the usual 1..5) is read as an
 * int4, without numeric_float8's trip through text: the same value.
 */
static double
NumericRating(Numeric num)
{
	if (!numeric_is_nan(num) && !numeric_is_inf(num) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(num))) == 0)
	{
		bool		overflow = false;
		int32		v = numeric_int4_opt_error(num, &overflow);

		if (!overflow)
			return (double) v;
	}
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(num)));
}

/* user_ratings as a jsonb object {"item id": rating, ...}; NULL is empty */
static void
InputFromJsonb(const LfgCachedModel *c, Jsonb *jb, UserInput *in)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (jb != NULL && !JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user_ratings must be a JSON object"),
				 errhint("Pass an object mapping item ids to ratings, such as '{\"50\": 5, \"181\": 4}'.")));
	InitInput(in, jb ? JB_ROOT_COUNT(jb) : 0);
	if (jb == NULL)
		return;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		int64		id;

		if (tok != WJB_KEY)
			continue;
		id = ParseItemId(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rating of item " INT64_FORMAT " must be a number", id),
					 errhint("Pass an object such as '{\"50\": 5, \"181\": 4}'.")));
		AddInput(c, in, id, NumericRating(v.val.numeric));
	}
	CheckDuplicates(&c->model, in);
}

/* user_ratings as item_ids bigint[] and ratings double precision[] */
static void
InputFromArrays(const LfgCachedModel *c, ArrayType *ids, ArrayType *ratings, UserInput *in)
{
	Datum	   *id_d,
			   *r_d;
	bool	   *id_n,
			   *r_n;
	int			nid,
				nr;

	if (ids == NULL || ratings == NULL)
	{
		InitInput(in, 0);
		return;
	}
	if (ARR_NDIM(ids) > 1 || ARR_NDIM(ratings) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids and ratings must be one-dimensional arrays")));
	deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &id_d, &id_n, &nid);
	deconstruct_array(ratings, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &r_d, &r_n, &nr);
	if (nid != nr)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids and ratings have different lengths (%d and %d)", nid, nr),
				 errhint("Pass one rating per item id.")));
	InitInput(in, nid);
	for (int j = 0; j < nid; j++)
	{
		if (id_n[j] || r_n[j])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("item_ids and ratings must not contain NULL"),
					 errdetail("Element %d is NULL.", j + 1)));
		AddInput(c, in, DatumGetInt64(id_d[j]), DatumGetFloat8(r_d[j]));
	}
	CheckDuplicates(&c->model, in);
}

/*
 * lfg.unknown_demographics (warning, error): a gender or job an LFG model
 * with demographics was not trained with (compared byte for byte, so
 * case-sensitively), or an age outside its training users' range, raises a
 * WARNING or an error instead of being served as unknown (or as given).
 */
static void
CheckUnknownDemographics(FunctionCallInfo fcinfo, int a, const LfgModel *m, const UserInput *in)
{
	int			level = lfg_unknown_demographics == LFG_UNKNOWN_ERROR ? ERROR : WARNING;
	double		lo,
				hi;

	if (lfg_unknown_demographics == LFG_UNKNOWN_IGNORE || m->mf.kind != LFG_KIND_LFG || !m->net.aux)
		return;
	/* models trained before 0.2.0 did not record the range: no age check */
	if (!PG_ARGISNULL(a) && lfg_model_metric(m, "age_min", &lo) && lfg_model_metric(m, "age_max", &hi) &&
		(in->net.age < lo || in->net.age > hi))
		ereport(level,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("age %.15g is outside the model's training range", PG_GETARG_FLOAT8(a)),
				 errdetail("The model was trained on users aged %g to %g.", lo, hi),
				 errhint("Pass NULL for an unknown age; with lfg.unknown_demographics = ignore the age is used as given.")));
	for (int d = 1; d <= 2; d++)
	{
		const char *what = d == 1 ? "gender" : "job";
		const uint8_t *vocab = d == 1 ? m->vocab_gender : m->vocab_job;
		int32		n = lfg_vocab_count(vocab);
		StringInfoData known;

		if (PG_ARGISNULL(a + d) || (d == 1 ? in->net.gender : in->net.job) >= 0)
			continue;
		initStringInfo(&known);
		for (int32 j = 0; j < n && j < 30; j++)
		{
			uint32		len;
			const char *v = lfg_vocab_get(vocab, j, &len);

			appendStringInfoString(&known, j > 0 ? ", \"" : "\"");
			appendBinaryStringInfo(&known, v, (int) len);
			appendStringInfoChar(&known, '"');
		}
		if (n > 30)
			appendStringInfo(&known, " and %d more", n - 30);
		ereport(level,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" is not among the model's %ss", what,
						text_to_cstring(PG_GETARG_TEXT_PP(a + d)), what),
				 n == 0 ? errdetail("The model was trained with no %s (all of them NULL).", what) :
				 errdetail("The model was trained with the %ss %s; they are compared case-sensitively.",
						   what, known.data),
				 errhint("Pass one of them, or NULL for an unknown %s; with lfg.unknown_demographics = ignore it is served as unknown.",
						 what)));
		pfree(known.data);
	}
}

/* Demographics (arguments a, a+1, a+2): age, gender, job; NULL = missing */
static void
InputDemographics(FunctionCallInfo fcinfo, int a, const LfgModel *m, UserInput *in)
{
	in->net = (LfgNetUser) {in->n, in->item, in->rating, NAN, -1, -1};
	if (!PG_ARGISNULL(a))
	{
		double		age = PG_GETARG_FLOAT8(a);

		if (isnan(age) || isinf(age) || fabs(age) > LFG_MAX_AGE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("age %.15g is not a usable number", age),
					 errdetail("Ages must be finite and at most 1000000 in absolute value, as in training."),
					 errhint("Pass NULL for an unknown age.")));
		in->net.age = (float) age;
	}
	if (m->mf.kind != LFG_KIND_LFG)
		return;
	if (!PG_ARGISNULL(a + 1))
	{
		text	   *g = PG_GETARG_TEXT_PP(a + 1);

		in->net.gender = lfg_vocab_find(m->vocab_gender, VARDATA_ANY(g), VARSIZE_ANY_EXHDR(g));
	}
	if (!PG_ARGISNULL(a + 2))
	{
		text	   *j = PG_GETARG_TEXT_PP(a + 2);

		in->net.job = lfg_vocab_find(m->vocab_job, VARDATA_ANY(j), VARSIZE_ANY_EXHDR(j));
	}
	CheckUnknownDemographics(fcinfo, a, m, in);
}

/*
 * The model: argument 0 when the form is named (the default model when that
 * argument is NULL), else the default model.
 */
static LfgCachedModel *
ModelArg(FunctionCallInfo fcinfo, bool named)
{
	return LfgGetModel(!named || PG_ARGISNULL(0) ? LfgDefaultModel() : PG_GETARG_TEXT_PP(0), 0);
}

/*
 * A NOTICE, once per backend and model version, when an LFG model serves a
 * new user with n ratings by a fold-in that its training episodes for that
 * n measured worse than plain fold-in, of its own item side or of the
 * BiasSVD of its base prior (lfg_foldin_baseline). Its learned choice is
 * never worse than either where that BiasSVD was offered (it then
 * predicts where it is better: the base or blend side), but can be worse
 * than the second where it was not, or in a bucket of too few episodes to
 * choose; an override (lfg.refine off, or lfg.foldin_reg set to 5) can be
 * worse than both.
 */
void
LfgFoldinNotice(const LfgCachedModel *c, int32 n)
{
	static List *noticed = NIL;
	const LfgFoldinTable *t = c->model.net.foldin;
	const LfgFoldinEntry *e;
	const char *what;
	double		rmse,
				base;
	char	   *key;
	MemoryContext old;
	ListCell   *lc;

	if (t == NULL || c->model.mf.kind != LFG_KIND_LFG)
		return;
	e = &t->e[lfg_foldin_bucket(n)];
	if (!lfg_refine)
	{
		what = "the generator alone (lfg.refine off)";
		rmse = e->rmse_generator;
	}
	else if (LfgFoldinReg() == LFG_FOLDIN_LEARNED)
	{
		what = "the model's learned fold-in";
		rmse = e->rmse;
	}
	else if (LfgFoldinReg() == LFG_DEFAULT_FOLDIN_REG)
	{
		what = "the generator refined with lfg.foldin_reg 5";
		rmse = e->rmse_refine;
	}
	else
		return;
	base = lfg_foldin_baseline(e);
	if (!(rmse > base))
		return;
	key = psprintf("%d %s", c->version, c->name);
	foreach(lc, noticed)
		if (strcmp(lfirst(lc), key) == 0)
			return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	noticed = lappend(noticed, pstrdup(key));
	MemoryContextSwitchTo(old);
	ereport(NOTICE,
			(errmsg("model \"%s\" serves new users worse than fold-in", c->name),
			 errdetail("On its training episodes of %d or more ratings, %s had an RMSE of %.4f, plain fold-in %.4f (%s).",
					   lfg_foldin_bucket_min(lfg_foldin_bucket(n)), what, rmse, base,
					   base == e->rmse_foldin ? "the model's item side" : "its base prior's BiasSVD"),
			 errhint(LfgFoldinReg() == LFG_FOLDIN_LEARNED && lfg_refine ?
					 "For new users, train a model with the preset new_user, or serve them from a BiasSVD model." :
					 "RESET lfg.refine and lfg.foldin_reg to serve the fold-in the model learned.")));
}

/*
 * A new user's vector into c->x and the one lists are ordered by into
 * c->xo; returns what its predicted ratings come from (c->xsrc: c->x and
 * the model's parameters, or on the base and blend sides FBAS's fold-in
 * in c->xr, scored by c->xview: lfg_rating_vector)
 */
const LfgRatingSource *
LfgUserVector(LfgCachedModel *c, const LfgNetUser *in)
{
	LfgServeScratch *s = LfgServeBuffers(c, in->n);
	LfgError	err;

	LfgFoldinNotice(c, in->n);
	if (lfg_user_vector(&c->model, in, LfgFoldinReg(), lfg_refine, s, c->x, &err) != LFG_OK ||
		lfg_order_vector(&c->model, in, c->x, s, c->xo, &err) != LFG_OK ||
		lfg_rating_vector(&c->model, in, LfgFoldinReg(), lfg_refine, c->x, s, c->xr, &c->xview,
						  &c->xsrc, &err) != LFG_OK)
		LfgRaise(&err);
	return &c->xsrc;
}

/*
 * The scores of the found items of c->top_items as predicted ratings from
 * src, where they do not come from the model's own side alone
 */
void
LfgRescore(LfgCachedModel *c, const LfgRatingSource *src, int32 found)
{
	if (src->mf == &c->model.mf && src->mf2 == NULL)
		return;
	for (int32 j = 0; j < found; j++)
		c->top_scores[j] = (float) lfg_rating_score(src, c->top_items[j]);
}

/* Check k: 1..LFG_MAX_K; NULL is the default 10 */
static int32
ArgK(FunctionCallInfo fcinfo, int a)
{
	/* a form without k (the default-model form) has 10 */
	int32		k = a >= PG_NARGS() || PG_ARGISNULL(a) ? 10 : PG_GETARG_INT32(a);

	if (k < 1 || k > LFG_MAX_K)
		ereport(ERROR,
				(errcode(k < 1 ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("k must be between 1 and %d", LFG_MAX_K),
				 k < 1 ? errhint("Pass a k of at least 1 (NULL means 10).") :
				 errhint("Pass a smaller k; a k above the catalogue size returns the whole catalogue.")));
	return k;
}

/*
 * EASE: the user's scores x B (binary x: src/core/lfg_ease.h) into the
 * cached score buffer, the rated items excluded, and their top k, ties by
 * the smaller item index
 */
static int32
EaseTopK(LfgCachedModel *c, UserInput *in, int32 k)
{
	float	   *scores;
	int32		found;

	LfgServeBuffers(c, in->n);
	scores = c->topk.scores;
	lfg_ease_scores(&c->model.ease, in->item, in->n, scores);
	for (int32 j = 0; j < in->n; j++)
		scores[in->item[j]] = -INFINITY;
	found = lfg_top_k(scores, c->model.mf.n_items, Min(k, c->model.mf.n_items), c->topk.heap);
	for (int32 j = 0; j < found; j++)
	{
		c->top_items[j] = c->topk.heap[j];
		c->top_scores[j] = scores[c->topk.heap[j]];
	}
	return found;
}

/* Score the catalogue, drop the rated items, return the top k as rows */
static Datum
Recommend(FunctionCallInfo fcinfo, LfgCachedModel *c, UserInput *in, int32 k)
{
	const LfgModel *m = &c->model;
	TupleDesc	tupdesc;
	Tuplestorestate *ts = LfgBeginSRF(fcinfo, "lfg_recommend", 2, &tupdesc);
	int32		found;

	if (m->mf.kind == LFG_KIND_EASE)
		found = EaseTopK(c, in, k);
	else
	{
		const LfgRatingSource *src = LfgUserVector(c, &in->net);

		found = lfg_recommend_top_k(&m->mf, &c->scorer, c->x, c->xo, in->item, in->n,
									Min(k, m->mf.n_items), &c->topk, c->top_items, c->top_scores);
		LfgRescore(c, src, found);
	}
	for (int32 j = 0; j < found; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int64GetDatum(m->item_ids[c->top_items[j]]);
		values[1] = Float8GetDatum(c->top_scores[j]);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/* lfg_recommend with user_ratings jsonb; b is the first argument after the name */
static Datum
RecommendJsonb(FunctionCallInfo fcinfo, bool named)
{
	int			b = named ? 1 : 0;
	LfgCachedModel *c = ModelArg(fcinfo, named);
	int32		k = ArgK(fcinfo, b + 4);
	UserInput	in;

	InputFromJsonb(c, PG_ARGISNULL(b) ? NULL : PG_GETARG_JSONB_P(b), &in);
	InputDemographics(fcinfo, b + 1, &c->model, &in);
	return Recommend(fcinfo, c, &in, k);
}

/* lfg_recommend with item_ids and ratings arrays */
static Datum
RecommendArrays(FunctionCallInfo fcinfo, bool named)
{
	int			b = named ? 1 : 0;
	LfgCachedModel *c = ModelArg(fcinfo, named);
	int32		k = ArgK(fcinfo, b + 5);
	UserInput	in;

	InputFromArrays(c, PG_ARGISNULL(b) ? NULL : PG_GETARG_ARRAYTYPE_P(b),
					PG_ARGISNULL(b + 1) ? NULL : PG_GETARG_ARRAYTYPE_P(b + 1), &in);
	InputDemographics(fcinfo, b + 2, &c->model, &in);
	return Recommend(fcinfo, c, &in, k);
}

PG_FUNCTION_INFO_V1(lfg_recommend_jsonb);
/* lfg_recommend(model_name, user_ratings jsonb, age, gender, job, k) */
Datum
lfg_recommend_jsonb(PG_FUNCTION_ARGS)
{
	return RecommendJsonb(fcinfo, true);
}

PG_FUNCTION_INFO_V1(lfg_recommend_jsonb_default);
/* lfg_recommend(user_ratings jsonb, age, gender, job) with the default model (k 10) */
Datum
lfg_recommend_jsonb_default(PG_FUNCTION_ARGS)
{
	return RecommendJsonb(fcinfo, false);
}

PG_FUNCTION_INFO_V1(lfg_recommend_arrays);
/* lfg_recommend_arrays(model_name, item_ids bigint[], ratings float8[], age, gender, job, k) */
Datum
lfg_recommend_arrays(PG_FUNCTION_ARGS)
{
	return RecommendArrays(fcinfo, true);
}

PG_FUNCTION_INFO_V1(lfg_predict_new_user);
/* lfg_predict(model_name, user_ratings jsonb, age, gender, job, item_ids bigint[]) */
Datum
lfg_predict_new_user(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c;
	ArrayType  *ids;
	Datum	   *id_d,
			   *out;
	bool	   *id_n;
	int			n;
	UserInput	in;
	int			dims[1];
	int			lbs[1] = {1};
	const LfgRatingSource *src = NULL;

	if (PG_ARGISNULL(5))
		PG_RETURN_NULL();
	c = ModelArg(fcinfo, true);
	ids = PG_GETARG_ARRAYTYPE_P(5);
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("item_ids must be a one-dimensional array")));
	InputFromJsonb(c, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), &in);
	InputDemographics(fcinfo, 2, &c->model, &in);
	if (c->model.mf.kind == LFG_KIND_EASE)
	{
		/* the EASE scores of the whole catalogue; an unknown item scores 0 */
		LfgServeBuffers(c, in.n);
		lfg_ease_scores(&c->model.ease, in.item, in.n, c->topk.scores);
	}
	else
		src = LfgUserVector(c, &in.net);
	deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &id_d, &id_n, &n);
	out = palloc(sizeof(Datum) * Max(n, 1));
	for (int j = 0; j < n; j++)
	{
		int32		i = id_n[j] ? -1 : lfg_id_index_find(&c->items, DatumGetInt64(id_d[j]));

		if (c->model.mf.kind == LFG_KIND_EASE)
			out[j] = Float8GetDatum(i >= 0 ? c->topk.scores[i] : 0.0);
		else
			out[j] = Float8GetDatum(lfg_rating_score(src, i));
	}
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, id_n, 1, dims, lbs, FLOAT8OID, 8,
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(lfg_user_factors);
/* lfg_user_factors(model_name, user_ratings jsonb, age, gender, job): p_u then b_u */
Datum
lfg_user_factors(PG_FUNCTION_ARGS)
{
	LfgCachedModel *c = ModelArg(fcinfo, true);
	int32		k = c->model.mf.k;
	UserInput	in;
	Datum	   *out;

	if (c->model.mf.kind == LFG_KIND_EASE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is of kind ease, which has no user factors", c->name),
				 errhint("Use a model of kind svd, biassvd or lfg, or lfg_recommend for EASE scores.")));

	InputFromJsonb(c, PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1), &in);
	InputDemographics(fcinfo, 2, &c->model, &in);
	LfgUserVector(c, &in.net);
	out = palloc(sizeof(Datum) * (k + 1));
	for (int32 j = 0; j <= k; j++)
		out[j] = Float4GetDatum(c->x[j]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, k + 1, FLOAT4OID, 4, true, TYPALIGN_INT));
}

/*
 * For lfg_known.c: the ratings in argument ratings_arg (a jsonb object;
 * NULL or ratings_arg < 0: none) and the demographics in arguments
 * demo_arg .. demo_arg + 2 (demo_arg < 0: none), checked and mapped to the
 * model as lfg_recommend does. The arrays are palloc'd.
 */
void
LfgUserInput(FunctionCallInfo fcinfo, const LfgCachedModel *c, int ratings_arg, int demo_arg,
			 LfgNetUser *out)
{
	UserInput	in;

	InputFromJsonb(c, ratings_arg < 0 || PG_ARGISNULL(ratings_arg) ? NULL :
				   PG_GETARG_JSONB_P(ratings_arg), &in);
	if (demo_arg >= 0)
		InputDemographics(fcinfo, demo_arg, &c->model, &in);
	else
		in.net = (LfgNetUser) {in.n, in.item, in.rating, NAN, -1, -1};
	*out = in.net;
}

/* For lfg_known.c: k in argument a, checked as lfg_recommend checks it */
int32
LfgArgK(FunctionCallInfo fcinfo, int a)
{
	return ArgK(fcinfo, a);
}

/* The position of the input argument named k of function funcid, or -1 */
static int
KArgPosition(Oid funcid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			n,
				pos = -1,
				input = 0;

	if (!HeapTupleIsValid(tup))
		return -1;
	n = get_func_arg_info(tup, &types, &names, &modes);
	for (int j = 0; j < n && names != NULL; j++)
	{
		if (modes != NULL && modes[j] != PROARGMODE_IN && modes[j] != PROARGMODE_INOUT &&
			modes[j] != PROARGMODE_VARIADIC)
			continue;
		if (strcmp(names[j], "k") == 0)
		{
			pos = input;
			break;
		}
		input++;
	}
	ReleaseSysCache(tup);
	return pos;
}

PG_FUNCTION_INFO_V1(lfg_rows_support);
/*
 * Planner support of the top-k functions: the row estimate is their k
 * argument when it is a constant (10 when NULL or left to its default); a
 * parameter keeps the declared ROWS 10.
 */
Datum
lfg_rows_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	SupportRequestRows *req;
	FuncExpr   *f;
	Node	   *arg;
	int			pos;
	double		rows = 10;

	if (!IsA(rawreq, SupportRequestRows))
		PG_RETURN_POINTER(NULL);
	req = (SupportRequestRows *) rawreq;
	if (req->node == NULL || !IsA(req->node, FuncExpr))
		PG_RETURN_POINTER(NULL);
	f = (FuncExpr *) req->node;
	pos = KArgPosition(f->funcid);
	if (pos < 0)
		PG_RETURN_POINTER(NULL);
	if (pos < list_length(f->args))
	{
		arg = (Node *) list_nth(f->args, pos);
		if (!IsA(arg, Const))
			PG_RETURN_POINTER(NULL);
		if (!((Const *) arg)->constisnull)
			rows = Max(1, Min(DatumGetInt32(((Const *) arg)->constvalue), LFG_MAX_K));
	}
	req->rows = rows;
	PG_RETURN_POINTER(req);
}
