#include "demotrace.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include "attnscope/demo_trace.h"
#include "attnscope/synth.h"

namespace attnscope {

namespace {
constexpr int64_t kSyntheticTokens = 1024;
constexpr int kSyntheticLayers = 4;
}  // namespace

DemoTrace locateDemoTrace() {
    if (const QString found = QString::fromStdString(findDemoTrace()); !found.isEmpty())
        return {QFileInfo(found).absoluteFilePath(), false,
                QObject::tr("Opened the demo trace %1").arg(QFileInfo(found).fileName())};
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::CacheLocation);
    QDir().mkpath(dir);
    const QString path = dir + QStringLiteral("/synthetic-demo.attn.safetensors");
    if (!QFileInfo::exists(path)) {
        SynthOptions options;
        options.tokens = kSyntheticTokens;
        options.layers = kSyntheticLayers;
        auto truth = writeSyntheticTrace(path.toStdString(), options);
        if (!truth)
            return {{},
                    true,
                    QObject::tr("No demo trace found, and writing a synthetic one failed: %1")
                        .arg(QString::fromStdString(truth.message()))};
    }
    return {path, true,
            QObject::tr("No demo trace installed: opened a synthetic trace with planted patterns (%1)").arg(path)};
}

}  // namespace attnscope
