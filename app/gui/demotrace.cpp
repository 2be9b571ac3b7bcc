#include "demotrace.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QStandardPaths>

#include "attnscope/synth.h"

namespace attnscope {

namespace {
const QString kTracePattern = QStringLiteral("*.attn.safetensors");
constexpr int64_t kSyntheticTokens = 1024;
constexpr int kSyntheticLayers = 4;

QString firstTrace(const QString& location)
{
    const QFileInfo info(location);
    if (info.isFile())
        return info.absoluteFilePath();
    if (!info.isDir())
        return {};
    const auto files = QDir(location).entryInfoList({kTracePattern}, QDir::Files, QDir::Name);
    return files.isEmpty() ? QString() : files.first().absoluteFilePath();
}
}  // namespace

DemoTrace locateDemoTrace()
{
    // Next to the executable first (PREFIX/bin -> PREFIX/share/attnscope/demo), so an installed
    // copy finds its data whatever prefix it was configured with.
    const QStringList candidates = {qEnvironmentVariable("ATTNSCOPE_DEMO"),
                                    QCoreApplication::applicationDirPath() + QStringLiteral("/../share/attnscope/demo"),
                                    QStringLiteral(ATTNSCOPE_DATADIR "/demo"),
                                    QStringLiteral(ATTNSCOPE_SOURCE_DIR "/resources/demo")};
    for (const QString& c : candidates) {
        if (c.isEmpty())
            continue;
        if (QString found = firstTrace(c); !found.isEmpty())
            return {found, false, QObject::tr("Opened the demo trace %1").arg(QFileInfo(found).fileName())};
    }
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::CacheLocation);
    QDir().mkpath(dir);
    const QString path = dir + QStringLiteral("/synthetic-demo.attn.safetensors");
    if (!QFileInfo::exists(path)) {
        SynthOptions options;
        options.tokens = kSyntheticTokens;
        options.layers = kSyntheticLayers;
        auto truth = writeSyntheticTrace(path.toStdString(), options);
        if (!truth)
            return {{}, true, QObject::tr("No demo trace found, and writing a synthetic one failed: %1")
                                   .arg(QString::fromStdString(truth.message()))};
    }
    return {path, true,
            QObject::tr("No demo trace installed: opened a synthetic trace with planted patterns (%1)").arg(path)};
}

}  // namespace attnscope
