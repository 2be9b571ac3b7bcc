#include "mappanel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>
#include <QVBoxLayout>

#include "attentionmapcanvas.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr double kZoomStep = 2.0;
/// Mask variants offered as overlays (block-list variants need the analysis, see the coverage overlay).
constexpr const char* kVariantOverlays[] = {"sliding:64", "sliding:256",   "sliding:1024",
                                            "prefix:256", "dilated:256:2", "document:4"};
}  // namespace

MapPanel::MapPanel(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    m_canvas = new AttentionMapCanvas(session, this);
    m_pooling = new QComboBox(this);
    m_pooling->addItems({tr("Mean pooling"), tr("Max pooling")});
    m_pooling->setToolTip(
        tr("How the probabilities of a cell's (query, key) pairs are combined when a "
           "pixel covers several tokens"));
    m_log = new QCheckBox(tr("Log scale"), this);
    m_excludeSinks = new QCheckBox(tr("Exclude sinks"), this);
    m_excludeSinks->setToolTip(
        tr("Mask the detected sink keys out of the softmax and renormalize "
           "(ACT with beta = 0). Run the analysis first to detect sinks."));
    m_mask = new QCheckBox(tr("Mask"), this);
    m_mask->setToolTip(tr("Shade the pairs the causal / window mask rules out"));
    m_sinks = new QCheckBox(tr("Sink columns"), this);
    m_variant = new QComboBox(this);
    m_variant->setToolTip(tr("Shade the pairs a sparse attention variant would skip"));
    m_variant->addItem(tr("No variant mask"), QString());
    for (const char* v : kVariantOverlays) m_variant->addItem(QString::fromLatin1(v), QString::fromLatin1(v));

    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 2);
    bar->addWidget(m_pooling);
    for (QCheckBox* c : {m_log, m_mask, m_sinks, m_excludeSinks}) bar->addWidget(c);
    bar->addWidget(m_variant);
    bar->addStretch();
    auto addButton = [&](const QString& text, const QString& tip, auto fn) {
        auto* b = new QToolButton(this);
        b->setText(text);
        b->setToolTip(tip);
        connect(b, &QToolButton::clicked, this, fn);
        bar->addWidget(b);
    };
    addButton(QStringLiteral("−"), tr("Zoom out"), [this] { m_canvas->zoomBy(1 / kZoomStep); });
    addButton(QStringLiteral("+"), tr("Zoom in"), [this] { m_canvas->zoomBy(kZoomStep); });
    addButton(tr("Fit"), tr("Whole sequence"), [this] { m_canvas->fitAll(); });

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(0);
    layout->addLayout(bar);
    layout->addWidget(m_canvas, 1);

    syncFromOptions();
    connect(session, &TraceSession::optionsChanged, this, &MapPanel::syncFromOptions);
    connect(m_pooling, &QComboBox::currentIndexChanged, this, &MapPanel::pushOptions);
    connect(m_variant, &QComboBox::currentIndexChanged, this, &MapPanel::pushOptions);
    for (QCheckBox* c : {m_log, m_mask, m_sinks, m_excludeSinks})
        connect(c, &QCheckBox::toggled, this, &MapPanel::pushOptions);
}

void MapPanel::syncFromOptions() {
    const ViewOptions& o = m_session->options();
    const QSignalBlocker b1(m_pooling), b2(m_log), b3(m_mask), b4(m_sinks), b5(m_excludeSinks), b6(m_variant);
    // A token not in the list (a user program from the variant editor) gets an item of its own.
    if (!o.variantOverlay.isEmpty() && m_variant->findData(o.variantOverlay) < 0) {
        QString name = o.variantOverlay;
        if (name.startsWith(QStringLiteral("expr:"))) name = tr("program: %1").arg(name.mid(5));
        m_variant->addItem(name, o.variantOverlay);
        m_variant->setItemData(m_variant->count() - 1, o.variantOverlay, Qt::ToolTipRole);
    }
    m_variant->setCurrentIndex(std::max(0, m_variant->findData(o.variantOverlay)));
    m_pooling->setCurrentIndex(o.maxPooling ? 1 : 0);
    m_log->setChecked(o.logScale);
    m_mask->setChecked(o.showCausal);
    m_sinks->setChecked(o.showSinks);
    m_excludeSinks->setChecked(o.excludeSinks);
}

void MapPanel::pushOptions() {
    ViewOptions o = m_session->options();
    o.maxPooling = m_pooling->currentIndex() == 1;
    o.logScale = m_log->isChecked();
    o.showCausal = m_mask->isChecked();
    o.showSinks = m_sinks->isChecked();
    o.excludeSinks = m_excludeSinks->isChecked();
    o.variantOverlay = m_variant->currentData().toString();
    m_session->setOptions(o);
}

std::optional<Figure> MapPanel::currentFigure() const {
    if (!m_canvas->hasOverview()) return std::nullopt;
    return Figure(m_canvas->figure());
}

}  // namespace attnscope
