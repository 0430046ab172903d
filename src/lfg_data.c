/*
 * lfg_data.c
 *	  lfg_synthetic_ratings: the project's own seeded ratings generator,
 *	  for demos, tests and benchmarks without outside data.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "lfg.h"
#include "core/lfg_synth.h"

PG_FUNCTION_INFO_V1(lfg_synthetic_ratings);
/* lfg_synthetic_ratings(n_users, n_items, n_ratings, seed) */
Datum
lfg_synthetic_ratings(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext gen,
				old;
	LfgAllocator alloc;
	LfgSynthData d;
	LfgError	err;
	TupleDesc	tupdesc;
	Tuplestorestate *ts;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("lfg_synthetic_ratings must be called in the FROM clause")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	gen = AllocSetContextCreate(CurrentMemoryContext, "lfg synthetic", ALLOCSET_DEFAULT_SIZES);
	alloc = LfgPallocAllocator(gen);
	if (lfg_synth_generate(PG_GETARG_INT32(0), PG_GETARG_INT32(1), PG_GETARG_INT64(2),
						   (uint64_t) PG_GETARG_INT64(3), &alloc, &d, &err) != LFG_OK)
		LfgRaise(&err);

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
	for (size_t j = 0; j < d.n; j++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int64GetDatum((int64) d.user[j] + 1);
		values[1] = Int64GetDatum((int64) d.item[j] + 1);
		values[2] = Float4GetDatum(d.rating[j]);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
		if ((j & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(gen);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}
