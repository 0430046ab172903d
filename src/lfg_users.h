/*
 * lfg_users.h
 *	  Demographics collected by lfg_fit: one entry per user, vocabularies of
 *	  gender and job learned from the rows.
 */
#ifndef LFG_USERS_H
#define LFG_USERS_H

#include "lib/stringinfo.h"
#include "utils/hsearch.h"

#include "core/lfg_model.h"
#include "core/lfg_net.h"

typedef struct LfgVocab
{
	int32		n;
	int32		cap;
	char	  **str;
	uint32	   *len;
} LfgVocab;

typedef struct LfgUserMap
{
	HTAB	   *users;			/* int64 user id -> UserDemo */
	LfgVocab	gender;
	LfgVocab	job;
	MemoryContext cxt;
} LfgUserMap;

extern LfgUserMap *LfgUserMapCreate(MemoryContext cxt);
extern void LfgUserMapAdd(LfgUserMap *m, int64 user, float age, const char *gender,
						  int gender_len, const char *job, int job_len);
extern void LfgUserMapMerge(LfgUserMap *dst, const LfgUserMap *src);
extern void LfgUserMapFree(LfgUserMap *m);
extern void LfgUserMapSerialize(const LfgUserMap *m, StringInfo buf);
extern LfgUserMap *LfgUserMapDeserialize(MemoryContext cxt, StringInfo buf);
extern Size LfgUserMapSerialSize(const LfgUserMap *m);

/*
 * Demographics of the sorted user ids, with vocabularies in byte order
 * (so the model does not depend on row order). Arrays are palloc'd.
 */
extern void LfgUserMapBuild(const LfgUserMap *m, const int64 *user_ids, int32 n_users,
							LfgUsers *out, LfgVocab *genders, LfgVocab *jobs);

/*
 * lfg_model_info's demographics of an lfg model, as jsonb: whether it uses
 * them, its genders and jobs (in byte order) and its training users' age
 * range (null for models trained before 0.2.0 recorded it).
 */
extern Datum LfgDemographicsJson(const LfgModel *m);

#endif							/* LFG_USERS_H */
