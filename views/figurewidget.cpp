#include "figurewidget.h"

#include <QPainter>

#include "figure.h"

namespace attnscope {

FigureWidget::FigureWidget(QWidget* parent) : QWidget(parent)
{
    setMinimumSize(200, 150);
}

void FigureWidget::setFigure(std::optional<Figure> figure)
{
    m_figure = std::move(figure);
    update();
}

void FigureWidget::setPlaceholder(const QString& text)
{
    m_placeholder = text;
    update();
}

void FigureWidget::paintEvent(QPaintEvent*)
{
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
    renderFigure(p, QRectF(rect()), *m_figure);
}

}  // namespace attnscope
