// scripts/install-deps on this machine, with apt-get and sudo replaced by stubs that only log:
// whatever it asks apt to install must really be missing (no installed package is, or provides,
// that name), so scripts/run, scripts/test and scripts/build do not call apt on every run.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QSet>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>

namespace {
constexpr int kTimeoutMs = 60000;

/// Installed package names and the names they provide (virtual packages), from dpkg.
QSet<QString> installedNames() {
    QProcess dpkg;
    dpkg.start(QStringLiteral("dpkg-query"),
               {QStringLiteral("-W"), QStringLiteral("-f=${db:Status-Abbrev}|${Package}|${Provides}\\n")});
    if (!dpkg.waitForFinished(kTimeoutMs)) return {};
    QSet<QString> names;
    for (const QString& line : QString::fromUtf8(dpkg.readAllStandardOutput()).split(QLatin1Char('\n'))) {
        const QStringList f = line.split(QLatin1Char('|'));
        if (f.size() < 3 || !f[0].startsWith(QLatin1String("ii"))) continue;
        names.insert(f[1]);
        for (QString provided : f[2].split(QLatin1Char(','), Qt::SkipEmptyParts)) {
            provided = provided.trimmed();
            names.insert(provided.left(provided.indexOf(QRegularExpression(QStringLiteral("[ (:]")))));
        }
    }
    return names;
}
}  // namespace

class TestInstallDeps : public QObject {
    Q_OBJECT
private slots:
    void asksOnlyForMissingPackages();
};

void TestInstallDeps::asksOnlyForMissingPackages() {
    if (QStandardPaths::findExecutable(QStringLiteral("dpkg-query")).isEmpty())
        QSKIP("not a Debian system: no dpkg-query");
    QTemporaryDir stubs;
    QVERIFY(stubs.isValid());
    const QString log = stubs.filePath(QStringLiteral("apt.log"));
    auto writeStub = [&](const QString& name, const QByteArray& body) {
        QFile f(stubs.filePath(name));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("#!/bin/sh\n" + body);
        f.close();
        f.setPermissions(f.permissions() | QFileDevice::ExeOwner);
    };
    writeStub(QStringLiteral("apt-get"), "echo \"$@\" >> '" + log.toUtf8() + "'\n");
    writeStub(QStringLiteral("sudo"), "exec \"$@\"\n");

    const QSet<QString> installed = installedNames();
    QVERIFY(!installed.isEmpty());
    // Twice, as scripts/run then scripts/test would: neither run may ask for an installed package.
    for (int run = 0; run < 2; ++run) {
        QProcess script;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert(QStringLiteral("PATH"), stubs.path() + QLatin1Char(':') + env.value(QStringLiteral("PATH")));
        script.setProcessEnvironment(env);
        script.start(QStringLiteral(ATTNSCOPE_SOURCE_DIR "/scripts/install-deps"), {});
        QVERIFY(script.waitForFinished(kTimeoutMs));
        QVERIFY2(script.exitCode() == 0, script.readAllStandardError().constData());
        QFile f(log);
        if (!f.exists()) continue;  // nothing missing: apt was not called
        QVERIFY(f.open(QIODevice::ReadOnly));
        for (const QString& line : QString::fromUtf8(f.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts)) {
            if (!line.contains(QLatin1String("install"))) continue;
            for (const QString& word : line.split(QLatin1Char(' '), Qt::SkipEmptyParts))
                QVERIFY2(
                    word.startsWith(QLatin1Char('-')) || word == QLatin1String("install") || !installed.contains(word),
                    qPrintable(QStringLiteral("apt was asked to install %1, which is installed").arg(word)));
        }
    }
}

QTEST_GUILESS_MAIN(TestInstallDeps)
#include "tst_installdeps.moc"
