// VariantEditor: parses on every edit (core's parseVariantExpr), underlines the error's position,
// renders the mask preview through variantAllows (the CPU evaluator the reference uses).
#include "varianteditor.h"

#include <QFileDialog>
#include <QFile>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QTextBlock>
#include <QVBoxLayout>

#include "attnscope/variant_expr.h"
#include "attnscope/variants.h"

using namespace attnscope;

namespace {
constexpr const char* kOrigin = "program";
constexpr QRgb kAllowed = 0xff1f3a93;   // dark blue: computed pairs
constexpr QRgb kMasked = 0xfff4f4f4;    // near white: masked pairs
constexpr const char* kExample = "# A causal sliding window with 4 sink tokens\nconst WINDOW = 256\n"
                                 "mask: k <= q && (k < 4 || q - k < WINDOW)\n";
}  // namespace

VariantEditor::VariantEditor(QWidget* parent) : QWidget(parent) {
    m_text = new QPlainTextEdit(this);
    m_text->setTabChangesFocus(true);
    QFont mono(QStringLiteral("monospace"));
    mono.setStyleHint(QFont::TypeWriter);
    m_text->setFont(mono);
    m_text->setPlaceholderText(tr("mask: k <= q && q - k < 1024\nscore: 30.0 * tanh(s / 30.0)"));
    m_status = new QLabel(this);
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_previewLabel = new QLabel(this);
    m_previewLabel->setFixedSize(kPreviewSize, kPreviewSize);
    m_previewLabel->setToolTip(tr("The mask over the whole T×T map: query down, key across; dark = computed"));
    m_profile = new QPushButton(tr("Profile"), this);
    m_profile->setToolTip(tr("Add this program to the profiler's variants"));
    auto* load = new QPushButton(tr("Open…"), this);
    auto* save = new QPushButton(tr("Save…"), this);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(load);
    buttons->addWidget(save);
    buttons->addStretch();
    buttons->addWidget(m_profile);
    auto* top = new QHBoxLayout;
    top->addWidget(m_text, 1);
    top->addWidget(m_previewLabel, 0, Qt::AlignTop);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top, 1);
    layout->addWidget(m_status);
    layout->addLayout(buttons);
    connect(m_text, &QPlainTextEdit::textChanged, this, &VariantEditor::reparse);
    connect(m_profile, &QPushButton::clicked, this, [this] {
        if (!token().isEmpty()) emit profileRequested(token());
    });
    connect(load, &QPushButton::clicked, this, &VariantEditor::load);
    connect(save, &QPushButton::clicked, this, &VariantEditor::save);
    setProgram(QString::fromUtf8(kExample));
}

void VariantEditor::setProgram(const QString& text) { m_text->setPlainText(text); }

QString VariantEditor::program() const { return m_text->toPlainText(); }

void VariantEditor::setPreviewTokens(qint64 tokens) {
    m_tokens = std::max<qint64>(1, tokens);
    renderPreview();
}

QString VariantEditor::token() const {
    return m_expr ? QStringLiteral("expr:") + QString::fromStdString(m_expr->canonical) : QString();
}

QString VariantEditor::errorText() const { return m_error; }

void VariantEditor::reparse() {
    auto parsed = parseVariantExpr(m_text->toPlainText().toStdString(), kOrigin);
    QList<QTextEdit::ExtraSelection> marks;
    if (parsed) {
        m_expr = *parsed;
        m_error.clear();
        m_status->setText(tr("OK: %1").arg(QString::fromStdString(m_expr->canonical)));
        m_status->setStyleSheet(QString());
    } else {
        m_expr.reset();
        m_error = QString::fromStdString(parsed.message());
        m_status->setText(m_error);
        m_status->setStyleSheet(QStringLiteral("color: #b00020"));
        // "program:LINE:COL: …": a wavy underline from the column to the end of its token.
        static const QRegularExpression where(QStringLiteral("^[^:]*:(\\d+):(\\d+): "));
        const auto m = where.match(m_error);
        if (m.hasMatch()) {
            const QTextBlock block = m_text->document()->findBlockByNumber(m.captured(1).toInt() - 1);
            if (block.isValid()) {
                QTextCursor cursor(block);
                const int column = std::min(m.captured(2).toInt() - 1, int(block.length()) - 1);
                cursor.setPosition(block.position() + std::max(0, column));
                if (!cursor.movePosition(QTextCursor::EndOfWord, QTextCursor::KeepAnchor) || !cursor.hasSelection())
                    cursor.movePosition(QTextCursor::NextCharacter, QTextCursor::KeepAnchor);
                if (!cursor.hasSelection()) {  // at the end of the text: mark the last character
                    cursor.movePosition(QTextCursor::PreviousCharacter, QTextCursor::KeepAnchor);
                }
                QTextEdit::ExtraSelection mark;
                mark.cursor = cursor;
                mark.format.setUnderlineStyle(QTextCharFormat::SpellCheckUnderline);
                mark.format.setUnderlineColor(Qt::red);
                marks.append(mark);
            }
        }
    }
    m_text->setExtraSelections(marks);
    m_profile->setEnabled(m_expr != nullptr);
    renderPreview();
    emit programChanged(token());
}

void VariantEditor::renderPreview() {
    m_image = QImage(kPreviewSize, kPreviewSize, QImage::Format_RGB32);
    m_image.fill(QColor(0xcc, 0xcc, 0xcc));  // grey: no valid program
    if (m_expr) {
        VariantSpec v;
        v.kind = VariantKind::Custom;
        v.expr = m_expr;
        v.label = m_expr->canonical;
        if (m_expr->documents > 0) v.documents = m_expr->documents;
        const qint64 T = m_tokens;
        for (int y = 0; y < kPreviewSize; ++y) {
            const qint64 q = qint64(y) * T / kPreviewSize;
            auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(y));
            for (int x = 0; x < kPreviewSize; ++x) {
                const qint64 k = qint64(x) * T / kPreviewSize;
                line[x] = variantAllows(v, T, q, k) ? kAllowed : kMasked;
            }
        }
    }
    m_previewLabel->setPixmap(QPixmap::fromImage(m_image));
}

void VariantEditor::load() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open a variant program"), QString(),
                                                      tr("Variant programs (*.attnvar);;All files (*)"));
    if (path.isEmpty()) return;
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        m_status->setText(tr("%1: cannot open it for reading").arg(path));
        return;
    }
    setProgram(QString::fromUtf8(f.readAll()));
}

void VariantEditor::save() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save the variant program"), QString(),
                                                      tr("Variant programs (*.attnvar)"));
    if (path.isEmpty()) return;
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(program().toUtf8()) < 0)
        m_status->setText(tr("%1: cannot write it").arg(path));
}
