#pragma once
// The Vision view of a vision trace: the input image with a heatmap of the selected query patch's
// attention over the patches (the current layer/head of the session), the prefix tokens' shares
// (CLS, registers) beside it. Click a patch to make it the query. Without an `image` tensor the
// heatmap fills the patch grid alone. The row comes from core's queryPatchAttention on the
// ComputeService (newest request wins); colours from core's colormaps and scales (image.h).
#include <QImage>
#include <QPointF>
#include <QRectF>
#include <QWidget>

#include <optional>
#include <utility>
#include <vector>

#include "attnscope/status.h"
#include "attnscope/trace.h"
#include "attnscope/vision.h"

class QLabel;

namespace attnscope {

class TraceSession;
class VisionCanvas;
class VisionHeadStrip;

/// Pure geometry of the canvas: the image (or grid) fitted into `area` keeping its aspect ratio,
/// and the patch under a point.
struct VisionGeometry {
    QRectF target;  ///< where the image is drawn
    int rows = 0, cols = 0;

    /// Fits a width × height picture into `area`, centred, aspect ratio kept.
    static VisionGeometry fit(QRectF area, int width, int height, int rows, int cols);
    /// (row, col) of the patch under `p`, or nullopt outside the picture. Patch (r, c) spans
    /// [r·H/rows, (r+1)·H/rows) of the drawn height (the format's pixel rule), likewise columns.
    std::optional<std::pair<int, int>> patchAt(QPointF p) const;
    QRectF patchRect(int r, int c) const;
};

/// The same query's patch attention in every head of a layer (the small multiples under the
/// canvas), each heatmap in its own head's range.
struct VisionHeadRows {
    int layer = 0;
    int64_t query = 0;
    std::vector<QImage> heatmaps;   ///< one per query head of the layer
    std::vector<float> prefixMass;  ///< per head: the query's mass on the prefix tokens
};

/// The heatmap of one query's patch attention as a cols × rows image (one pixel per patch), in
/// core's colormap and scale: log over kLogScaleDecades below the row's maximum, or linear.
QImage visionHeatmap(const QueryPatchAttention& row, bool logScale);

class VisionView : public QWidget {
    Q_OBJECT
public:
    explicit VisionView(TraceSession* session, QWidget* parent = nullptr);

    /// The query token whose row is shown or requested (a patch token by default: the centre).
    int64_t query() const { return m_query; }
    /// Makes token `query` the query and requests its row.
    void setQuery(int64_t query);
    /// The row on screen (empty until the first answer arrives).
    const std::optional<QueryPatchAttention>& shown() const { return m_row; }
    bool hasImage() const { return !m_image.isNull(); }
    /// True when the row on screen is the one for the current head and query.
    bool isUpToDate() const;
    VisionCanvas* canvas() const { return m_canvas; }
    /// Every head of the layer for the query (small multiples; a click selects that head).
    VisionHeadStrip* headStrip() const { return m_heads; }

signals:
    /// The row for (layer, head, query) is on screen.
    void rowShown();

private:
    void traceChanged();
    void request();
    void showRow(Result<QueryPatchAttention> r);
    void showPrefix();
    void showHeads(Result<VisionHeadRows> r);

    TraceSession* m_session;
    VisionCanvas* m_canvas;
    VisionHeadStrip* m_heads;
    QLabel* m_summary;
    QLabel* m_prefix;
    std::optional<VisionLayout> m_layout;
    int64_t m_query = -1;
    std::optional<QueryPatchAttention> m_row;
    QImage m_image;
};

/// Paints the picture, the heatmap, the patch grid and the query patch; reports clicked patches.
class VisionCanvas : public QWidget {
    Q_OBJECT
public:
    explicit VisionCanvas(QWidget* parent = nullptr);
    void setPicture(QImage image, int rows, int cols);
    void setHeatmap(QImage heatmap, std::optional<std::pair<int, int>> query);
    VisionGeometry geometryNow() const;

signals:
    void patchClicked(int row, int col);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;

private:
    QImage m_picture;  ///< the trace's image, or null (the grid alone)
    QImage m_heatmap;
    int m_rows = 0, m_cols = 0;
    std::optional<std::pair<int, int>> m_query;
};

/// A row of small heatmaps, one per head of the layer for the same query, the current head
/// outlined, each labelled with its head and prefix mass; a click selects the head.
class VisionHeadStrip : public QWidget {
    Q_OBJECT
public:
    explicit VisionHeadStrip(QWidget* parent = nullptr);
    void setRows(VisionHeadRows rows, int currentHead, int gridRows, int gridCols);
    void clear();
    /// The rows on screen (empty heatmaps until the first answer).
    const VisionHeadRows& rows() const { return m_rows; }
    /// Where head `h`'s heatmap is drawn (empty when there is none).
    QRectF cellRect(int h) const;

signals:
    void headClicked(int head);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;

private:
    VisionHeadRows m_rows;
    int m_current = -1;
    int m_gridRows = 0, m_gridCols = 0;
};

}  // namespace attnscope
