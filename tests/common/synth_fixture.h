#pragma once
// The synthetic traces the Qt-side tests open (views, app, CLI), and the settings isolation of
// the tests that run the GUI.
#include <QByteArray>
#include <QCoreApplication>
#include <QStandardPaths>
#include <QString>

#include "attnscope/synth.h"
#include "attnscope/synth_vision.h"
#include "attnscope/trace.h"

namespace attnscope::testing {

/// Writes a synthetic trace of `tokens` tokens, `layers` layers and head dim `headDim` (the
/// synth defaults for everything else: planted patterns, seed 1) to `path`.
inline Result<SynthTruth> writeSynthTrace(const QString& path, int64_t tokens, int layers,
                                          int headDim = SynthOptions{}.headDim) {
    SynthOptions o;
    o.tokens = tokens;
    o.layers = layers;
    o.headDim = headDim;
    return writeSyntheticTrace(path.toStdString(), o);
}

/// writeSynthTrace, then the trace opened: what the view tests hand to their session.
inline Result<std::shared_ptr<const Trace>> openSynthTrace(const QString& path, int64_t tokens, int layers,
                                                           int headDim = SynthOptions{}.headDim) {
    if (auto written = writeSynthTrace(path, tokens, layers, headDim); !written) return written.status();
    return Trace::open(path.toStdString());
}

/// The small vision traces the Qt-side tests use (synth_vision.h): a rows × cols grid of 8-pixel
/// patches after `prefix` tokens ([CLS], registers), `layers` layers of `heads` heads of dim
/// `headDim`, the image included, seed 1.
struct SmallVision {
    int rows = 6, cols = 7, prefix = 3, layers = 2, heads = 4, headDim = 32;
};

inline VisionSynthOptions visionOptions(const SmallVision& shape) {
    VisionSynthOptions v;
    v.rows = shape.rows, v.cols = shape.cols, v.prefix = shape.prefix, v.patchSize = 8;
    v.layers = shape.layers, v.heads = shape.heads, v.headDim = shape.headDim;
    return v;
}

/// Writes the small vision trace `shape` to `path`.
inline Result<VisionSynthTruth> writeVisionTrace(const QString& path, const SmallVision& shape) {
    return writeVisionSyntheticTrace(path.toStdString(), visionOptions(shape));
}

/// For tests that run the main window: settings in the test location (never the user's) under
/// an application of their own, and no modal dialogs (ATTNSCOPE_NO_DIALOGS).
inline void isolateGuiTest(const char* application) {
    QStandardPaths::setTestModeEnabled(true);
    qputenv("ATTNSCOPE_NO_DIALOGS", "1");
    QCoreApplication::setOrganizationName(QStringLiteral("attnscope-test"));
    QCoreApplication::setApplicationName(QString::fromLatin1(application));
}

}  // namespace attnscope::testing
