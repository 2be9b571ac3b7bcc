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
    int thumbnailsReady() const { return int(m_thumbs.size()); }
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
    void showThumbnail(const MapResult& r);
    double cellSize(int w) const;
    std::optional<HeadId> headAt(QPointF pos) const;
    QRectF cellRect(HeadId head) const;
    int maxHeads() const;

    TraceSession* m_session;
    AnalysisRunner* m_analysis;
    QHash<quint64, QImage> m_thumbs;  ///< key: layer << 32 | head
};

}  // namespace attnscope
