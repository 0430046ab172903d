/*
 * lfg.h
 *	  Declarations shared by the PostgreSQL layer of lfg.
 */
#ifndef LFG_H
#define LFG_H

#include "postgres.h"

#include "core/lfg_core.h"
#include "core/lfg_model.h"

/* lfg.c */
extern void LfgRaise(const LfgError *err) pg_attribute_noreturn();
extern LfgAllocator LfgPallocAllocator(MemoryContext cxt);
extern uint32_t LfgCrc32c(const void *data, size_t len);
extern void LfgCheckInterrupts(void *ctx);

/* lfg_store.c */
typedef struct LfgCachedModel
{
	char	   *name;
	int32		version;
	LfgModel	model;
} LfgCachedModel;

extern const LfgCachedModel *LfgGetModel(text *name, int32 version);

#endif							/* LFG_H */
