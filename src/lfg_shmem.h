/*
 * lfg_shmem.h
 *	  Decoded models shared by all backends (lfg_shmem.c).
 */
#ifndef LFG_SHMEM_H
#define LFG_SHMEM_H

#include "postgres.h"

#include "lfg.h"

extern int	lfg_shared_cache_size;	/* MB */

extern void LfgSharedInit(void);
extern bool LfgSharedEnabled(void);
/*
 * A model version's row: its xmin tells an UPDATE of the bytes apart (the
 * bytes' length and stored CRC too, even across transaction id wraparound)
 */
typedef struct LfgSharedKey
{
	const char *name;
	int32		version;
	TransactionId xmin;
	int32		length;
	uint32		crc;
} LfgSharedKey;

extern bool LfgSharedUse(const LfgSharedKey *key, bytea *(*read) (void *arg), void *arg,
						 MemoryContext cxt, LfgCachedModel *c);

extern void LfgProgressBegin(MemoryContext cxt);
extern void LfgProgressUpdate(const char *phase, int64 rows, int32 step, int32 steps,
							  double train_rmse, double val_rmse);
extern void LfgSharedList(struct Tuplestorestate *ts, TupleDesc tupdesc);

#endif							/* LFG_SHMEM_H */
