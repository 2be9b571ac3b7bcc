#pragma once
// The one list splitter of the command line and the GUI's text fields.
#include <string>
#include <vector>

namespace attnscope {

/// Splits `text` at `sep` outside parentheses and brackets and drops empty items:
/// "expr:mask: max(q, k) < 9,causal" is two variants, "0,3-5" two index ranges,
/// "1,8,4096,64/1,8,8192,64" (sep '/') two shapes.
std::vector<std::string> splitList(const std::string& text, char sep = ',');

}  // namespace attnscope
