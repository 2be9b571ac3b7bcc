#pragma once
// The attention map tab: option bar (pooling, scale, overlays, exclude sinks, zoom) above the
// multiscale canvas of the current head.
#include <QWidget>

#include "figuresource.h"

class QCheckBox;
class QComboBox;

namespace attnscope {

class AttentionMapCanvas;
class TraceSession;

class MapPanel : public QWidget, public FigureSource {
    Q_OBJECT
public:
    explicit MapPanel(TraceSession* session, QWidget* parent = nullptr);
    AttentionMapCanvas* canvas() const { return m_canvas; }
    std::optional<Figure> currentFigure() const override;

private:
    void syncFromOptions();
    void pushOptions();

    TraceSession* m_session;
    AttentionMapCanvas* m_canvas;
    QComboBox* m_pooling;
    QCheckBox* m_log;
    QCheckBox* m_excludeSinks;
    QCheckBox* m_mask;
    QCheckBox* m_sinks;
    QComboBox* m_variant;
};

}  // namespace attnscope
