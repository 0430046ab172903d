/*
 * lfg_metrics.c
 *	  lfg_precision_at_k, lfg_recall_at_k and lfg_ndcg_at_k: ranking
 *	  metrics of a recommended list against the relevant items, with
 *	  binary relevance (src/core/lfg_rank.c holds the math).
 *
 * The functions are STRICT: a NULL array or k gives NULL. An empty list
 * scores 0; with no relevant item, recall and NDCG are 0 (a benchmark that
 * averages them should skip such users, as test/bench/ranking.sh does).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

#include "lfg.h"
#include "core/lfg_rank.h"

/* The elements of a bigint[] argument; NULL elements are refused */
static int64 *
IdArray(ArrayType *a, const char *name, int *n)
{
	Datum	   *d;
	bool	   *nulls;
	int64	   *out;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, n);
	out = palloc(sizeof(int64) * Max(*n, 1));
	for (int j = 0; j < *n; j++)
	{
		if (nulls[j])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name),
					 errdetail("Element %d is NULL.", j + 1),
					 errhint("Remove the NULL elements, e.g. with array_remove(%s, NULL).", name)));
		out[j] = DatumGetInt64(d[j]);
	}
	return out;
}

/* Check the arguments (recommended, relevant, k) and count the hits */
static int32
RankCounts(FunctionCallInfo fcinfo, LfgRankCounts *c)
{
	int32		k = PG_GETARG_INT32(2);
	int			n_rec,
				n_rel;
	int64	   *rec,
			   *rel;
	int64		n_set;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1"),
				 errhint("Pass the length of the list to evaluate, e.g. 10.")));
	rec = IdArray(PG_GETARG_ARRAYTYPE_P(0), "recommended", &n_rec);
	rel = IdArray(PG_GETARG_ARRAYTYPE_P(1), "relevant", &n_rel);
	n_set = lfg_rank_set(rel, n_rel);
	lfg_rank_count(rec, n_rec, rel, n_set, k, palloc(Max(n_set, 1)), c);
	return k;
}

PG_FUNCTION_INFO_V1(lfg_precision_at_k);
/* lfg_precision_at_k(recommended bigint[], relevant bigint[], k int) */
Datum
lfg_precision_at_k(PG_FUNCTION_ARGS)
{
	LfgRankCounts c;
	int32		k = RankCounts(fcinfo, &c);

	PG_RETURN_FLOAT8(lfg_rank_precision(&c, k));
}

PG_FUNCTION_INFO_V1(lfg_recall_at_k);
/* lfg_recall_at_k(recommended bigint[], relevant bigint[], k int) */
Datum
lfg_recall_at_k(PG_FUNCTION_ARGS)
{
	LfgRankCounts c;

	RankCounts(fcinfo, &c);
	PG_RETURN_FLOAT8(lfg_rank_recall(&c));
}

PG_FUNCTION_INFO_V1(lfg_ndcg_at_k);
/* lfg_ndcg_at_k(recommended bigint[], relevant bigint[], k int) */
Datum
lfg_ndcg_at_k(PG_FUNCTION_ARGS)
{
	LfgRankCounts c;

	RankCounts(fcinfo, &c);
	PG_RETURN_FLOAT8(lfg_rank_ndcg(&c));
}
