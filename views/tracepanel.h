#pragma once
// The trace panel: model, source, input text, the layers with their attention settings, and the
// validation warnings (NaN/Inf counts included).
#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QTableWidget;
class QListWidget;

namespace attnscope {

class TraceSession;

class TracePanel : public QWidget {
    Q_OBJECT
public:
    explicit TracePanel(TraceSession* session, QWidget* parent = nullptr);

private:
    void refresh();

    TraceSession* m_session;
    QLabel* m_summary;
    QPlainTextEdit* m_text;
    QTableWidget* m_layers;
    QListWidget* m_warnings;
    QLabel* m_validation;  ///< "Validation", or "Validation: no warnings" when the list is hidden
};

}  // namespace attnscope
