#pragma once
// Builders from engine results to figure models: one place that decides titles, labels and
// scales, shared by the GUI's export, attnscope-cli export and the reports.
#include <QString>
#include <QStringList>

#include <string>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/attention.h"
#include "attnscope/profiler.h"
#include "figuremodel.h"

namespace attnscope {

struct TraceMetadata;

/// Token display strings of a trace as a QStringList (positions beyond the list get "#i").
QStringList traceTokens(const TraceMetadata& metadata);

/// Head-grid metrics (the GUI's "colour by" menu and the report's overview).
enum class GridMetric { Entropy, EntropyNormalized, SinkScore, Density, RoleScore, MeanDistance };
QString gridMetricName(GridMetric metric);

/// A pooled attention map with position axes, or token labels when each cell is one token.
/// `maxPooling` picks map.max over map.mean. Log colour scale over 4 decades below the maximum.
HeatmapFigure mapFigure(const AttentionMap& map, const QStringList& tokens, bool maxPooling, const QString& title);

/// Layers × heads coloured by `metric`; `selected` heads are outlined.
HeatmapFigure headGridFigure(const ModelAnalysis& model, GridMetric metric,
                             const std::vector<std::pair<int, int>>& selected = {});

/// alpha_k per key of one head as stems, with the eps / hidden thresholds and sink tokens labelled.
LinePlotFigure sinkFigure(const HeadAnalysis& head, const QStringList& tokens, const SinkOptions& options = {});
/// Sink rate (% of heads with a first-token sink) per layer.
BarChartFigure sinkRateFigure(const ModelAnalysis& model);

/// Mean density against gamma per layer (block size `blockSize`).
LinePlotFigure densityFigure(const ModelAnalysis& model, int64_t blockSize);
/// Density against gamma for a single head, one series per block size.
LinePlotFigure headDensityFigure(const HeadAnalysis& head);
/// Mean recall of each candidate mask over the analysed heads.
BarChartFigure maskRecallFigure(const ModelAnalysis& model);
/// Recall of each candidate mask for one head.
BarChartFigure headMaskRecallFigure(const HeadAnalysis& head);

/// The head-similarity matrix of one layer, heads in clustering order.
HeatmapFigure similarityFigure(const HeadSimilarity& similarity);

/// BertViz head view for the token window of `maps` (one map per head, each one cell per token).
TokenFigure tokenFigure(const std::vector<AttentionMap>& maps, const QStringList& headNames, const QStringList& tokens,
                        const QString& title);

/// q, k and q ⊙ k of one query/key pair.
NeuronFigure neuronFigure(const std::vector<float>& q, const std::vector<float>& k, double scale,
                          const QString& queryToken, const QString& keyToken, double probability, const QString& title);

/// Median time per variant with IQR whiskers (one shape of a profile).
BarChartFigure profileTimeFigure(const ShapeProfile& shape, const std::string& backend);
/// Time against relative output error, with the Pareto frontier.
ScatterFigure paretoFigure(const ShapeProfile& shape, const std::string& backend);

}  // namespace attnscope
