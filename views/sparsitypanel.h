#pragma once
// Sparsity: density at gamma per head, recall and output error of the candidate masks, and the
// density-against-gamma plot of the current head. The gamma and block-size controls drive the
// map's coverage-block overlay.
#include <QWidget>

#include "figuresource.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QTableWidget;

namespace attnscope {

class AnalysisRunner;
class FigureWidget;
class TraceSession;

class SparsityPanel : public QWidget, public FigureSource {
    Q_OBJECT
public:
    SparsityPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);
    std::optional<Figure> currentFigure() const override;
    int rows() const;

private:
    void refreshTable();
    void refreshPlots();
    void pushOptions();

    TraceSession* m_session;
    QComboBox* m_gamma;
    QComboBox* m_block;
    QCheckBox* m_overlay;
    QLabel* m_summary;
    QTableWidget* m_table;
    FigureWidget* m_density;
    FigureWidget* m_recall;
};

}  // namespace attnscope
