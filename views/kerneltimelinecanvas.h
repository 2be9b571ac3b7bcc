#pragma once
// The profiler's kernel timeline: Dear ImGui drawing inside a QOpenGLWidget, one track per
// (variant, stream). Wheel zooms about the cursor, drag pans, double-click fits; hovering a kernel
// shows its launch details. Input comes from Qt events, fed to ImGui by hand.
#include <QOpenGLWidget>
#include <QElapsedTimer>

#include <string>
#include <vector>

#include "attnscope/profiler.h"
#include "timelineviewport.h"

struct ImGuiContext;

namespace attnscope {

class KernelTimelineCanvas : public QOpenGLWidget {
    Q_OBJECT
public:
    static constexpr double kLabelWidth = 170;  ///< track-name column, pixels
    static constexpr double kTrackHeight = 22;
    static constexpr double kAxisHeight = 22;

    explicit KernelTimelineCanvas(QWidget* parent = nullptr);
    ~KernelTimelineCanvas() override;

    /// Shows `records` (one shape of a profile); labels name the variants by index.
    void setRecords(std::vector<KernelRecord> records, std::vector<std::string> variantLabels);
    const TimelineViewport& viewport() const { return m_view; }
    int trackCount() const { return int(m_tracks.names.size()); }
    /// The hover text for a widget position ("" when no kernel is there).
    QString detailsAt(QPointF pos) const;
    /// Why ImGui could not draw (empty when it draws).
    QString renderError() const { return m_renderError; }

protected:
    void initializeGL() override;
    void paintGL() override;
    void resizeGL(int w, int h) override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void mouseReleaseEvent(QMouseEvent* e) override;
    void mouseDoubleClickEvent(QMouseEvent* e) override;
    void wheelEvent(QWheelEvent* e) override;
    void leaveEvent(QEvent* e) override;

private:
    void drawTimeline();
    void paintFallback();
    int trackAt(double y) const;
    double plotWidth() const { return std::max(1.0, width() - kLabelWidth); }

    std::vector<KernelRecord> m_records;
    std::vector<std::string> m_labels;
    TimelineTracks m_tracks;
    TimelineViewport m_view;
    ImGuiContext* m_imgui = nullptr;
    bool m_imguiReady = false;
    QString m_renderError;
    QPointF m_mouse{-1, -1};
    bool m_dragging = false;
    QElapsedTimer m_frameClock;
};

}  // namespace attnscope
