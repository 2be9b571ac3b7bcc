#pragma once
// attnscope --screenshot-tour DIR [TRACE]: opens TRACE (or the demo), runs the analysis and saves
// a PNG of each main view into DIR (used by scripts/screenshots under Xvfb). Returns 0 on success.
#include <QString>

namespace attnscope {

class MainWindow;

int runScreenshotTour(MainWindow& window, const QString& dir, const QString& trace);

}  // namespace attnscope
