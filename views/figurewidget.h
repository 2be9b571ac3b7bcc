#pragma once
// Shows a figure model on screen with the publication renderer, so plots on screen and exported
// files are drawn by the same code.
#include <QWidget>

#include <optional>

#include "figuremodel.h"

namespace attnscope {

class FigureWidget : public QWidget {
    Q_OBJECT
public:
    explicit FigureWidget(QWidget* parent = nullptr);
    void setFigure(std::optional<Figure> figure);
    const std::optional<Figure>& figure() const { return m_figure; }
    void setPlaceholder(const QString& text);
    /// The factor the figure is drawn at: the publication renderer lays it out for a page of its
    /// preferred size in points, which on screen would give 7-pixel tick labels. It grows with the
    /// widget and never drops below the one that makes the smallest text readable.
    double scale() const;

protected:
    void paintEvent(QPaintEvent*) override;

private:
    std::optional<Figure> m_figure;
    QString m_placeholder;
};

}  // namespace attnscope
