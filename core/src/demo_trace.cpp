// The demo-trace finder (attnscope/demo_trace.h). ATTNSCOPE_DATADIR and ATTNSCOPE_SOURCE_DIR come
// from core/CMakeLists.txt for this file alone.
#include "attnscope/demo_trace.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

namespace attnscope {

namespace {
namespace fs = std::filesystem;
constexpr std::string_view kTraceSuffix = ".attn.safetensors";

bool isTraceName(const std::string& name) {
    return name.size() > kTraceSuffix.size() &&
           name.compare(name.size() - kTraceSuffix.size(), kTraceSuffix.size(), kTraceSuffix) == 0;
}

constexpr std::string_view kTextDemoName = "demo";
constexpr std::string_view kVisionDemoName = "demo:vision";

/// `location` itself when it is a file; the first trace by name when it is a directory (the
/// vision demo is not the text demo, whatever its name sorts as).
std::string firstTrace(const fs::path& location) {
    std::error_code ec;
    if (fs::is_regular_file(location, ec)) return location.string();
    if (!fs::is_directory(location, ec)) return {};
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(location, ec))
        if (const std::string n = e.path().filename().string();
            isTraceName(n) && n != kVisionDemoFile && e.is_regular_file(ec))
            names.push_back(n);
    if (names.empty()) return {};
    return (location / *std::min_element(names.begin(), names.end())).string();
}

/// Where the demos are looked for, in order.
std::vector<fs::path> demoLocations() {
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("ATTNSCOPE_DEMO"); env && *env) candidates.emplace_back(env);
    std::error_code ec;
    if (const fs::path exe = fs::read_symlink("/proc/self/exe", ec); !ec)
        candidates.push_back(exe.parent_path() / ".." / "share" / "attnscope" / "demo");
#ifdef ATTNSCOPE_DATADIR
    candidates.push_back(fs::path(ATTNSCOPE_DATADIR) / "demo");
#endif
#ifdef ATTNSCOPE_SOURCE_DIR
    candidates.push_back(fs::path(ATTNSCOPE_SOURCE_DIR) / "resources" / "demo");
#endif
    return candidates;
}
}  // namespace

std::string findDemoTrace() {
    for (const fs::path& c : demoLocations())
        if (std::string found = firstTrace(c); !found.empty()) return found;
    return {};
}

bool isDemoName(std::string_view arg) { return arg == kTextDemoName || arg == kVisionDemoName; }

std::string findDemoTrace(std::string_view name) {
    if (name == kTextDemoName) return findDemoTrace();
    if (name != kVisionDemoName) return {};
    std::error_code ec;
    for (const fs::path& c : demoLocations())
        if (fs::is_directory(c, ec) && fs::is_regular_file(c / kVisionDemoFile, ec))
            return (c / kVisionDemoFile).string();
    return {};
}

}  // namespace attnscope
