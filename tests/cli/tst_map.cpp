// attnscope-cli synth + map end to end: a synthetic trace, its map as PNG and CSV (mass
// conservation, the planted previous-token diagonal), and the one-line errors for bad arguments.
#include <QtTest>

#include <QFile>

#include "attnscope/image.h"

using namespace attnscope;

using RunResult = std::tuple<int, QString, QString>;

class TestMap : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    QString m_trace;

    static RunResult cli(const QStringList& args) {
        QProcess p;
        p.start(ATTNSCOPE_CLI, args);
        if (!p.waitForFinished(120000)) return {-1, {}, {}};
        return {p.exitCode(), QString::fromUtf8(p.readAllStandardOutput()),
                QString::fromUtf8(p.readAllStandardError())};
    }

    static QList<QList<double>> readCsv(const QString& path, QStringList* header) {
        QFile f(path);
        QList<QList<double>> rows;
        if (!f.open(QIODevice::ReadOnly)) return rows;
        const QStringList lines = QString::fromUtf8(f.readAll()).split('\n', Qt::SkipEmptyParts);
        for (int i = 0; i < lines.size(); ++i) {
            if (i == 0) {
                *header = lines[i].split(',');
                continue;
            }
            QList<double> row;
            for (const QString& v : lines[i].split(',')) row.push_back(v.toDouble());
            rows.push_back(row);
        }
        return rows;
    }

private slots:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        m_trace = m_dir.filePath("s.attn.safetensors");
        const auto [code, out, err] =
            cli({"synth", "-o", m_trace, "--tokens", "300", "--layers", "1", "--dtype", "f32", "--seed", "5"});
        QVERIFY2(code == 0, qPrintable(err));
        QVERIFY(out.contains("previous-token") && out.contains("induction") && out.contains("repeated segment"));
    }

    void png() {
        const QString png = m_dir.filePath("m.png");
        const auto [code, out, err] =
            cli({"map", m_trace, "--layer", "0", "--head", "0", "--size", "64x32", "-o", png});
        QVERIFY2(code == 0, qPrintable(err));
        QFile f(png);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.readAll();
        QVERIFY(bytes.startsWith("\x89PNG\r\n\x1a\n"));
        QCOMPARE(bytes.mid(12, 4), QByteArray("IHDR"));
        QCOMPARE(int(uchar(bytes[19])), 64);  // width, big-endian low byte
        QCOMPARE(int(uchar(bytes[23])), 32);  // height
    }

    void csvConservesMass() {
        // Every row of probabilities sums to 1, so Σ mean·area over the full map is T.
        const QString csv = m_dir.filePath("m.csv");
        const auto [code, out, err] = cli({"map", m_trace, "--layer", "0", "--head", "6", "--size", "10x5", "-o", csv});
        QVERIFY2(code == 0, qPrintable(err));
        QStringList header;
        const auto rows = readCsv(csv, &header);
        QCOMPARE(header.size(), 10);
        QCOMPARE(header.front(), QString("k0"));
        QCOMPARE(rows.size(), 5);
        double total = 0;
        for (const auto& r : rows) {
            QCOMPARE(r.size(), 10);
            for (double v : r) total += v * (300.0 / 5) * (300.0 / 10);
        }
        QVERIFY2(std::abs(total - 300.0) < 1e-3, qPrintable(QString::number(total)));
    }

    void previousTokenDiagonal() {
        const QString csv = m_dir.filePath("p.csv");
        const auto [code, out, err] = cli({"map", m_trace, "--layer", "0", "--head", "3", "--rect", "100,110,90,110",
                                           "--size", "20x10", "--pool", "max", "-o", csv});
        QVERIFY2(code == 0, qPrintable(err));
        QStringList header;
        const auto rows = readCsv(csv, &header);
        QCOMPARE(rows.size(), 10);
        for (int y = 0; y < 10; ++y) QVERIFY2(rows[y][y + 9] > 0.8, qPrintable(QString("row %1").arg(100 + y)));
    }

    void excludeSinks() {
        const QString csv = m_dir.filePath("x.csv");
        const auto [code, out, err] =
            cli({"map", m_trace, "--layer", "0", "--head", "0", "--exclude-sinks", "--size", "4x4", "-o", csv});
        QVERIFY2(code == 0, qPrintable(err));
        QVERIFY2(out.contains("excluded 1 sink key(s): 0"), qPrintable(out));
    }

    // The CLI's PNG is core's colorize() of the values its CSV holds, byte for byte (the GUI's
    // map draws the same bytes: tests/views/tst_mapcoloring), for each pooling, scale and colormap.
    void pngIsCoreColorize() {
        for (const QStringList& extra :
             {QStringList{}, QStringList{"--pool", "max"}, QStringList{"--scale", "linear", "--colormap", "magma"}}) {
            const QStringList args = QStringList{"map", m_trace,  "--layer", "0",     "--head",
                                                 "1",   "--size", "40x24",   "--cpu", "--no-progress"} +
                                     extra;
            const QString png = m_dir.filePath("c.png"), csv = m_dir.filePath("c.csv");
            for (const QString& out : {png, csv}) {
                const auto [code, o, err] = cli(args + QStringList{"-o", out});
                QVERIFY2(code == 0, qPrintable(err));
            }
            QFile c(csv);
            QVERIFY(c.open(QIODevice::ReadOnly));
            const QList<QByteArray> lines = c.readAll().trimmed().split('\n');
            QCOMPARE(lines.size(), 1 + 24);
            std::vector<float> values;
            for (int y = 1; y < lines.size(); ++y)
                for (const QByteArray& cell : lines[y].split(',')) values.push_back(cell.toFloat());
            QCOMPARE(values.size(), size_t(40 * 24));
            ColorizeOptions options;
            options.scale = extra.contains("linear") ? ColorScale::Linear : ColorScale::Log;
            options.map = extra.contains("magma") ? Colormap::Magma : Colormap::Viridis;
            const std::vector<uint8_t> expected = encodePng(colorize(values, 40, 24, options));
            QFile p(png);
            QVERIFY(p.open(QIODevice::ReadOnly));
            const QByteArray bytes = p.readAll();
            QVERIFY2(bytes == QByteArray(reinterpret_cast<const char*>(expected.data()), qsizetype(expected.size())),
                     qPrintable(extra.join(' ')));
        }
    }

    void badArguments_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("layer") << QStringList{"--layer", "3", "--head", "0"} << "the trace has 1 layers";
        QTest::newRow("head") << QStringList{"--layer", "0", "--head", "8"} << "layer 0 has 8 heads";
        QTest::newRow("rect outside") << QStringList{"--layer", "0", "--head", "0", "--rect", "0,301,0,10"}
                                      << "must lie inside [0,300]";
        QTest::newRow("rect empty") << QStringList{"--layer", "0", "--head", "0", "--rect", "5,5,0,10"} << "q0 < q1";
        QTest::newRow("rect syntax") << QStringList{"--layer", "0", "--head", "0", "--rect", "1,2"} << "four integers";
        QTest::newRow("size") << QStringList{"--layer", "0", "--head", "0", "--size", "0x4"} << "expected N or WxH";
        QTest::newRow("pool") << QStringList{"--layer", "0", "--head", "0", "--pool", "sum"} << "mean or max";
        QTest::newRow("missing head") << QStringList{"--layer", "0"} << "required";
    }

    void badArguments() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const auto [code, out, err] =
            cli(QStringList{"map", m_trace} + args + QStringList{"-o", m_dir.filePath("e.png")});
        QCOMPARE(code, 1);
        QVERIFY2(err.contains(message), qPrintable(err));
        QCOMPARE(err.count('\n'), 1);  // one line
        QVERIFY(!QFile::exists(m_dir.filePath("e.png")));
    }

    void badOutputAndTrace() {
        auto [code, out, err] = cli({"map", m_trace, "--layer", "0", "--head", "0", "-o", m_dir.filePath("x.jpg")});
        QCOMPARE(code, 1);
        QVERIFY(err.contains(".png or .csv"));
        std::tie(code, out, err) = cli({"map", m_dir.filePath("none.attn.safetensors"), "--layer", "0", "--head", "0",
                                        "-o", m_dir.filePath("y.png")});
        QCOMPARE(code, 1);
        QVERIFY(err.contains("none.attn.safetensors"));
        std::tie(code, out, err) = cli({"synth", "-o", m_dir.filePath("bad.attn.safetensors"), "--head-dim", "8"});
        QCOMPARE(code, 1);
        QVERIFY2(err.contains("head dim"), qPrintable(err));
    }
};

QTEST_GUILESS_MAIN(TestMap)
#include "tst_map.moc"
