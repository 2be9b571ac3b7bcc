#pragma once
// The painted grid inside HeadGrid (one cell per head), with its thumbnail jobs.
#include <QHash>
#include <QImage>
#include <QWidget>

#include "headgrid.h"

namespace attnscope {

struct MapResult;

class HeadGridCanvas : public QWidget {
    Q_OBJECT
public:
    HeadGridCanvas(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);

    HeadMetric metric = HeadMetric::None;
    /// Thumbnails received: of the whole trace, or on a vision trace of thumbnailQuery() (those of
    /// an earlier query stay on screen until theirs replace them).
    int thumbnailsReady() const { return m_thumbQuery >= 0 ? m_freshThumbs : int(m_thumbs.size()); }
    /// The thumbnail of `head` as received (null until then): a pooled map of the whole sequence,
    /// or on a vision trace a cols × rows heatmap of thumbnailQuery()'s attention over the patches.
    QImage thumbnail(HeadId head) const;
    /// The query token of vision thumbnails (the session's inspected query once there is one, at
    /// first the first prefix token, else the centre patch); -1 when the thumbnails are maps.
    int64_t thumbnailQuery() const { return m_thumbQuery; }
    void click(HeadId head, bool shift);

    QSize sizeHint() const override;
    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int w) const override;

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent*) override;
    void mouseMoveEvent(QMouseEvent*) override;

private:
    void requestThumbnails();
    void requestVisionThumbnails(int64_t query);
    void showThumbnail(const MapResult& r);
    static QString thumbTag(HeadId head);
    double cellSize(int w) const;
    std::optional<HeadId> headAt(QPointF pos) const;
    QRectF cellRect(HeadId head) const;
    int maxHeads() const;

    TraceSession* m_session;
    AnalysisRunner* m_analysis;
    QHash<quint64, QImage> m_thumbs;  ///< key: layer << 32 | head
    int64_t m_thumbQuery = -1;
    int m_freshThumbs = 0;  ///< vision thumbnails of m_thumbQuery received
};

}  // namespace attnscope
