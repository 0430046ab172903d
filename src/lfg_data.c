/*
 * lfg_data.c
 *	  lfg_synthetic_ratings: the project's own seeded ratings generator,
 *	  for demos, tests and benchmarks without outside data.
 *
 * The ratings are generated a block at a time straight into the result's
 * tuplestore (which spills to temporary files beyond work_mem), checking
 * for interrupts between blocks; the generator's own state (the users' and
 * items' effects) is bounded by lfg.train_memory_limit.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "lfg.h"
#include "core/lfg_synth.h"

#define SYNTH_BLOCK 4096		/* ratings generated between interrupt checks */

PG_FUNCTION_INFO_V1(lfg_synthetic_ratings);
/* lfg_synthetic_ratings(n_users, n_items, n_ratings, seed) */
Datum
lfg_synthetic_ratings(PG_FUNCTION_ARGS)
{
	int32		nu = PG_GETARG_INT32(0);
	int32		ni = PG_GETARG_INT32(1);
	size_t		state = lfg_synth_state_bytes(nu, ni);
	Size		limit = (Size) lfg_train_memory_limit * 1024 * 1024;
	MemoryContext gen;
	LfgAllocator alloc;
	LfgSynthStream s;
	LfgError	err;
	TupleDesc	tupdesc;
	Tuplestorestate *ts;
	int32	   *user;
	int32	   *item;
	float	   *rating;
	size_t		got;

	if (state > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lfg_synthetic_ratings needs %zu MB for %d users and %d items, more than lfg.train_memory_limit (%d MB)",
						(state + 1024 * 1024 - 1) / (1024 * 1024), nu, ni, lfg_train_memory_limit),
				 errdetail("The generator keeps about %zu bytes per user and per item.",
						   lfg_synth_state_bytes(1, 0)),
				 errhint("Generate fewer users or items, or raise lfg.train_memory_limit.")));
	ts = LfgBeginSRF(fcinfo, "lfg_synthetic_ratings", 3, &tupdesc);
	gen = AllocSetContextCreate(CurrentMemoryContext, "lfg synthetic", ALLOCSET_DEFAULT_SIZES);
	alloc = LfgPallocAllocator(gen);
	if (lfg_synth_begin(nu, ni, PG_GETARG_INT64(2), (uint64_t) PG_GETARG_INT64(3),
						&alloc, LfgCheckInterrupts, NULL, &s, &err) != LFG_OK)
		LfgRaise(&err);
	user = MemoryContextAlloc(gen, sizeof(int32) * SYNTH_BLOCK);
	item = MemoryContextAlloc(gen, sizeof(int32) * SYNTH_BLOCK);
	rating = MemoryContextAlloc(gen, sizeof(float) * SYNTH_BLOCK);
	while ((got = lfg_synth_next(&s, SYNTH_BLOCK, user, item, rating)) > 0)
	{
		for (size_t j = 0; j < got; j++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			values[0] = Int64GetDatum((int64) user[j] + 1);
			values[1] = Int64GetDatum((int64) item[j] + 1);
			values[2] = Float4GetDatum(rating[j]);
			tuplestore_putvalues(ts, tupdesc, values, nulls);
		}
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(gen);
	return (Datum) 0;
}
