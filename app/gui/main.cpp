// attnscope [TRACE]: the desktop app. With no argument it opens the bundled demo trace.
// (The screenshot tour and the responsiveness benchmark: tools/gui-harness.)
#include <QApplication>
#include <QCommandLineParser>

#include "mainwindow.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("attnscope"));
    QApplication::setApplicationName(QStringLiteral("attnscope"));
    QApplication::setApplicationVersion(QStringLiteral(ATTNSCOPE_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QObject::tr("Attention visualizer for captured Q/K/V traces"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("trace"), QObject::tr("Trace to open (*.attn.safetensors)"),
                                 QStringLiteral("[TRACE]"));
    parser.process(app);

    attnscope::MainWindow window;
    window.show();
    if (!parser.positionalArguments().isEmpty())
        window.openTrace(parser.positionalArguments().first());
    else
        window.openDemo();
    return QApplication::exec();
}
