#pragma once
// The example programs (resources/variants/*.attnvar, docs/variants.md) name the built-in
// variant they must equal in a "# twin: TOKEN" comment line; the GPU self-test and the tests read
// it here.
#include <string>

namespace attnscope {

/// The TOKEN of a program file's "# twin: TOKEN" line, or "" when it has none or cannot be read.
std::string variantTwinToken(const std::string& path);

}  // namespace attnscope
