#pragma once
// An editor for variant programs (docs/variants.md): parse errors underlined at their line and
// column as you type, a live preview of the mask over a T×T map, and Profile, which hands the
// program to the profiler as one "expr:" token.
#include <QImage>
#include <QWidget>

#include <memory>

class QLabel;
class QPlainTextEdit;
class QPushButton;

namespace attnscope {
struct VariantExpr;
}

class VariantEditor : public QWidget {
    Q_OBJECT
public:
    explicit VariantEditor(QWidget* parent = nullptr);

    void setProgram(const QString& text);
    QString program() const;
    /// Sequence length of the preview (the current trace's; default 1024).
    void setPreviewTokens(qint64 tokens);
    /// The program as one variant token ("expr:" + its statements on one line), or empty when it
    /// does not parse.
    QString token() const;
    /// The parse error ("program:LINE:COL: expected …"), or empty.
    QString errorText() const;
    /// Preview pixel (x, y): key x·T/size, query y·T/size; allowed pairs dark.
    const QImage& preview() const { return m_image; }
    static constexpr int kPreviewSize = 256;
    QPlainTextEdit* textEdit() const { return m_text; }
    QPushButton* profileButton() const { return m_profile; }

signals:
    /// The program parsed (token non-empty) or stopped parsing (token empty).
    void programChanged(const QString& token);
    void profileRequested(const QString& token);

private:
    void reparse();
    void renderPreview();
    void load();
    void save();

    QPlainTextEdit* m_text = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_previewLabel = nullptr;
    QPushButton* m_profile = nullptr;
    std::shared_ptr<const attnscope::VariantExpr> m_expr;
    QString m_error;
    QImage m_image;
    qint64 m_tokens = 1024;
};
