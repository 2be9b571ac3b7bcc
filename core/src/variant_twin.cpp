#include "attnscope/variant_twin.h"

#include <fstream>

namespace attnscope {

std::string variantTwinToken(const std::string& path) {
    static const std::string kTwinLine = "# twin: ";
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(kTwinLine, 0) == 0) return line.substr(kTwinLine.size());
    return {};
}

}  // namespace attnscope
