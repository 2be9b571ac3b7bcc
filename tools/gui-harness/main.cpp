// attnscope-gui-harness: the desktop app driven by script, for the docs and the benchmarks; built
// with the GUI, never installed.
//   attnscope-gui-harness --screenshot-tour DIR [TRACE]   a PNG of each main view into DIR
//   attnscope-gui-harness --bench-responsiveness [--tokens N]
#include <QApplication>
#include <QCommandLineParser>

#include "benchresponsiveness.h"
#include "mainwindow.h"
#include "screenshottour.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    // The app's own settings identity, so the tour shows what a user's app shows (scripts give
    // it a private XDG_CONFIG_HOME).
    QApplication::setOrganizationName(QStringLiteral("attnscope"));
    QApplication::setApplicationName(QStringLiteral("attnscope"));

    QCommandLineParser parser;
    parser.setApplicationDescription(
        QObject::tr("Drives the attnscope window by script: a screenshot tour or the responsiveness benchmark"));
    parser.addHelpOption();
    parser.addPositionalArgument(QStringLiteral("trace"), QObject::tr("Trace for the tour (default: the demo)"),
                                 QStringLiteral("[TRACE]"));
    QCommandLineOption bench(QStringLiteral("bench-responsiveness"),
                             QObject::tr("Measure time to first overview and event-loop stalls, then exit"));
    QCommandLineOption tokens(QStringLiteral("tokens"), QObject::tr("Tokens of the benchmark's synthetic head"),
                              QStringLiteral("N"), QStringLiteral("32768"));
    QCommandLineOption tour(QStringLiteral("screenshot-tour"),
                            QObject::tr("Save a screenshot of each main view to DIR, then exit"),
                            QStringLiteral("DIR"));
    parser.addOptions({bench, tokens, tour});
    parser.process(app);

    if (parser.isSet(bench)) return attnscope::runResponsivenessBenchmark(parser.value(tokens).toLongLong());
    if (!parser.isSet(tour)) {
        fputs("attnscope-gui-harness: give --screenshot-tour DIR [TRACE] or --bench-responsiveness (see --help)\n",
              stderr);
        return 2;
    }
    attnscope::MainWindow window;
    window.show();
    return attnscope::runScreenshotTour(window, parser.value(tour), parser.positionalArguments().value(0));
}
