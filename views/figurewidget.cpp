#include "figurewidget.h"

#include <QPainter>

#include "figure.h"
#include "figurepainter.h"

namespace attnscope {

namespace {
constexpr double kMinScreenTextPx = 10;  ///< the figure's smallest text (tick labels) on screen
constexpr double kMaxScale = 2.0;        ///< beyond this large widgets get more room, not bigger text
}  // namespace

FigureWidget::FigureWidget(QWidget* parent) : QWidget(parent) { setMinimumSize(200, 150); }

void FigureWidget::setFigure(std::optional<Figure> figure) {
    m_figure = std::move(figure);
    update();
}

void FigureWidget::setPlaceholder(const QString& text) {
    m_placeholder = text;
    update();
}

void FigureWidget::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    if (!m_figure) {
        p.fillRect(rect(), palette().color(QPalette::Base));
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect().adjusted(8, 8, -8, -8), Qt::AlignCenter | Qt::TextWordWrap, m_placeholder);
        return;
    }
    // The renderer draws dark ink on paper, like the exported figure, in light and dark themes.
    p.fillRect(rect(), Qt::white);
    const double s = scale();
    p.scale(s, s);
    renderFigure(p, QRectF(QPointF(0, 0), QSizeF(size()) / s), *m_figure);
}

double FigureWidget::scale() const {
    const double readable = kMinScreenTextPx / fig::kTickSize;
    if (!m_figure) return readable;
    const QSizeF page = preferredFigureSize(*m_figure);
    const double fit = std::min(width() / page.width(), height() / page.height());
    return std::clamp(fit, readable, std::max(readable, kMaxScale));
}

}  // namespace attnscope
