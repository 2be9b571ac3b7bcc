#pragma once
// Sparsity: density at gamma per head, recall and output error of the candidate masks, and the
// density-against-gamma plot of the current head. The gamma and block-size controls drive the
// map's coverage-block overlay.
#include "headtable.h"

class QCheckBox;
class QComboBox;

namespace attnscope {

class AnalysisRunner;

class SparsityPanel : public HeadTablePanel {
    Q_OBJECT
public:
    SparsityPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);

private:
    std::optional<QString> fillTable(const ModelAnalysis& model) override;
    Figure headFigure(const HeadAnalysis& head, const ModelAnalysis& model) const override;
    Figure traceFigure(const ModelAnalysis& model) const override;
    void pushOptions();

    QComboBox* m_gamma;
    QComboBox* m_block;
    QCheckBox* m_overlay;
};

}  // namespace attnscope
