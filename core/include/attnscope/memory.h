#pragma once
// Memory sizes: what the host has free now, and how attnscope prints a byte count (one
// convention everywhere: binary units, "12.9 GiB").
#include <cstdint>
#include <string>

#include "attnscope/status.h"

namespace attnscope {

/// Host memory new allocations can use now (Linux: MemAvailable of /proc/meminfo); 0 if unknown.
uint64_t availableHostMemory();

/// "512 B", "3.0 KiB", "12.9 GiB".
std::string humanBytes(uint64_t bytes);

/// Ok when `bytes` of host memory for `what` fit in what is available now (with headroom for
/// the rest of the program); else OutOfMemory naming `what`, the bytes needed and available,
/// before anything is allocated or generated. Unknown availability passes.
Status checkHostMemory(uint64_t bytes, const std::string& what);

}  // namespace attnscope
