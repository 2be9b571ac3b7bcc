#pragma once
// BertViz-style head view: the window's tokens in two columns (queries left, keys right) joined by
// lines whose opacity is the attention weight, several heads of one layer at once with a colour
// per head. Hover a token to focus on its lines. Long sequences are shown through a window.
#include <QWidget>

#include <map>
#include <vector>

#include "figuresource.h"
#include "mapjobs.h"

class QCheckBox;
class QDoubleSpinBox;
class QHBoxLayout;
class QSpinBox;

namespace attnscope {

class TraceSession;
class TokenLinesCanvas;

class TokenView : public QWidget, public FigureSource {
    Q_OBJECT
public:
    /// Tokens shown per column unless the user picks another window.
    static constexpr int kDefaultWindow = 48;

    explicit TokenView(TraceSession* session, QWidget* parent = nullptr);
    std::optional<Figure> currentFigure() const override;
    /// Heads whose weights for the current window have arrived (tests).
    int headsReady() const;

private:
    void rebuildHeadBoxes();
    void request();
    void showWeights(const MapResult& r);

    TraceSession* m_session;
    QSpinBox* m_layer;
    QSpinBox* m_start;
    QSpinBox* m_window;
    QDoubleSpinBox* m_minWeight;
    QHBoxLayout* m_headBoxes;
    std::vector<QCheckBox*> m_heads;
    TokenLinesCanvas* m_canvas;
};

/// The painted part: token columns and lines; `weights[head]` is [window × window] row-major.
class TokenLinesCanvas : public QWidget {
    Q_OBJECT
public:
    explicit TokenLinesCanvas(QWidget* parent = nullptr) : QWidget(parent) { setMouseTracking(true); }

    QStringList tokens;
    int64_t offset = 0;
    float minWeight = 0.01f;
    std::map<int, std::vector<float>> weights;  ///< head -> weights of the window
    int focusQuery = -1, focusKey = -1;

    TokenFigure figure(const QString& title) const;

protected:
    void paintEvent(QPaintEvent*) override;
    void mouseMoveEvent(QMouseEvent*) override;
    void leaveEvent(QEvent*) override;

private:
    double rowHeight() const;
    double columnWidth() const;
    double gap() const;
    double gapLeft() const;   ///< x where the query column's lines start
    double gapRight() const;  ///< x where the key column's lines end
};

}  // namespace attnscope
