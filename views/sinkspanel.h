#pragma once
// Sinks: the per-head sink table (alpha_0, first-token and hidden sinks), the sink rate per layer
// and the alpha_k profile of the current head, from the analysis engine.
#include "headtable.h"

namespace attnscope {

class AnalysisRunner;

class SinksPanel : public HeadTablePanel {
    Q_OBJECT
public:
    SinksPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);

private:
    void clearTable() override;
    std::optional<QString> fillTable(const ModelAnalysis& model) override;
    Figure headFigure(const HeadAnalysis& head, const ModelAnalysis& model) const override;
    Figure traceFigure(const ModelAnalysis& model) const override;
};

}  // namespace attnscope
