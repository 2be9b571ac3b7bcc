#pragma once
// Finds the bundled demo trace, or generates a synthetic one when none is installed.
#include <QString>

namespace attnscope {

struct DemoTrace {
    QString path;  ///< empty when nothing could be found or generated
    bool synthetic = false;
    QString message;  ///< what happened, for the status bar (or the error)
};

/// The bundled demo trace (findDemoTrace, attnscope/demo_trace.h). When there is none, writes a
/// synthetic trace (writeSyntheticTrace) into the user cache dir, once, and returns that.
DemoTrace locateDemoTrace();

}  // namespace attnscope
