/*
 * lfg_model.h
 *	  The model byte format (doc/model-format.md): encoder and checking
 *	  decoder.
 */
#ifndef LFG_MODEL_H
#define LFG_MODEL_H

#include "lfg_core.h"
#include "lfg_mf.h"

#define LFG_MODEL_MAGIC			"LFGM"
#define LFG_MODEL_BYTE_ORDER	UINT32_C(0x01020304)
#define LFG_MODEL_VERSION		1
#define LFG_MODEL_HEADER_SIZE	64
#define LFG_MODEL_SECTION_SIZE	24
#define LFG_MODEL_MAX_SECTIONS	16
#define LFG_MODEL_MAX_JSON		(1024 * 1024)

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
} LfgModel;

extern LfgStatus lfg_model_encoded_size(const LfgModel *m, size_t *size,
										 LfgError *err);
extern LfgStatus lfg_model_encode(const LfgModel *m, LfgCrcFn crc,
								  uint8_t *buf, size_t size, LfgError *err);
extern LfgStatus lfg_model_decode(const uint8_t *buf, size_t len, LfgCrcFn crc,
								  LfgModel *out, LfgError *err);
extern int32_t lfg_find_id(const int64_t *ids, int32_t n, int64_t id);

#endif							/* LFG_MODEL_H */
