#pragma once
// Sinks: the per-head sink table (alpha_0, first-token and hidden sinks), the sink rate per layer
// and the alpha_k profile of the current head, from the analysis engine.
#include <QWidget>

#include "figuresource.h"

class QLabel;
class QTableWidget;

namespace attnscope {

class AnalysisRunner;
class FigureWidget;
class TraceSession;

class SinksPanel : public QWidget, public FigureSource {
    Q_OBJECT
public:
    SinksPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);
    std::optional<Figure> currentFigure() const override;
    int rows() const;

private:
    void refreshTable();
    void refreshPlots();

    TraceSession* m_session;
    AnalysisRunner* m_analysis;
    QLabel* m_summary;
    QTableWidget* m_table;
    FigureWidget* m_alpha;
    FigureWidget* m_rate;
};

}  // namespace attnscope
