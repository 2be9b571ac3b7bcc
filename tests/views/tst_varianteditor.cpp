// VariantEditor: a parse error is underlined at its line and column with the message shown and
// Profile disabled; a valid program gives its expr: token, a preview equal to variantAllows pair
// by pair, and Profile hands the token on.
#include <QtTest>

#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QTextBlock>

#include "attnscope/variant_expr.h"
#include "attnscope/variants.h"
#include "profilerpanel.h"
#include "varianteditor.h"

using namespace attnscope;

class TestVariantEditor : public QObject {
    Q_OBJECT

private slots:
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
        QCOMPARE(c.block().blockNumber(), 1);               // line 2
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
};

QTEST_MAIN(TestVariantEditor)
#include "tst_varianteditor.moc"
