#pragma once
// Where the bundled demo trace is: the one finder the CLI's `demo` argument and the GUI's
// "Open demo" share.
#include <string>
#include <string_view>

namespace attnscope {

/// The demo trace, searched in order: $ATTNSCOPE_DEMO (a trace file, or a directory), then
/// PREFIX/share/attnscope/demo next to the running executable (PREFIX/bin), the configured data
/// dir's demo/, and the source tree's resources/demo/ of a development build. In a directory the
/// first *.attn.safetensors by name. Empty when there is none.
std::string findDemoTrace();

/// The bundled vision demo's file name (resources/demo; a tiny ViT's trace with its image).
inline constexpr const char* kVisionDemoFile = "shapes-vit.attn.safetensors";
/// The names the CLI and the GUI take in place of a trace path: "demo" (the text demo, as
/// findDemoTrace()) and "demo:vision" (kVisionDemoFile, searched in the same places).
bool isDemoName(std::string_view arg);
/// The trace a demo name stands for; empty when none is found or `name` is not a demo name.
std::string findDemoTrace(std::string_view name);

}  // namespace attnscope
