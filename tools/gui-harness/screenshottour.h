#pragma once
// attnscope-gui-harness --screenshot-tour DIR [TRACE]: opens TRACE (or the demo), runs the analysis and saves
// a PNG of each main view into DIR, the profiler's kernel timeline last (used by
// scripts/screenshots and scripts/device-gui.sh under Xvfb). Returns 0 on success.
#include <QString>

namespace attnscope {

class MainWindow;

int runScreenshotTour(MainWindow& window, const QString& dir, const QString& trace);

}  // namespace attnscope
