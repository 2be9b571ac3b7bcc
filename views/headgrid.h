#pragma once
// Model view: layers × heads thumbnails (small overviews computed asynchronously), each framed
// in the colour of a chosen metric from the analysis. Click selects a head; shift-click adds it
// to the comparison.
#include <QHash>
#include <QImage>
#include <QWidget>

#include <optional>

#include "tracesession.h"

class QComboBox;
class QScrollArea;

namespace attnscope {

class AnalysisRunner;
class HeadGridCanvas;

enum class HeadMetric { None, Entropy, SinkScore, Density, RoleScore, JsCluster };

/// The metric of one head in [0, 1] for colouring (nullopt before the analysis covered it), and
/// its value as text.
std::optional<double> headMetric(const AnalysisRunner& analysis, HeadId head, HeadMetric metric, double gamma,
                                 int blockSize, QString* text = nullptr);

class HeadGrid : public QWidget {
    Q_OBJECT
public:
    HeadGrid(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);

    HeadMetric metric() const;
    void setMetric(HeadMetric metric);
    int thumbnailsReady() const;
    /// Clicks a head as the user would (tests): shift adds it to the comparison.
    void clickHead(HeadId head, bool shift);

private:
    TraceSession* m_session;
    QComboBox* m_metric;
    HeadGridCanvas* m_canvas;
};

}  // namespace attnscope
