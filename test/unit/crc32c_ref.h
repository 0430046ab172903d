/* A bitwise CRC32C (Castagnoli) for tests and fuzzing, independent of PostgreSQL */
#ifndef CRC32C_REF_H
#define CRC32C_REF_H
#include <stddef.h>
#include <stdint.h>

static inline uint32_t
crc32c_ref(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t	crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc ^ 0xFFFFFFFFu;
}
#endif
