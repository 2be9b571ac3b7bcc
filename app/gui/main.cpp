// attnscope [TRACE]: the desktop app. With no argument it opens the bundled demo trace.
// Hidden modes: --bench-responsiveness [--tokens N] and --screenshot-tour DIR.
#include <QApplication>
#include <QCommandLineParser>

#include "benchresponsiveness.h"
#include "mainwindow.h"
#include "screenshottour.h"

int main(int argc, char** argv)
{
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("attnscope"));
    QApplication::setApplicationName(QStringLiteral("attnscope"));
    QApplication::setApplicationVersion(QStringLiteral(ATTNSCOPE_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QObject::tr("Attention visualizer for captured Q/K/V traces"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("trace"), QObject::tr("Trace to open (*.attn.safetensors)"), QStringLiteral("[TRACE]"));
    QCommandLineOption bench(QStringLiteral("bench-responsiveness"),
                             QObject::tr("Measure time to first overview and event-loop stalls, then exit"));
    QCommandLineOption tokens(QStringLiteral("tokens"), QObject::tr("Tokens of the benchmark's synthetic head"),
                              QStringLiteral("N"), QStringLiteral("32768"));
    QCommandLineOption tour(QStringLiteral("screenshot-tour"), QObject::tr("Save a screenshot of each main view to DIR, then exit"),
                            QStringLiteral("DIR"));
    for (QCommandLineOption* o : {&bench, &tokens, &tour})
        o->setFlags(QCommandLineOption::HiddenFromHelp);
    parser.addOptions({bench, tokens, tour});
    parser.process(app);

    if (parser.isSet(bench))
        return attnscope::runResponsivenessBenchmark(parser.value(tokens).toLongLong());

    attnscope::MainWindow window;
    window.show();
    if (parser.isSet(tour))
        return attnscope::runScreenshotTour(window, parser.value(tour), parser.positionalArguments().value(0));
    if (!parser.positionalArguments().isEmpty())
        window.openTrace(parser.positionalArguments().first());
    else
        window.openDemo();
    return QApplication::exec();
}
