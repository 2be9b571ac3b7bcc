#include "headgrid.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QScrollArea>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "analysisrunner.h"
#include "computeservice.h"
#include "headgridcanvas.h"

namespace attnscope {

namespace {
constexpr int kProgressSteps = 1000;
constexpr int kProgressHeight = 6;

/// Cell abbreviations of the role labels (core's classifyHead names them), with what they mean.
struct RoleName {
    const char* shortName;
    const char* meaning;
};
const std::map<std::string, RoleName>& roleNames() {
    static const std::map<std::string, RoleName> names = {
        {"induction", {"ind", "induction"}},
        {"duplicate-token", {"dup", "duplicate token"}},
        {"previous-token", {"prev", "previous token"}},
        {"next-token", {"next", "next token"}},
        {"document", {"doc", "document"}},
        {"local", {"local", "local band"}},
        {"sink", {"sink", "first-token sink"}},
        {"hidden-sink", {"hsink", "hidden sink"}},
        {"vertical", {"vert", "vertical"}},
        {"slash", {"slash", "slash (diagonals)"}},
        {"broad", {"broad", "broad"}},
        {"mixed", {"mix", "mixed"}},
    };
    return names;
}
}  // namespace

QString roleAbbreviation(const std::string& label) {
    const auto it = roleNames().find(label);
    return it != roleNames().end() ? QString::fromLatin1(it->second.shortName) : QString::fromStdString(label);
}

std::optional<double> headMetric(const AnalysisRunner& analysis, HeadId id, HeadMetric metric, double gamma,
                                 int blockSize, QString* text) {
    const HeadAnalysis* h = analysis.head(id.layer, id.head);
    if (!h || metric == HeadMetric::None) return std::nullopt;
    double value = 0;
    QString label;
    switch (metric) {
    case HeadMetric::None: return std::nullopt;
    case HeadMetric::Entropy:
        value = h->stats.entropyNormalized;
        label = QStringLiteral("H=%1").arg(h->stats.entropyNormalized, 0, 'f', 2);
        break;
    case HeadMetric::SinkScore: {
        const float top =
            h->sinks.alpha.empty() ? 0.f : *std::max_element(h->sinks.alpha.begin(), h->sinks.alpha.end());
        value = double(top);
        label = QStringLiteral("α=%1").arg(double(top), 0, 'f', 2);
        break;
    }
    case HeadMetric::Density: {
        const GammaCoverage* c = h->coverage(blockSize, gamma);
        if (!c) return std::nullopt;
        value = c->density;
        label = QStringLiteral("%1%").arg(c->density * 100, 0, 'f', 0);
        break;
    }
    case HeadMetric::RoleScore: {
        const RoleScores& r = h->roles;
        value = std::max({r.previousToken, r.nextToken, r.inductionMatched, r.duplicateMatched, r.localMass,
                          r.verticalScore, r.slashScore});
        label = roleAbbreviation(h->role.label);
        break;
    }
    case HeadMetric::JsCluster: {
        // Position in the average-linkage leaf order: heads that cluster together get near colours.
        const HeadSimilarity* s = analysis.similarity(id.layer);
        if (!s || s->order.empty()) return std::nullopt;
        const auto it = std::find(s->order.begin(), s->order.end(), id.head);
        const int rank = int(it - s->order.begin());
        value = s->order.size() > 1 ? double(rank) / double(s->order.size() - 1) : 0.0;
        label = QStringLiteral("#%1").arg(rank);
        break;
    }
    }
    if (text) *text = label;
    return std::clamp(value, 0.0, 1.0);
}

HeadGrid::HeadGrid(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : QWidget(parent), m_session(session), m_analysis(analysis) {
    m_metric = new QComboBox(this);
    m_metric->addItems({tr("No metric"), tr("Entropy (normalized)"), tr("Sink score (max α)"), tr("Density at γ"),
                        tr("Role score"), tr("JS cluster order")});
    m_metric->setToolTip(tr("Frame colour of each head, from the analysis"));
    m_status = new QLabel(this);
    m_status->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);  // never widens the dock
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, kProgressSteps);
    m_progress->setTextVisible(false);
    m_progress->setFixedHeight(kProgressHeight);
    m_action = new QToolButton(this);
    m_canvas = new HeadGridCanvas(session, analysis, this);
    m_canvas->metric = HeadMetric::RoleScore;  // the analysis runs by itself: open on the roles
    m_metric->setCurrentIndex(int(m_canvas->metric));
    m_legend = new QLabel(this);
    m_legend->setWordWrap(true);
    QFont small = m_legend->font();
    small.setPointSizeF(small.pointSizeF() * 0.85);
    m_legend->setFont(small);
    m_legend->setForegroundRole(QPalette::PlaceholderText);
    auto* scroll = new QScrollArea(this);
    scroll->setWidget(m_canvas);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto* top = new QHBoxLayout;
    top->addWidget(new QLabel(tr("Colour by"), this));
    top->addWidget(m_metric, 1);
    auto* status = new QHBoxLayout;
    status->addWidget(m_status, 1);
    status->addWidget(m_action);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->addLayout(top);
    layout->addLayout(status);
    layout->addWidget(m_progress);
    layout->addWidget(scroll, 1);
    layout->addWidget(m_legend);
    connect(m_metric, &QComboBox::currentIndexChanged, this, [this](int i) {
        m_canvas->metric = HeadMetric(i);
        m_canvas->update();
        updateLegend();
    });
    connect(m_action, &QToolButton::clicked, this, [this] {
        if (m_analysis->isRunning())
            m_analysis->cancel();
        else
            m_analysis->run();
    });
    for (auto signal :
         {&AnalysisRunner::analysisStarted, &AnalysisRunner::analysisFinished, &AnalysisRunner::analysisCancelled})
        connect(analysis, signal, this, &HeadGrid::updateAnalysisStatus);
    connect(analysis, &AnalysisRunner::layerFinished, this, [this] {
        updateAnalysisStatus();
        updateLegend();
    });
    connect(analysis, &AnalysisRunner::analysisFinished, this, &HeadGrid::updateLegend);
    connect(analysis, &AnalysisRunner::progressChanged, this, &HeadGrid::updateAnalysisStatus);
    connect(analysis, &AnalysisRunner::analysisFailed, this, [this](const QString& message) {
        updateAnalysisStatus();
        m_status->setText(tr("Analysis failed (hover for why)"));
        m_status->setToolTip(message);
    });
    connect(session, &TraceSession::traceOpened, this, &HeadGrid::updateAnalysisStatus);
    connect(session, &TraceSession::traceClosed, this, &HeadGrid::updateAnalysisStatus);
    updateAnalysisStatus();
    updateLegend();
}

void HeadGrid::updateAnalysisStatus() {
    const bool open = m_session->isOpen();
    const bool running = m_analysis->isRunning();
    const bool done = bool(m_analysis->result());
    const int layers = m_analysis->layersDone(), total = m_analysis->layersTotal();
    m_progress->setVisible(open && running);
    m_action->setVisible(open && !done);
    m_status->setVisible(open && !done);
    m_action->setText(running ? tr("Cancel") : tr("Run"));
    m_action->setToolTip(running ? tr("Stop the analysis (Analysis ▸ Cancel); the layers done so far stay")
                                 : tr("Analyse every head: sinks, sparsity, roles (Analysis ▸ Run Analysis, Ctrl+R)"));
    m_progress->setValue(int(m_analysis->progress() * kProgressSteps));
    if (running)
        m_status->setText(
            tr("Analysing: %1 of %2 layers · %3%").arg(layers).arg(total).arg(int(m_analysis->progress() * 100)));
    else if (layers > 0 && !done)
        m_status->setText(tr("Analysis stopped after %1 of %2 layers").arg(layers).arg(total));
    else
        m_status->setText(tr("Analysis not run"));
    m_status->setToolTip(running ? tr("Runs in the background (%1); the map stays interactive. Layers colour in "
                                      "as they finish.")
                                       .arg(m_session->compute()->gpuAvailable() ? tr("on the GPU") : tr("on the CPU"))
                                 : QString());
    m_canvas->update();
}

void HeadGrid::updateLegend() {
    // Only the roles the grid shows, so the line stays short.
    std::set<std::string> shown;
    if (m_canvas->metric == HeadMetric::RoleScore && m_session->isOpen())
        for (int l = 0; l < m_session->trace()->numLayers(); ++l)
            for (int h = 0; h < m_session->trace()->config(l).heads; ++h)
                if (const HeadAnalysis* a = m_analysis->head(l, h)) shown.insert(a->role.label);
    QStringList parts;
    for (const std::string& label : shown) {
        const auto it = roleNames().find(label);
        if (it != roleNames().end() &&
            QString::fromLatin1(it->second.shortName) != QString::fromLatin1(it->second.meaning))
            parts << QStringLiteral("%1 = %2").arg(QString::fromLatin1(it->second.shortName), tr(it->second.meaning));
    }
    m_legend->setText(parts.join(QStringLiteral(" · ")));
    m_legend->setVisible(!parts.isEmpty());
}

QString HeadGrid::analysisStatus() const { return m_status->isHidden() ? QString() : m_status->text(); }

HeadMetric HeadGrid::metric() const { return m_canvas->metric; }

void HeadGrid::setMetric(HeadMetric metric) { m_metric->setCurrentIndex(int(metric)); }

int HeadGrid::thumbnailsReady() const { return m_canvas->thumbnailsReady(); }

void HeadGrid::clickHead(HeadId head, bool shift) { m_canvas->click(head, shift); }

}  // namespace attnscope
