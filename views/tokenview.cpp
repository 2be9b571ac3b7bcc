#include "tokenview.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

#include "computeservice.h"
#include "figurepainter.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kMaxWindow = 256;
constexpr double kMaxRowHeight = 22;
constexpr double kMinColumnWidth = 80;
constexpr double kMinGap = 160, kMaxGap = 420;  ///< room for the lines between the two columns
constexpr double kLineMaxWidth = 3.0;
constexpr double kLineMinWidth = 1.0;  ///< thinner antialiased lines fade to nothing
constexpr int kMaxDefaultHeads = 4;
const QString kTagPrefix = QStringLiteral("head:tokens:");
}  // namespace

TokenView::TokenView(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    m_layer = new QSpinBox(this);
    m_start = new QSpinBox(this);
    m_start->setToolTip(tr("First token of the window"));
    m_window = new QSpinBox(this);
    m_window->setRange(2, kMaxWindow);
    m_window->setValue(kDefaultWindow);
    m_minWeight = new QDoubleSpinBox(this);
    m_minWeight->setRange(0.0, 1.0);
    m_minWeight->setSingleStep(0.01);
    m_minWeight->setValue(0.01);
    m_minWeight->setToolTip(tr("Lines below this weight are hidden"));
    m_canvas = new TokenLinesCanvas(this);
    m_headBoxes = new QHBoxLayout;

    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Layer"), this));
    bar->addWidget(m_layer);
    bar->addWidget(new QLabel(tr("Window from"), this));
    bar->addWidget(m_start);
    bar->addWidget(new QLabel(tr("tokens"), this));
    bar->addWidget(m_window);
    bar->addWidget(new QLabel(tr("Min weight"), this));
    bar->addWidget(m_minWeight);
    bar->addStretch();
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(bar);
    layout->addLayout(m_headBoxes);
    layout->addWidget(m_canvas, 1);

    m_headBoxes->addStretch();
    connect(session, &TraceSession::traceOpened, this, [this] {
        const QSignalBlocker b1(m_layer), b2(m_start);
        m_layer->setRange(0, m_session->trace()->numLayers() - 1);
        m_layer->setValue(m_session->current().layer);
        m_start->setRange(0, int(std::max<int64_t>(0, m_session->trace()->tokens() - 2)));
        m_start->setValue(0);
        rebuildHeadBoxes();
        request();
    });
    connect(session, &TraceSession::currentChanged, this, [this](HeadId h) {
        if (h.layer != m_layer->value()) m_layer->setValue(h.layer);
    });
    connect(session, &TraceSession::inspected, this, [this](qint64 query, qint64) {
        // Bring the inspected query into the window.
        if (query < m_start->value() || query >= m_start->value() + m_window->value())
            m_start->setValue(int(std::max<qint64>(0, query - m_window->value() / 2)));
    });
    connect(session, &TraceSession::optionsChanged, this, &TokenView::request);
    connect(m_layer, &QSpinBox::valueChanged, this, [this] {
        rebuildHeadBoxes();
        request();
    });
    connect(m_start, &QSpinBox::valueChanged, this, &TokenView::request);
    connect(m_window, &QSpinBox::valueChanged, this, &TokenView::request);
    connect(m_minWeight, &QDoubleSpinBox::valueChanged, this, [this](double v) {
        m_canvas->minWeight = float(v);
        m_canvas->update();
    });
}

void TokenView::rebuildHeadBoxes() {
    for (QCheckBox* box : m_heads) delete box;
    m_heads.clear();
    if (!m_session->isOpen()) return;
    const int heads = m_session->trace()->config(m_layer->value()).heads;
    for (int h = 0; h < heads; ++h) {
        auto* box = new QCheckBox(QStringLiteral("H%1").arg(h), this);
        QPalette pal = box->palette();
        pal.setColor(QPalette::WindowText, fig::readableOn(fig::seriesColor(h), pal.color(QPalette::Window)));
        box->setPalette(pal);
        // The selected head and the first others, so the view opens on what the map shows.
        box->setChecked(h == m_session->current().head || h < kMaxDefaultHeads - 1);
        connect(box, &QCheckBox::toggled, this, &TokenView::request);
        m_headBoxes->insertWidget(m_headBoxes->count() - 1, box);  // before the stretch
        m_heads.push_back(box);
    }
}

void TokenView::request() {
    m_canvas->weights.clear();
    m_canvas->update();
    if (!m_session->isOpen()) return;
    const Trace& t = *m_session->trace();
    const int64_t w0 = std::min<int64_t>(m_start->value(), std::max<int64_t>(0, t.tokens() - 1));
    const int64_t w1 = std::min<int64_t>(t.tokens(), w0 + m_window->value());
    m_canvas->offset = w0;
    m_canvas->tokens.clear();
    for (int64_t i = w0; i < w1; ++i)
        m_canvas->tokens << (size_t(i) < t.metadata().tokens.size()
                                 ? QString::fromStdString(t.metadata().tokens[size_t(i)])
                                 : QString::number(i));
    std::shared_ptr<HeadCache> cache = m_session->cache();  // owned by the job too
    auto trace = m_session->trace();
    for (int h = 0; h < int(m_heads.size()); ++h) {
        if (!m_heads[size_t(h)]->isChecked()) continue;
        MapRequest r;
        r.layer = m_layer->value();
        r.head = h;
        r.rect = {w0, w1, w0, w1};
        r.width = r.height = int(w1 - w0);
        r.excludedKeys = m_session->excludedKeys({r.layer, h});
        m_session->compute()->submitCpu(
            kTagPrefix + QString::number(h),
            [cache, trace, r](const CancelToken& c) { return computeMap(*cache, r, c); }, this,
            [this](Result<MapResult> m) {
                if (m)  // a failed head is left out of the view
                    showWeights(*m);
            });
    }
}

void TokenView::showWeights(const MapResult& r) {
    if (r.request.layer != m_layer->value() || r.request.rect.q0 != m_canvas->offset)
        return;                                      // a window or layer no longer shown
    m_canvas->weights[r.request.head] = r.map.mean;  // one token per cell: exact probabilities
    m_canvas->update();
}

int TokenView::headsReady() const { return int(m_canvas->weights.size()); }

std::optional<Figure> TokenView::currentFigure() const {
    if (m_canvas->weights.empty()) return std::nullopt;
    return Figure(m_canvas->figure(tr("Layer %1 head view").arg(m_layer->value())));
}

TokenFigure TokenLinesCanvas::figure(const QString& title) const {
    TokenFigure f;
    f.title = title;
    f.subtitle = QObject::tr("tokens %1–%2").arg(offset).arg(offset + tokens.size() - 1);
    f.queryTokens = f.keyTokens = tokens;
    f.queryOffset = f.keyOffset = offset;
    for (const auto& [head, w] : weights) f.heads.push_back({QStringLiteral("H%1").arg(head), w});
    f.focusQuery = focusQuery;
    f.minWeight = minWeight;
    return f;
}

double TokenLinesCanvas::rowHeight() const {
    return tokens.isEmpty() ? kMaxRowHeight : std::min(kMaxRowHeight, (height() - 8.0) / tokens.size());
}

double TokenLinesCanvas::columnWidth() const { return std::max(kMinColumnWidth, width() * 0.15); }

double TokenLinesCanvas::gap() const { return std::clamp(width() * 0.3, kMinGap, kMaxGap); }

double TokenLinesCanvas::gapLeft() const { return (width() - gap()) / 2; }

double TokenLinesCanvas::gapRight() const { return (width() + gap()) / 2; }

void TokenLinesCanvas::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    p.setRenderHint(QPainter::Antialiasing);
    const double rh = rowHeight(), cw = columnWidth();
    const double xl = gapLeft(), xr = gapRight();
    const int n = int(tokens.size());
    for (const auto& [head, w] : weights) {
        QColor c = fig::readableOn(fig::seriesColor(head), palette().color(QPalette::Base));
        for (int i = 0; i < n; ++i) {
            if (focusQuery >= 0 && i != focusQuery) continue;
            for (int j = 0; j < n; ++j) {
                if (focusKey >= 0 && j != focusKey) continue;
                const float a = size_t(i * n + j) < w.size() ? w[size_t(i * n + j)] : 0.f;
                if (a < minWeight) continue;
                c.setAlphaF(fig::tokenLineOpacity(a));
                p.setPen(QPen(c, std::clamp(kLineMaxWidth * std::sqrt(double(a)), kLineMinWidth, kLineMaxWidth)));
                p.drawLine(QPointF(xl + 4, 4 + (i + 0.5) * rh), QPointF(xr - 4, 4 + (j + 0.5) * rh));
            }
        }
    }
    QFont f = font();
    f.setPixelSize(int(std::clamp(rh - 4, 7.0, 13.0)));
    p.setFont(f);
    for (int i = 0; i < n; ++i) {
        const QRectF left(xl - cw + 4, 4 + i * rh, cw - 8, rh), right(xr + 4, 4 + i * rh, cw - 8, rh);
        const QString label = QString(tokens[i]).replace(QLatin1Char('\n'), QStringLiteral("⏎"));
        p.setPen(palette().color(QPalette::Text));
        if (i == focusQuery) p.fillRect(left, palette().color(QPalette::Highlight).lighter(150));
        if (i == focusKey) p.fillRect(right, palette().color(QPalette::Highlight).lighter(150));
        p.drawText(left, Qt::AlignRight | Qt::AlignVCenter, label);
        p.drawText(right, Qt::AlignLeft | Qt::AlignVCenter, label);
    }
    if (weights.empty() && n > 0) {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignCenter, tr("computing…"));
    }
}

void TokenLinesCanvas::mouseMoveEvent(QMouseEvent* e) {
    const double rh = rowHeight();
    const int row = int((e->position().y() - 4) / rh);
    const bool valid = row >= 0 && row < tokens.size();
    focusQuery = valid && e->position().x() < gapLeft() ? row : -1;
    focusKey = valid && e->position().x() > gapRight() ? row : -1;
    update();
}

void TokenLinesCanvas::leaveEvent(QEvent*) {
    focusQuery = focusKey = -1;
    update();
}

}  // namespace attnscope
