/*
 * lfg_users.c
 *	  Per-user demographics for lfg_fit.
 *
 * Each rating row carries its user's age, gender and job; the aggregate
 * keeps one entry per user and checks that every row of a user agrees. A
 * NULL gender or job is the category -1, a NULL age is NaN (the training
 * mean at encoding time).
 */
#include "postgres.h"

#include <math.h>

#include "libpq/pqformat.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "lfg_users.h"
#include "core/lfg_model.h"

typedef struct UserDemo
{
	int64		id;
	float		age;
	int32		gender;
	int32		job;
} UserDemo;

/* An empty map in cxt */
LfgUserMap *
LfgUserMapCreate(MemoryContext cxt)
{
	LfgUserMap *m = MemoryContextAllocZero(cxt, sizeof(LfgUserMap));
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(UserDemo);
	ctl.hcxt = cxt;
	m->users = hash_create("lfg_fit users", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	m->cxt = cxt;
	return m;
}

/* Index of s in v, added when new; NULL is -1 */
static int32
VocabId(LfgUserMap *m, LfgVocab *v, const char *s, int len, const char *what)
{
	if (s == NULL)
		return -1;
	for (int32 j = v->n - 1; j >= 0; j--)
		if (v->len[j] == (uint32) len && memcmp(v->str[j], s, len) == 0)
			return j;
	if (v->n >= LFG_MAX_VOCAB)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct values of %s", what),
				 errdetail("At most %d distinct values are supported.", LFG_MAX_VOCAB),
				 errhint("Group rare values into one category.")));
	if (memchr(s, '\0', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not contain NUL bytes", what)));
	if (v->n == v->cap)
	{
		v->cap = v->cap == 0 ? 8 : v->cap * 2;
		v->str = v->str ? repalloc(v->str, v->cap * sizeof(char *)) :
			MemoryContextAlloc(m->cxt, v->cap * sizeof(char *));
		v->len = v->len ? repalloc(v->len, v->cap * sizeof(uint32)) :
			MemoryContextAlloc(m->cxt, v->cap * sizeof(uint32));
	}
	v->str[v->n] = MemoryContextAlloc(m->cxt, Max(len, 1));
	memcpy(v->str[v->n], s, len);
	v->len[v->n] = len;
	return v->n++;
}

/* The text of category j of v, for messages */
static char *
VocabText(const LfgVocab *v, int32 j)
{
	return j < 0 ? pstrdup("NULL") : psprintf("\"%s\"", pnstrdup(v->str[j], v->len[j]));
}

/* Record user's demographics, or check them against those already seen */
static void
AddUser(LfgUserMap *m, int64 user, float age, int32 g, int32 j)
{
	bool		found;
	UserDemo   *d = hash_search(m->users, &user, HASH_ENTER, &found);

	if (!found)
	{
		d->age = age;
		d->gender = g;
		d->job = j;
		return;
	}
	if (!((isnan(d->age) && isnan(age)) || d->age == age) || d->gender != g || d->job != j)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user " INT64_FORMAT " has different demographics on different rows", user),
				 errdetail("One row has age %g, gender %s, job %s; another has age %g, gender %s, job %s.",
						   d->age, VocabText(&m->gender, d->gender), VocabText(&m->job, d->job),
						   age, VocabText(&m->gender, g), VocabText(&m->job, j)),
				 errhint("Join each rating to one row of the users table.")));
}

/* Add one row's demographics (NULL strings and NaN age mean missing) */
void
LfgUserMapAdd(LfgUserMap *m, int64 user, float age, const char *gender, int gender_len,
			  const char *job, int job_len)
{
	AddUser(m, user, age, VocabId(m, &m->gender, gender, gender_len, "gender"),
			VocabId(m, &m->job, job, job_len, "job"));
}

/* Merge src into dst (the combine step of a parallel aggregate) */
void
LfgUserMapMerge(LfgUserMap *dst, const LfgUserMap *src)
{
	HASH_SEQ_STATUS it;
	UserDemo   *d;
	int32	   *gmap = palloc(sizeof(int32) * Max(src->gender.n, 1));
	int32	   *jmap = palloc(sizeof(int32) * Max(src->job.n, 1));

	for (int32 j = 0; j < src->gender.n; j++)
		gmap[j] = VocabId(dst, &dst->gender, src->gender.str[j], src->gender.len[j], "gender");
	for (int32 j = 0; j < src->job.n; j++)
		jmap[j] = VocabId(dst, &dst->job, src->job.str[j], src->job.len[j], "job");
	hash_seq_init(&it, src->users);
	while ((d = hash_seq_search(&it)) != NULL)
		AddUser(dst, d->id, d->age, d->gender < 0 ? -1 : gmap[d->gender],
				d->job < 0 ? -1 : jmap[d->job]);
	pfree(gmap);
	pfree(jmap);
}

/* Free a vocabulary's strings and arrays */
static void
FreeVocab(LfgVocab *v)
{
	for (int32 j = 0; j < v->n; j++)
		pfree(v->str[j]);
	if (v->str != NULL)
	{
		pfree(v->str);
		pfree(v->len);
	}
}

/* Free a map and all it holds (a state the combine step merged) */
void
LfgUserMapFree(LfgUserMap *m)
{
	hash_destroy(m->users);
	FreeVocab(&m->gender);
	FreeVocab(&m->job);
	pfree(m);
}

/* Serialized size of a vocabulary */
static Size
VocabSize(const LfgVocab *v)
{
	Size		s = 4;

	for (int32 j = 0; j < v->n; j++)
		s = add_size(s, 4 + v->len[j]);
	return s;
}

/* Bytes LfgUserMapSerialize appends */
Size
LfgUserMapSerialSize(const LfgUserMap *m)
{
	return add_size(add_size(8, mul_size(hash_get_num_entries(m->users), 20)),
					add_size(VocabSize(&m->gender), VocabSize(&m->job)));
}

static void
SendVocab(const LfgVocab *v, StringInfo buf)
{
	pq_sendint32(buf, v->n);
	for (int32 j = 0; j < v->n; j++)
	{
		pq_sendint32(buf, v->len[j]);
		pq_sendbytes(buf, v->str[j], v->len[j]);
	}
}

/* Append the map to buf */
void
LfgUserMapSerialize(const LfgUserMap *m, StringInfo buf)
{
	HASH_SEQ_STATUS it;
	UserDemo   *d;

	SendVocab(&m->gender, buf);
	SendVocab(&m->job, buf);
	pq_sendint64(buf, hash_get_num_entries(m->users));
	hash_seq_init(&it, m->users);
	while ((d = hash_seq_search(&it)) != NULL)
	{
		pq_sendint64(buf, d->id);
		pq_sendbytes(buf, (const char *) &d->age, 4);
		pq_sendint32(buf, d->gender);
		pq_sendint32(buf, d->job);
	}
}

static void
ReadVocab(LfgUserMap *m, LfgVocab *v, StringInfo buf, const char *what)
{
	int32		n = pq_getmsgint(buf, 4);

	for (int32 j = 0; j < n; j++)
	{
		int32		len = pq_getmsgint(buf, 4);
		const char *s = pq_getmsgbytes(buf, len);

		VocabId(m, v, s, len, what);
	}
}

/* Read a map written by LfgUserMapSerialize */
LfgUserMap *
LfgUserMapDeserialize(MemoryContext cxt, StringInfo buf)
{
	LfgUserMap *m = LfgUserMapCreate(cxt);
	int64		n;

	ReadVocab(m, &m->gender, buf, "gender");
	ReadVocab(m, &m->job, buf, "job");
	n = pq_getmsgint64(buf);
	for (int64 j = 0; j < n; j++)
	{
		int64		id = pq_getmsgint64(buf);
		float		age;
		int32		g,
					jb;

		pq_copymsgbytes(buf, (char *) &age, 4);
		g = pq_getmsgint(buf, 4);
		jb = pq_getmsgint(buf, 4);
		AddUser(m, id, age, g, jb);
	}
	return m;
}

/* Sort order of a vocabulary's strings (bytewise, then by length) */
static const LfgVocab *sort_vocab;

static int
CompareVocab(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;
	uint32		lx = sort_vocab->len[x],
				ly = sort_vocab->len[y];
	int			c = memcmp(sort_vocab->str[x], sort_vocab->str[y], Min(lx, ly));

	return c != 0 ? c : (lx < ly ? -1 : lx > ly ? 1 : 0);
}

/* A sorted copy of v; remap[old id] = new id */
static void
SortVocab(const LfgVocab *v, LfgVocab *out, int32 *remap)
{
	int32	   *order = palloc(sizeof(int32) * Max(v->n, 1));

	for (int32 j = 0; j < v->n; j++)
		order[j] = j;
	sort_vocab = v;
	qsort(order, v->n, sizeof(int32), CompareVocab);
	out->n = out->cap = v->n;
	out->str = palloc(sizeof(char *) * Max(v->n, 1));
	out->len = palloc(sizeof(uint32) * Max(v->n, 1));
	for (int32 j = 0; j < v->n; j++)
	{
		out->str[j] = v->str[order[j]];
		out->len[j] = v->len[order[j]];
		remap[order[j]] = j;
	}
	pfree(order);
}

/* See lfg_users.h */
void
LfgUserMapBuild(const LfgUserMap *m, const int64 *user_ids, int32 n_users, LfgUsers *out,
				LfgVocab *genders, LfgVocab *jobs)
{
	float	   *age = palloc(sizeof(float) * Max(n_users, 1));
	int32	   *gender = palloc(sizeof(int32) * Max(n_users, 1));
	int32	   *job = palloc(sizeof(int32) * Max(n_users, 1));
	int32	   *gmap = palloc(sizeof(int32) * Max(m->gender.n, 1));
	int32	   *jmap = palloc(sizeof(int32) * Max(m->job.n, 1));

	SortVocab(&m->gender, genders, gmap);
	SortVocab(&m->job, jobs, jmap);
	for (int32 j = 0; j < n_users; j++)
	{
		UserDemo   *d = hash_search(m->users, &user_ids[j], HASH_FIND, NULL);

		if (d == NULL)
			elog(ERROR, "user " INT64_FORMAT " has no demographics", user_ids[j]);
		age[j] = d->age;
		gender[j] = d->gender < 0 ? -1 : gmap[d->gender];
		job[j] = d->job < 0 ? -1 : jmap[d->job];
	}
	*out = (LfgUsers) {n_users, age, gender, job, genders->n, jobs->n};
}

/* Append a string table as a JSON array of strings */
static void
VocabJson(StringInfo buf, const uint8_t *tab)
{
	int32		n = lfg_vocab_count(tab);

	appendStringInfoChar(buf, '[');
	for (int32 j = 0; j < n; j++)
	{
		uint32		len;
		const char *v = lfg_vocab_get(tab, j, &len);

		if (j > 0)
			appendStringInfoString(buf, ", ");
		escape_json(buf, pnstrdup(v, len));
	}
	appendStringInfoChar(buf, ']');
}

/* See lfg_users.h */
Datum
LfgDemographicsJson(const LfgModel *m)
{
	StringInfoData buf;
	double		lo,
				hi;
	bool		range;

	range = lfg_model_metric(m, "age_min", &lo) && lfg_model_metric(m, "age_max", &hi);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"used\": %s, \"genders\": ", m->net.aux ? "true" : "false");
	VocabJson(&buf, m->vocab_gender);
	appendStringInfoString(&buf, ", \"jobs\": ");
	VocabJson(&buf, m->vocab_job);
	if (range)
		appendStringInfo(&buf, ", \"age_min\": %.9g, \"age_max\": %.9g}", lo, hi);
	else
		appendStringInfoString(&buf, ", \"age_min\": null, \"age_max\": null}");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}
