// VariantEditor: parses on every edit (core's parseVariantExpr), underlines the error's position,
// renders the mask preview through variantAllows (the CPU evaluator the reference uses).
#include "varianteditor.h"

#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QLineEdit>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QTextBlock>
#include <QVBoxLayout>

#include "attnscope/trace.h"
#include "attnscope/variant_expr.h"
#include "attnscope/variants.h"
#include "savedvariants.h"

using namespace attnscope;

namespace {
constexpr const char* kOrigin = "program";
constexpr QRgb kAllowed = 0xff1f3a93;         // dark blue: computed pairs
constexpr QRgb kMasked = 0xfff4f4f4;          // near white: masked pairs
constexpr qint64 kMaxProgramBytes = 1 << 20;  // a program is a few lines; refuse anything larger
constexpr const char* kExample =
    "# A causal sliding window with 4 sink tokens\nconst WINDOW = 256\n"
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
    m_saved = new QComboBox(this);
    m_saved->setObjectName(QStringLiteral("savedPrograms"));
    m_saved->setPlaceholderText(tr("Saved programs"));
    m_saved->setToolTip(tr("Programs kept in your settings; choose one to load it"));
    m_saved->setMinimumContentsLength(16);
    auto* keepButton = new QPushButton(tr("Keep…"), this);
    keepButton->setToolTip(tr("Keep this program in your settings under a name"));
    m_forget = new QPushButton(tr("Forget"), this);
    m_forget->setToolTip(tr("Remove the chosen program from your settings"));
    auto* importButton = new QPushButton(tr("Import…"), this);
    importButton->setToolTip(tr("Open a .attnvar file and keep it under its file name"));
    auto* exportButton = new QPushButton(tr("Export…"), this);
    exportButton->setToolTip(tr("Write this program to a .attnvar file"));
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_saved, 1);
    buttons->addWidget(keepButton);
    buttons->addWidget(m_forget);
    buttons->addWidget(importButton);
    buttons->addWidget(exportButton);
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
    connect(keepButton, &QPushButton::clicked, this, &VariantEditor::keepDialog);
    connect(m_forget, &QPushButton::clicked, this, [this] {
        if (m_saved->currentIndex() >= 0) forget(m_saved->currentText());
    });
    connect(importButton, &QPushButton::clicked, this, &VariantEditor::importDialog);
    connect(exportButton, &QPushButton::clicked, this, &VariantEditor::exportDialog);
    connect(m_saved, &QComboBox::textActivated, this, [this](const QString& name) {
        const QString text = savedvariants::program(name);
        if (!text.isEmpty()) setProgram(text);
    });
    refreshSaved();
    setProgram(QString::fromUtf8(kExample));
}

QString VariantEditor::statusText() const { return m_status->text(); }

void VariantEditor::refreshSaved(const QString& select) {
    const QSignalBlocker block(m_saved);
    m_saved->clear();
    m_saved->addItems(savedvariants::names());
    m_saved->setCurrentIndex(select.isEmpty() ? -1 : m_saved->findText(select));
    m_forget->setEnabled(m_saved->count() > 0);
}

bool VariantEditor::keep(const QString& name) {
    const QString key = name.trimmed();
    if (key.isEmpty()) {
        m_status->setText(tr("Give the program a name to keep it"));
        return false;
    }
    if (!m_expr) {
        m_status->setText(tr("Not kept: %1").arg(m_error));
        return false;
    }
    savedvariants::store(key, program());
    refreshSaved(key);
    m_status->setText(tr("Kept as \u201c%1\u201d in your settings").arg(key));
    emit savedChanged();
    return true;
}

bool VariantEditor::forget(const QString& name) {
    if (!savedvariants::remove(name)) return false;
    refreshSaved();
    m_status->setText(tr("Forgot \u201c%1\u201d").arg(name));
    emit savedChanged();
    return true;
}

QString VariantEditor::importFile(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        m_status->setText(tr("%1: cannot open: %2").arg(path, f.errorString()));
        return m_status->text();
    }
    if (f.size() > kMaxProgramBytes) {
        m_status->setText(
            tr("%1: %2 bytes; a variant program is at most %3 bytes").arg(path).arg(f.size()).arg(kMaxProgramBytes));
        return m_status->text();
    }
    const QByteArray bytes = f.readAll();
    const QString text = QString::fromUtf8(bytes);
    if (text.toUtf8() != bytes) {
        m_status->setText(tr("%1: not UTF-8 text").arg(path));
        return m_status->text();
    }
    setProgram(text);
    if (!m_expr) {  // shown for editing, not kept
        m_status->setText(tr("%1: %2").arg(path, m_error));
        return m_status->text();
    }
    keep(QFileInfo(path).completeBaseName().remove(QStringLiteral(".attnvar")));
    return {};
}

QString VariantEditor::exportFile(const QString& path) {
    const Status st = writeFileAtomic(path.toStdString(), program().toStdString());
    m_status->setText(st ? tr("Wrote %1").arg(path) : QString::fromStdString(st.message()));
    return st ? QString() : m_status->text();
}

void VariantEditor::keepDialog() {
    bool ok = false;
    const QString name = QInputDialog::getText(this, tr("Keep the program"), tr("Name:"), QLineEdit::Normal,
                                               m_saved->currentText(), &ok);
    if (ok) keep(name);
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

void VariantEditor::importDialog() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Import a variant program"), QString(),
                                                      tr("Variant programs (*.attnvar);;All files (*)"));
    if (!path.isEmpty()) importFile(path);
}

void VariantEditor::exportDialog() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export the variant program"), QString(),
                                                      tr("Variant programs (*.attnvar)"));
    if (!path.isEmpty()) exportFile(path);
}
