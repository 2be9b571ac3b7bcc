#pragma once
// The multiscale attention map of one head: the whole-sequence overview down to single cells with
// token labels. Wheel zooms about the cursor, drag pans; each view change asks the ComputeService
// for the visible rectangle at screen resolution while the coarser overview stays on screen.
#include <QElapsedTimer>
#include <QFontMetricsF>
#include <QImage>
#include <QTimer>
#include <QWidget>

#include <memory>
#include <optional>

#include "figuremodel.h"
#include "mapcoloring.h"
#include "mapjobs.h"
#include "mapviewport.h"
#include "tracesession.h"

class QFontMetricsF;

namespace attnscope {

struct VisionLayout;

class AttentionMapCanvas : public QWidget {
    Q_OBJECT
public:
    explicit AttentionMapCanvas(TraceSession* session, QWidget* parent = nullptr);

    /// Follow the session's current head (the main map) or show a fixed head (comparison).
    void setFollowCurrent(bool follow);
    void setHead(HeadId head);
    HeadId head() const { return m_head; }

    const MapViewport& viewport() const { return m_view; }
    /// Adopts another canvas's zoom and pan (linked views); does not emit viewportChanged.
    void setViewport(const MapViewport& view);
    void zoomBy(double factor);
    void fitAll();
    /// Centres the view on (query, key) at the given pixels per token.
    void zoomToToken(int64_t query, int64_t key, double pixelsPerToken);

    /// True when an exact map at the current resolution is on screen (tests, benchmark).
    bool isUpToDate() const;
    bool hasOverview() const { return m_overview.has_value(); }
    /// Non-empty when the exact map of the view would exceed the CPU budget and is not started
    /// (no GPU): what it would take, and the ways out. The sampled preview stays on screen.
    const QString& cpuLimitMessage() const { return m_cpuLimit; }
    int tilesReceived() const { return m_tilesReceived; }
    QString hoverText() const { return m_hoverText; }
    MapColoring coloring() const;
    /// The finest exact map on screen (the detail when it matches the view), or nullptr.
    const MapResult* shownMap() const;
    /// The current view as a publication figure (the best map on screen, with token labels).
    HeatmapFigure figure() const;

    QSize sizeHint() const override { return {640, 560}; }

    /// The title (left) and state (right) of the header line, elided so that together they fit
    /// `width` with a gap between them: narrow comparison canvases drew one over the other.
    static std::pair<QString, QString> fitHeader(const QString& title, const QString& state, const QFontMetricsF& fm,
                                                 double width);
    /// Minimum pixels between the header's title and state.
    static constexpr double kHeaderGap = 12;

signals:
    void viewportChanged(const attnscope::MapViewport& view);
    void hovered(const QString& text);
    void tileArrived();
    void computeFailed(const QString& message);

protected:
    void paintEvent(QPaintEvent*) override;
    void resizeEvent(QResizeEvent*) override;
    void wheelEvent(QWheelEvent*) override;
    void mousePressEvent(QMouseEvent*) override;
    void mouseMoveEvent(QMouseEvent*) override;
    void mouseReleaseEvent(QMouseEvent*) override;
    void mouseDoubleClickEvent(QMouseEvent*) override;
    void leaveEvent(QEvent*) override;
    void changeEvent(QEvent*) override;

private:
    struct Layer {
        MapResult result;  ///< with its image, coloured on the worker
        const QImage& image() const { return result.image; }
    };

    QRectF plotRect() const;
    void restart();      ///< head or mask changed: drop maps, request the overview
    void viewChanged();  ///< zoom/pan: schedule a detail request
    void requestDetail();
    /// The exact overview has at least one cell per pixel (or per token) of the current view.
    bool overviewSuffices() const;
    void dropDetailWhenOverviewSuffices();
    /// Starts `request` as `level`; false when it was not started (an exact map over the CPU budget).
    bool submit(const QString& level, MapRequest request, bool gpu);
    /// The exact overview is on its way and, once here, will serve the current view by itself.
    bool overviewWillSuffice() const;
    void onMapFinished(const QString& level, Result<MapResult> result);
    void recolor();  ///< options or palette changed: recolour the layers on screen
    bool coloringMatches(const MapResult& r) const;
    std::optional<float> valueAt(int64_t query, int64_t key) const;
    void updateHover(QPointF pos);
    void drawLayer(QPainter& p, const Layer& layer) const;
    void drawOverlays(QPainter& p) const;
    void drawAxes(QPainter& p) const;
    void drawColorBar(QPainter& p) const;
    QString tagPrefix() const;
    /// False (and m_cpuLimit set) when `request` on the CPU would exceed the CPU budget.
    bool withinCpuBudget(const MapRequest& request);
    /// The axes of a vision trace away from token level: patch rows instead of token numbers.
    void drawPatchRowAxes(QPainter& p, const VisionLayout& layout, const QFontMetricsF& fm) const;

    TraceSession* m_session;
    bool m_follow = true;
    HeadId m_head;
    MapViewport m_view;
    std::optional<Layer> m_overview;
    std::optional<Layer> m_detail;
    std::vector<int64_t> m_excluded;  ///< keys excluded in the maps on screen
    QTimer m_detailTimer;
    int m_tilesReceived = 0;
    bool m_computing = false;
    bool m_overviewPending = false;  ///< the exact overview of the current head is computing
    QString m_hoverText;
    QString m_error;
    /// Why the exact map of the current view is not computed (over the CPU budget), or empty.
    QString m_cpuLimit;
    struct CoverageCache {
        HeadId head{-1, -1};
        double gamma = 0;
        int blockSize = 0;
        const ModelAnalysis* analysis = nullptr;
        std::vector<uint8_t> kept;
        const BlockSparsity* blocks = nullptr;
    };
    const CoverageCache& coverage() const;
    void drawCoverage(QPainter& p) const;
    void drawVariantMask(QPainter& p) const;
    mutable CoverageCache m_coverage;
    QPointF m_pressPos, m_lastPos;
    bool m_dragging = false;
};

}  // namespace attnscope
