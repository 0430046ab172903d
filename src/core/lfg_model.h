/*
 * lfg_model.h
 *	  The model byte format (doc/model-format.md): encoder and checking
 *	  decoder.
 */
#ifndef LFG_MODEL_H
#define LFG_MODEL_H

#include "lfg_core.h"
#include "lfg_ease.h"
#include "lfg_mf.h"
#include "lfg_net.h"

#define LFG_MODEL_MAGIC			"LFGM"
#define LFG_MODEL_BYTE_ORDER	UINT32_C(0x01020304)
#define LFG_MODEL_VERSION		1
#define LFG_MODEL_HEADER_SIZE	64
#define LFG_MODEL_SECTION_SIZE	24
#define LFG_MODEL_MAX_SECTIONS	24
#define LFG_MODEL_MAX_JSON		(1024 * 1024)
/* bound on |mu| + max|b_u| + max|b_i| + k max|q| max(1, max|p|) */
#define LFG_MODEL_MAX_SCORE		1e30

#define LFG_TAG(a, b, c, d) \
	((uint32_t) (a) | ((uint32_t) (b) << 8) | ((uint32_t) (c) << 16) | ((uint32_t) (d) << 24))
#define LFG_SEC_USER_IDS	LFG_TAG('U', 'I', 'D', 'S')
#define LFG_SEC_ITEM_IDS	LFG_TAG('I', 'I', 'D', 'S')
#define LFG_SEC_P			LFG_TAG('P', 'M', 'A', 'T')
#define LFG_SEC_Q			LFG_TAG('Q', 'M', 'A', 'T')
#define LFG_SEC_BU			LFG_TAG('B', 'U', 'S', 'R')
#define LFG_SEC_BI			LFG_TAG('B', 'I', 'T', 'M')
#define LFG_SEC_OPTIONS		LFG_TAG('O', 'P', 'T', 'S')
#define LFG_SEC_METRICS		LFG_TAG('M', 'E', 'T', 'R')
#define LFG_SEC_GEN_CONFIG	LFG_TAG('G', 'C', 'F', 'G')
#define LFG_SEC_GEN_THETA	LFG_TAG('G', 'T', 'H', 'T')
#define LFG_SEC_GEN_RUNNING LFG_TAG('G', 'R', 'U', 'N')
#define LFG_SEC_VOCAB_GENDER LFG_TAG('V', 'G', 'E', 'N')
#define LFG_SEC_VOCAB_JOB	LFG_TAG('V', 'J', 'O', 'B')
#define LFG_SEC_RANK_PRIOR	LFG_TAG('R', 'P', 'R', 'I')
#define LFG_SEC_RANK_R		LFG_TAG('R', 'N', 'K', 'R')
#define LFG_SEC_RANK_C		LFG_TAG('R', 'N', 'K', 'C')
#define LFG_SEC_RANK_P		LFG_TAG('R', 'N', 'K', 'P')
#define LFG_SEC_RANK_THETA	LFG_TAG('R', 'N', 'K', 'G')
#define LFG_SEC_RANK_RUNNING LFG_TAG('R', 'N', 'K', 'N')
#define LFG_SEC_FOLDIN		LFG_TAG('F', 'O', 'L', 'D')
#define LFG_SEC_FOLDIN_BASE LFG_TAG('F', 'B', 'A', 'S')
#define LFG_SEC_EASE_B		LFG_TAG('E', 'A', 'S', 'B')
#define LFG_SEC_EASE_POP	LFG_TAG('E', 'P', 'O', 'P')
#define LFG_SEC_EASE_PTR	LFG_TAG('E', 'U', 'P', 'T')
#define LFG_SEC_EASE_ITEMS	LFG_TAG('E', 'U', 'I', 'T')
#define LFG_GEN_CONFIG_SIZE 64
#define LFG_MAX_VOCAB		4096

/*
 * A model, encoded or decoded. After lfg_model_decode every pointer points
 * into the caller's buffer, which must stay alive and be 8-byte aligned.
 */
typedef struct LfgModel
{
	LfgMfParams mf;
	const int64_t *user_ids;	/* n_users, strictly ascending */
	const int64_t *item_ids;	/* n_items, strictly ascending */
	const char *options_json;	/* JSON object text, not NUL-terminated */
	uint32_t	options_len;
	const char *metrics_json;
	uint32_t	metrics_len;
	/* kind lfg only: the generator and the vocabularies (string tables) */
	LfgNet		net;
	const uint8_t *vocab_gender;
	uint32_t	vocab_gender_len;
	const uint8_t *vocab_job;
	uint32_t	vocab_job_len;
	/* kind ease only (mf.k is 0 and mf has no P, Q, bu, bi) */
	LfgEase		ease;
} LfgModel;

/*
 * A string table: uint32 count, uint32 offsets[count + 1] into the bytes
 * that follow, then the bytes (no NUL terminators).
 */
extern size_t lfg_vocab_size(const char *const *strings, const uint32_t *lens, int32_t n);
extern void lfg_vocab_write(const char *const *strings, const uint32_t *lens, int32_t n,
							uint8_t *out);
extern int32_t lfg_vocab_find(const uint8_t *tab, const char *s, size_t len);
extern int32_t lfg_vocab_count(const uint8_t *tab);
extern const char *lfg_vocab_get(const uint8_t *tab, int32_t j, uint32_t *len);

extern LfgStatus lfg_model_encoded_size(const LfgModel *m, size_t *size,
										 LfgError *err);
extern LfgStatus lfg_model_encode(const LfgModel *m, LfgCrcFn crc,
								  uint8_t *buf, size_t size, LfgError *err);
extern LfgStatus lfg_model_decode(const uint8_t *buf, size_t len, LfgCrcFn crc,
								  LfgModel *out, LfgError *err);
/*
 * The same for bytes that lfg_model_decode has accepted before and that
 * nothing could change since (a shared copy): the header and the section
 * table are read again, the CRC and the contents are not.
 */
extern LfgStatus lfg_model_decode_trusted(const uint8_t *buf, size_t len, LfgModel *out,
										  LfgError *err);
extern int32_t lfg_find_id(const int64_t *ids, int32_t n, int64_t id);
extern bool lfg_model_metric(const LfgModel *m, const char *key, double *out);

/*
 * A direct index of ascending ids whose range is not much wider than their
 * count (MovieLens, serial keys): slot[id - base] is the dense index or -1.
 * A lookup is one load instead of a binary search's dozen dependent ones
 * (about 100 ns for 3,706 items). lfg_id_index_slots is 0 for ids too
 * sparse for it; then lfg_id_index_find falls back to lfg_find_id.
 */
typedef struct LfgIdIndex
{
	const int64_t *ids;
	int32_t		n;
	int64_t		base;			/* ids[0] */
	uint64_t	span;			/* slots, or 0: binary search */
	const int32_t *slot;
} LfgIdIndex;

extern size_t lfg_id_index_slots(const int64_t *ids, int32_t n);
extern void lfg_id_index_init(const int64_t *ids, int32_t n, int32_t *slot, size_t nslots,
							  LfgIdIndex *ix);

static inline int32_t
lfg_id_index_find(const LfgIdIndex *ix, int64_t id)
{
	uint64_t	off = (uint64_t) id - (uint64_t) ix->base;

	if (ix->span == 0)
		return lfg_find_id(ix->ids, ix->n, id);
	return off < ix->span ? ix->slot[off] : -1;
}

#endif							/* LFG_MODEL_H */
