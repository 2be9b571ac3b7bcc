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
class QLabel;
class QProgressBar;
class QScrollArea;
class QToolButton;

namespace attnscope {

class AnalysisRunner;
class HeadGridCanvas;

enum class HeadMetric { None, Entropy, SinkScore, Density, RoleScore, JsCluster };

/// The metric of one head in [0, 1] for colouring (nullopt before the analysis covered it), and
/// its value as text short enough for a grid cell (role labels abbreviated, see roleAbbreviation).
std::optional<double> headMetric(const AnalysisRunner& analysis, HeadId head, HeadMetric metric, double gamma,
                                 int blockSize, QString* text = nullptr);
/// A role label ("previous-token") as the grid writes it in a cell ("prev").
QString roleAbbreviation(const std::string& label);

class HeadGrid : public QWidget {
    Q_OBJECT
public:
    HeadGrid(TraceSession* session, AnalysisRunner* analysis, QWidget* parent = nullptr);

    HeadMetric metric() const;
    void setMetric(HeadMetric metric);
    int thumbnailsReady() const;
    /// Clicks a head as the user would (tests): shift adds it to the comparison.
    void clickHead(HeadId head, bool shift);
    /// The analysis line above the grid ("Analysing: 2 of 6 layers…"; empty when hidden), and
    /// the grid canvas (tests).
    QString analysisStatus() const;
    HeadGridCanvas* canvas() const { return m_canvas; }

private:
    void updateAnalysisStatus();
    void updateLegend();

    TraceSession* m_session;
    AnalysisRunner* m_analysis;
    QComboBox* m_metric;
    QLabel* m_status;
    QProgressBar* m_progress;
    QToolButton* m_action;  ///< Cancel while the analysis runs, Run when it is not there
    QLabel* m_legend;       ///< what the abbreviations in the cells stand for
    HeadGridCanvas* m_canvas;
};

}  // namespace attnscope
