#pragma once
// Where the bundled demo trace is: the one finder the CLI's `demo` argument and the GUI's
// "Open demo" share.
#include <string>

namespace attnscope {

/// The demo trace, searched in order: $ATTNSCOPE_DEMO (a trace file, or a directory), then
/// PREFIX/share/attnscope/demo next to the running executable (PREFIX/bin), the configured data
/// dir's demo/, and the source tree's resources/demo/ of a development build. In a directory the
/// first *.attn.safetensors by name. Empty when there is none.
std::string findDemoTrace();

}  // namespace attnscope
