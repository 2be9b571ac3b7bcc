#include "headgrid.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QScrollArea>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

#include "analysisrunner.h"
#include "headgridcanvas.h"

namespace attnscope {

std::optional<double> headMetric(const AnalysisRunner& analysis, HeadId id, HeadMetric metric, double gamma,
                                 int blockSize, QString* text)
{
    const HeadAnalysis* h = analysis.head(id.layer, id.head);
    if (!h || metric == HeadMetric::None)
        return std::nullopt;
    double value = 0;
    QString label;
    switch (metric) {
    case HeadMetric::None:
        return std::nullopt;
    case HeadMetric::Entropy:
        value = h->stats.entropyNormalized;
        label = QStringLiteral("H=%1").arg(h->stats.entropyNormalized, 0, 'f', 2);
        break;
    case HeadMetric::SinkScore: {
        const float top = h->sinks.alpha.empty() ? 0.f : *std::max_element(h->sinks.alpha.begin(), h->sinks.alpha.end());
        value = double(top);
        label = QStringLiteral("α=%1").arg(double(top), 0, 'f', 2);
        break;
    }
    case HeadMetric::Density: {
        const GammaCoverage* c = h->coverage(blockSize, gamma);
        if (!c)
            return std::nullopt;
        value = c->density;
        label = QStringLiteral("%1%").arg(c->density * 100, 0, 'f', 0);
        break;
    }
    case HeadMetric::RoleScore: {
        const RoleScores& r = h->roles;
        value = std::max({r.previousToken, r.nextToken, r.inductionMatched, r.duplicateMatched, r.localMass,
                          r.verticalScore, r.slashScore});
        label = QString::fromStdString(h->role.label);
        break;
    }
    case HeadMetric::JsCluster: {
        // Position in the average-linkage leaf order: heads that cluster together get near colours.
        const HeadSimilarity* s = analysis.similarity(id.layer);
        if (!s || s->order.empty())
            return std::nullopt;
        const auto it = std::find(s->order.begin(), s->order.end(), id.head);
        const int rank = int(it - s->order.begin());
        value = s->order.size() > 1 ? double(rank) / double(s->order.size() - 1) : 0.0;
        label = QStringLiteral("#%1").arg(rank);
        break;
    }
    }
    if (text)
        *text = label;
    return std::clamp(value, 0.0, 1.0);
}

HeadGrid::HeadGrid(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : QWidget(parent), m_session(session)
{
    m_metric = new QComboBox(this);
    m_metric->addItems({tr("No metric"), tr("Entropy (normalized)"), tr("Sink score (max α)"), tr("Density at γ"),
                        tr("Role score"), tr("JS cluster order")});
    m_metric->setToolTip(tr("Frame colour of each head; run Analysis ▸ Run Analysis first"));
    m_canvas = new HeadGridCanvas(session, analysis, this);
    auto* scroll = new QScrollArea(this);
    scroll->setWidget(m_canvas);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto* top = new QHBoxLayout;
    top->addWidget(new QLabel(tr("Colour by"), this));
    top->addWidget(m_metric, 1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->addLayout(top);
    layout->addWidget(scroll, 1);
    connect(m_metric, &QComboBox::currentIndexChanged, this, [this](int i) {
        m_canvas->metric = HeadMetric(i);
        m_canvas->update();
    });
}

HeadMetric HeadGrid::metric() const
{
    return m_canvas->metric;
}

void HeadGrid::setMetric(HeadMetric metric)
{
    m_metric->setCurrentIndex(int(metric));
}

int HeadGrid::thumbnailsReady() const
{
    return m_canvas->thumbnailsReady();
}

void HeadGrid::clickHead(HeadId head, bool shift)
{
    m_canvas->click(head, shift);
}

}  // namespace attnscope
