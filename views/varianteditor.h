#pragma once
// An editor for variant programs (docs/variants.md): parse errors underlined at their line and
// column as you type, a live preview of the mask over a T×T map, and Profile, which hands the
// program to the profiler as one "expr:" token. Programs are kept by name in the user's settings
// (savedvariants.h) and imported/exported as .attnvar text files.
#include <QImage>
#include <QWidget>

#include <memory>

class QComboBox;
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
    /// The saved programs, by name; choosing one loads it.
    QComboBox* savedBox() const { return m_saved; }

    /// Keeps the current program in the user's settings under `name` (replacing one of that name).
    /// Refused, with the reason in the status line, when the program does not parse or the name is
    /// empty.
    bool keep(const QString& name);
    /// Removes the saved program `name`.
    bool forget(const QString& name);
    /// Loads a .attnvar file into the editor and, when it parses, keeps it under the file's base
    /// name. Returns the error (naming the file), or an empty string.
    QString importFile(const QString& path);
    /// Writes the program to `path` atomically. Returns the error (naming the file), or empty.
    QString exportFile(const QString& path);
    /// The status line under the text (parse result or the last import/export/keep message).
    QString statusText() const;

signals:
    /// The program parsed (token non-empty) or stopped parsing (token empty).
    void programChanged(const QString& token);
    void profileRequested(const QString& token);
    /// A program was kept, replaced or forgotten in the user's settings.
    void savedChanged();

private:
    void reparse();
    void renderPreview();
    void importDialog();
    void exportDialog();
    void keepDialog();
    void refreshSaved(const QString& select = {});

    QPlainTextEdit* m_text = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_previewLabel = nullptr;
    QPushButton* m_profile = nullptr;
    QComboBox* m_saved = nullptr;
    QPushButton* m_forget = nullptr;
    std::shared_ptr<const attnscope::VariantExpr> m_expr;
    QString m_error;
    QImage m_image;
    qint64 m_tokens = 1024;
};
