#pragma once
// Head comparison: 2–4 heads side by side with linked zoom and pan, the difference map of the
// first two with their Jensen–Shannon distance, and the head-similarity matrix of the current
// layer in clustering order. Until the user picks two heads, the current head is shown beside its
// neighbour, so the view is never empty.
#include <QWidget>

#include <vector>

#include "figuresource.h"
#include "tracesession.h"

class QHBoxLayout;
class QLabel;

namespace attnscope {

class AnalysisRunner;
class AttentionMapCanvas;
class FigureWidget;
class TraceSession;

class ComparisonView : public QWidget, public FigureSource {
    Q_OBJECT
public:
    ComparisonView(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);
    std::optional<Figure> currentFigure() const override;
    const std::vector<AttentionMapCanvas*>& canvases() const { return m_canvases; }
    /// The heads shown: the compared ones, or (fewer than two compared) the current head with its
    /// neighbour.
    QList<HeadId> shownHeads() const;
    bool hasDifference() const;
    /// JS distance of the first two compared heads once computed, else a negative value.
    double jsDistance() const { return m_js; }

protected:
    void showEvent(QShowEvent* e) override;

private:
    /// Rebuilds the canvases when the view is visible; hidden, it only remembers to, so a trace
    /// opening does not compute maps and a distance for a tab nobody looks at.
    void rebuildWhenVisible();
    void rebuild();
    void updateDifference();
    void requestDistance();
    void showDistance(Result<double> r);

    TraceSession* m_session;
    QHBoxLayout* m_row;
    QLabel* m_hint;
    QLabel* m_distance;
    std::vector<AttentionMapCanvas*> m_canvases;
    FigureWidget* m_difference;
    FigureWidget* m_similarity;
    double m_js = -1;
    QList<HeadId> m_shown;
    bool m_stale = true;  ///< the canvases do not show shownHeads() yet
};

}  // namespace attnscope
