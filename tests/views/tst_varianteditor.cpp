// VariantEditor: a parse error is underlined at its line and column with the message shown and
// Profile disabled; a valid program gives its expr: token, a preview equal to variantAllows pair
// by pair, and Profile hands the token on. Programs kept by name live in the user's settings (a
// test-mode QSettings here), come back in a new editor and in the profiler panel's list, and go
// to and from .attnvar files with errors that name the file.
#include <QtTest>

#include <QComboBox>
#include <QListWidget>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>

#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QTextBlock>

#include "attnscope/variant_expr.h"
#include "attnscope/variants.h"
#include "profilerpanel.h"
#include "savedvariants.h"
#include "varianteditor.h"

using namespace attnscope;

class TestVariantEditor : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);  // settings under ~/.qttest, not the user's
        QCoreApplication::setOrganizationName(QStringLiteral("attnscope-tests"));
        QCoreApplication::setApplicationName(QStringLiteral("tst_varianteditor"));
    }
    void init() {
        QSettings().clear();
        QVERIFY(savedvariants::names().isEmpty());
    }
    void cleanupTestCase() { QSettings().clear(); }

    void errorIsUnderlined() {
        VariantEditor editor;
        editor.setProgram(QStringLiteral("const W = 64\nmask: k <= q && q - k < window"));
        QVERIFY2(editor.errorText().startsWith(QStringLiteral("program:2:25: unknown name 'window'")),
                 qPrintable(editor.errorText()));
        QVERIFY(editor.token().isEmpty());
        QVERIFY(!editor.profileButton()->isEnabled());
        const auto marks = editor.textEdit()->extraSelections();
        QCOMPARE(marks.size(), 1);
        const QTextCursor c = marks.front().cursor;
        QCOMPARE(c.block().blockNumber(), 1);                     // line 2
        QCOMPARE(c.selectionStart() - c.block().position(), 24);  // column 25
        QCOMPARE(c.selectedText(), QStringLiteral("window"));
        QCOMPARE(marks.front().format.underlineStyle(), QTextCharFormat::SpellCheckUnderline);
        // The preview says "no program": uniform grey.
        QCOMPARE(editor.preview().pixel(10, 200), editor.preview().pixel(200, 10));
    }

    void errorAtTheEndIsUnderlined() {
        VariantEditor editor;
        editor.setProgram(QStringLiteral("mask: k <"));
        QVERIFY2(editor.errorText().startsWith(QStringLiteral("program:1:10: expected an expression")),
                 qPrintable(editor.errorText()));
        QCOMPARE(editor.textEdit()->extraSelections().size(), 1);
        QVERIFY(editor.textEdit()->extraSelections().front().cursor.hasSelection());
    }

    void validProgramPreviewsItsMask() {
        VariantEditor editor;
        QSignalSpy changed(&editor, &VariantEditor::programChanged);
        editor.setPreviewTokens(VariantEditor::kPreviewSize);  // one pixel per pair
        editor.setProgram(QStringLiteral("# sinks + window\nconst W = 64\nmask: k <= q && (k < 4 || q - k < W)"));
        QVERIFY2(editor.errorText().isEmpty(), qPrintable(editor.errorText()));
        QCOMPARE(editor.token(), QStringLiteral("expr:const W = 64; mask: k <= q && (k < 4 || q - k < W)"));
        QVERIFY(!changed.isEmpty());
        QCOMPARE(changed.last().at(0).toString(), editor.token());
        auto v = parseVariant(editor.token().toStdString());
        QVERIFY2(v, v.message().c_str());
        const QImage& img = editor.preview();
        const QRgb dark = img.pixel(0, 0);  // (q 0, k 0) is allowed
        int mismatches = 0, allowed = 0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                const bool a = variantAllows(*v, VariantEditor::kPreviewSize, y, x);
                allowed += a;
                mismatches += a != (img.pixel(x, y) == dark);
            }
        QCOMPARE(mismatches, 0);
        QVERIFY(allowed > 1000);
    }

    void profileHandsOnTheToken() {
        VariantEditor editor;
        editor.setProgram(QStringLiteral("mask: k <= q\nscore: 30.0 * tanh(s / 30.0)"));
        QSignalSpy profile(&editor, &VariantEditor::profileRequested);
        QVERIFY(editor.profileButton()->isEnabled());
        editor.profileButton()->click();
        QCOMPARE(profile.size(), 1);
        QCOMPARE(profile.front().at(0).toString(), QStringLiteral("expr:mask: k <= q; score: 30.0 * tanh(s / 30.0)"));
        // The token is a variant the profiler parses.
        QVERIFY(parseVariant(profile.front().at(0).toString().toStdString()));
    }

    /// The profiler panel's "Write a variant…" opens the editor; Profile adds the program to the
    /// panel's variants, and the request carries it as one token.
    void profilerPanelTakesThePrograms() {
        ProfilerPanel panel;
        panel.setVariants({QStringLiteral("causal")});
        auto* button = panel.findChild<QPushButton*>(QStringLiteral("writeProgram"));
        QVERIFY(button);
        button->click();
        auto* editor = panel.findChild<VariantEditor*>();
        QVERIFY(editor);
        QSignalSpy overlay(&panel, &ProfilerPanel::variantProgramChanged);
        editor->setProgram(QStringLiteral("mask: max(q - k, 0) < 8 && k <= q"));
        // The parsed program goes to the map's overlay as it is typed.
        QVERIFY(!overlay.isEmpty());
        QCOMPARE(overlay.last().at(0).toString(), QStringLiteral("expr:mask: max(q - k, 0) < 8 && k <= q"));
        editor->profileButton()->click();
        const ProfileRequest req = panel.request();
        QVERIFY2(std::find(req.variants.begin(), req.variants.end(), "expr:mask: max(q - k, 0) < 8 && k <= q") !=
                     req.variants.end(),
                 "the program's token is one of the request's variants");
    }
    /// Keep stores parsing programs by name (replacing one of the same name), refuses programs
    /// that do not parse and empty names; a new editor lists them and loads one when chosen.
    void keptProgramsLiveInTheSettings() {
        const QString window = QStringLiteral("const W = 128\nmask: k <= q && q - k < W\n");
        const QString softcap = QStringLiteral("score: 20.0 * tanh(s / 20.0)\n");
        {
            VariantEditor editor;
            QSignalSpy changed(&editor, &VariantEditor::savedChanged);
            editor.setProgram(window);
            QVERIFY(editor.keep(QStringLiteral("window 128")));
            editor.setProgram(softcap);
            QVERIFY(editor.keep(QStringLiteral("  Softcap  ")));  // trimmed
            editor.setProgram(QStringLiteral("mask: k <= "));
            QVERIFY(!editor.keep(QStringLiteral("broken")));
            QVERIFY2(editor.statusText().contains(QStringLiteral("expected an expression")),
                     qPrintable(editor.statusText()));
            editor.setProgram(softcap);
            QVERIFY(!editor.keep(QStringLiteral("   ")));
            QCOMPARE(changed.size(), 2);
        }
        QCOMPARE(savedvariants::names(), (QStringList{QStringLiteral("Softcap"), QStringLiteral("window 128")}));
        QCOMPARE(savedvariants::program(QStringLiteral("window 128")), window);
        QVERIFY(savedvariants::program(QStringLiteral("broken")).isEmpty());

        VariantEditor again;
        QCOMPARE(again.savedBox()->count(), 2);
        QCOMPARE(again.savedBox()->itemText(1), QStringLiteral("window 128"));
        emit again.savedBox()->textActivated(QStringLiteral("window 128"));
        QCOMPARE(again.program(), window);
        QCOMPARE(again.token(), QStringLiteral("expr:const W = 128; mask: k <= q && q - k < W"));
        // Keeping under an existing name replaces it; forgetting removes it.
        again.setProgram(QStringLiteral("mask: k <= q && q - k < 64"));
        QVERIFY(again.keep(QStringLiteral("window 128")));
        QCOMPARE(savedvariants::names().size(), 2);
        QCOMPARE(savedvariants::program(QStringLiteral("window 128")), QStringLiteral("mask: k <= q && q - k < 64"));
        QVERIFY(again.forget(QStringLiteral("Softcap")));
        QVERIFY(!again.forget(QStringLiteral("Softcap")));
        QCOMPARE(savedvariants::names(), QStringList{QStringLiteral("window 128")});
        QCOMPARE(again.savedBox()->count(), 1);
    }

    /// Export writes the program byte for byte (atomically: a failing path leaves nothing);
    /// import loads it and keeps it under the file's base name; bad files give errors naming them
    /// and keep nothing.
    void exportAndImportFiles() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString program = QStringLiteral("# prefix LM\nconst PREFIX = 64\nmask: k < PREFIX || k <= q\n");
        VariantEditor editor;
        editor.setProgram(program);
        const QString path = dir.filePath(QStringLiteral("prefix-lm.attnvar"));
        QCOMPARE(editor.exportFile(path), QString());
        QFile written(path);
        QVERIFY(written.open(QIODevice::ReadOnly));
        QCOMPARE(QString::fromUtf8(written.readAll()), program);

        const QString missingFolder = dir.filePath(QStringLiteral("no/such/folder/x.attnvar"));
        const QString err = editor.exportFile(missingFolder);
        QVERIFY2(err.contains(missingFolder) && err.contains(QStringLiteral("does not exist")), qPrintable(err));
        QVERIFY(!QFile::exists(missingFolder));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{QStringLiteral("prefix-lm.attnvar")});

        VariantEditor other;
        QCOMPARE(other.importFile(path), QString());
        QCOMPARE(other.program(), program);
        QCOMPARE(savedvariants::names(), QStringList{QStringLiteral("prefix-lm")});
        QCOMPARE(savedvariants::program(QStringLiteral("prefix-lm")), program);

        const QString absent = dir.filePath(QStringLiteral("absent.attnvar"));
        QVERIFY(other.importFile(absent).startsWith(absent + QStringLiteral(": cannot open")));
        const QString binary = dir.filePath(QStringLiteral("binary.attnvar"));
        {
            QFile f(binary);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(QByteArray("mask: k <= q \xff\xfe\n", 16));
        }
        QCOMPARE(other.importFile(binary), binary + QStringLiteral(": not UTF-8 text"));
        const QString broken = dir.filePath(QStringLiteral("broken.attnvar"));
        {
            QFile f(broken);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("mask: k <= qq\n");
        }
        const QString brokenErr = other.importFile(broken);
        QVERIFY2(brokenErr.startsWith(broken + QStringLiteral(": program:1:12: unknown name 'qq'")),
                 qPrintable(brokenErr));
        QCOMPARE(other.program(), QStringLiteral("mask: k <= qq\n"));                // shown for editing
        QCOMPARE(savedvariants::names(), QStringList{QStringLiteral("prefix-lm")});  // not kept
    }

    /// The profiler panel lists kept programs by name after the built-ins; a checked one goes into
    /// the request as its expr: token, and the list follows keep/forget in the panel's editor.
    void profilerPanelListsKeptPrograms() {
        savedvariants::store(QStringLiteral("sinks+window"), QStringLiteral("mask: k <= q && (k < 4 || q - k < 256)"));
        savedvariants::store(QStringLiteral("hand-edited"),
                             QStringLiteral("mask: k <="));  // does not parse: not listed
        ProfilerPanel panel;
        auto* list = panel.findChild<QListWidget*>();
        QVERIFY(list);
        const auto items = list->findItems(QStringLiteral("sinks+window"), Qt::MatchExactly);
        QCOMPARE(items.size(), 1);
        QVERIFY(list->findItems(QStringLiteral("hand-edited"), Qt::MatchExactly).isEmpty());
        const std::string token = "expr:mask: k <= q && (k < 4 || q - k < 256)";
        panel.setVariants({QStringLiteral("causal"), QString::fromStdString(token)});
        QCOMPARE(items.front()->checkState(), Qt::Checked);
        ProfileRequest req = panel.request();
        QCOMPARE(req.variants, (std::vector<std::string>{"causal", token}));

        panel.findChild<QPushButton*>(QStringLiteral("writeProgram"))->click();
        auto* editor = panel.findChild<VariantEditor*>();
        QVERIFY(editor);
        editor->setProgram(QStringLiteral("mask: k <= q && q - k < 32"));
        QVERIFY(editor->keep(QStringLiteral("narrow")));
        QCOMPARE(list->findItems(QStringLiteral("narrow"), Qt::MatchExactly).size(), 1);
        // The check of a listed program survives the refresh.
        QCOMPARE(list->findItems(QStringLiteral("sinks+window"), Qt::MatchExactly).front()->checkState(), Qt::Checked);
        QVERIFY(editor->forget(QStringLiteral("sinks+window")));
        QVERIFY(list->findItems(QStringLiteral("sinks+window"), Qt::MatchExactly).isEmpty());
        req = panel.request();
        QCOMPARE(req.variants, std::vector<std::string>{"causal"});
    }
};

QTEST_MAIN(TestVariantEditor)
#include "tst_varianteditor.moc"
