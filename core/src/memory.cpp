#include "attnscope/memory.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

namespace attnscope {
namespace {
/// Allocations may take at most this share of the available memory: the rest of the program
/// (the analysis, the GUI, the page cache of the trace) needs room too.
constexpr double kHostMemoryShare = 0.9;
}  // namespace

uint64_t availableHostMemory() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t value = 0;
    std::string unit;
    while (meminfo >> key >> value) {
        std::getline(meminfo, unit);
        if (key == "MemAvailable:") return value * 1024;  // reported in kB (KiB)
    }
    return 0;
}

std::string humanBytes(uint64_t bytes) {
    constexpr double kStep = 1024.0;
    static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = double(bytes);
    size_t unit = 0;
    while (v >= kStep && unit + 1 < std::size(kUnits)) {
        v /= kStep;
        ++unit;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
    return buf;
}

Status checkHostMemory(uint64_t bytes, const std::string& what) {
    const uint64_t available = availableHostMemory();
    if (available == 0 || double(bytes) <= kHostMemoryShare * double(available)) return Status::success();
    return Status(ErrorCode::OutOfMemory,
                  what + " needs " + humanBytes(bytes) + " of host memory; " + humanBytes(available) + " is available");
}

}  // namespace attnscope
