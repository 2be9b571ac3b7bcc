#pragma once
// Runs the attnscope-cli under test (the ATTNSCOPE_CLI path CMake passes to tests/cli) and
// collects its exit code and output, for the end-to-end CLI tests.
#include <QProcess>
#include <QString>
#include <QStringList>

namespace cliTest {

struct Run {
    int code = -1;  ///< -1: did not finish in time; -2: crashed
    QString out, err;
};

inline Run cli(const QStringList& args, const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment()) {
    constexpr int kTimeoutMs = 300000;
    QProcess p;
    p.setProcessEnvironment(env);
    p.start(QStringLiteral(ATTNSCOPE_CLI), args);
    Run r;
    if (!p.waitForFinished(kTimeoutMs)) return r;
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -2;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

}  // namespace cliTest
