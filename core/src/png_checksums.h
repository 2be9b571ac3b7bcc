#pragma once
// The checksums inside a PNG file (image.cpp's encoder), declared apart from attnscope/image.h so
// tests/core/tst_image can check them against their published check values. Not part of the
// public API (tests include core/src).
#include <cstddef>
#include <cstdint>

namespace attnscope {

/// CRC-32 (ISO 3309, as PNG chunks use); crc32("123456789") == 0xCBF43926.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);
/// Adler-32 (the zlib stream's trailer); adler32("Wikipedia") == 0x11E60398.
uint32_t adler32(const uint8_t* data, size_t size, uint32_t adler = 1);

}  // namespace attnscope
