#pragma once
// attnscope-gui-harness --bench-responsiveness [--tokens N]: opens an N-token synthetic head in the map view,
// measures the time to the first overview, then drives zoom and pan while a QTimer heartbeat
// records event-loop stalls. Prints the numbers; exit code 0 when both targets are met
// (first overview <= 2 s, no stall > 50 ms), 1 otherwise, 2 on errors.
#include <cstdint>

namespace attnscope {

int runResponsivenessBenchmark(int64_t tokens);

}  // namespace attnscope
