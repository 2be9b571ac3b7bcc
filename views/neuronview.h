#pragma once
// Neuron view for one (query, key) pair of the current head: q, k and q ⊙ k per dimension with
// their sum, the scaled score and the softmax probability. Works for any architecture because it
// reads the captured Q/K. Drawn by the figure renderer (axes with dimension numbers), as exported.
#include <QWidget>

#include <vector>

#include "attnscope/status.h"
#include "figuresource.h"

class QLabel;
class QSpinBox;

namespace attnscope {

class FigureWidget;
class TraceSession;

struct NeuronData {
    int layer = -1, head = -1;
    int64_t query = -1, key = -1;
    std::vector<float> q, k;
    double scale = 1;
    double probability = 0;
};

class NeuronView : public QWidget, public FigureSource {
    Q_OBJECT
public:
    explicit NeuronView(TraceSession* session, QWidget* parent = nullptr);
    std::optional<Figure> currentFigure() const override;
    bool hasData() const { return m_data.head >= 0; }
    const NeuronData& data() const { return m_data; }

private:
    void request();
    void showNeuron(Result<NeuronData> r);

    TraceSession* m_session;
    QSpinBox* m_query;
    QSpinBox* m_key;
    QLabel* m_summary;
    FigureWidget* m_plot;
    NeuronData m_data;
};

}  // namespace attnscope
