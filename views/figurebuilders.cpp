#include "figurebuilders.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "attnscope/scales.h"
#include "attnscope/trace.h"
#include "figurepainter.h"

namespace attnscope {

namespace {
constexpr int kMaxTokenAxis = 64;     // above this many cells, token labels give way to positions
constexpr double kErrorFloor = 1e-8;  // exact variants (error 0) still show on a log axis
constexpr double kMapEpsilon = 1e-30;

QString headName(int layer, int head) { return QStringLiteral("L%1 H%2").arg(layer).arg(head); }

double gridValue(const HeadAnalysis& h, GridMetric metric) {
    switch (metric) {
    case GridMetric::Entropy: return h.stats.entropy;
    case GridMetric::EntropyNormalized: return h.stats.entropyNormalized;
    case GridMetric::SinkScore: return h.sinks.alpha0;
    case GridMetric::Density: {
        const GammaCoverage* c = h.coverage(128, 0.9);
        if (!c && !h.blocks.empty() && !h.blocks.front().coverage.empty()) c = &h.blocks.front().coverage.back();
        return c ? c->density : NAN;
    }
    case GridMetric::RoleScore:
        return std::max({h.roles.previousToken, h.roles.nextToken, h.roles.inductionMatched, h.roles.duplicateMatched});
    case GridMetric::MeanDistance: return h.stats.meanDistance;
    }
    return NAN;
}

QString maskName(const CandidateMaskResult& m) {
    return m.params.empty()
               ? QString::fromStdString(m.name)
               : QStringLiteral("%1 (%2)").arg(QString::fromStdString(m.name), QString::fromStdString(m.params));
}

}  // namespace

QStringList traceTokens(const TraceMetadata& metadata) {
    QStringList out;
    out.reserve(qsizetype(metadata.tokens.size()));
    for (const auto& t : metadata.tokens) out << QString::fromStdString(t);
    return out;
}

QString gridMetricName(GridMetric metric) {
    switch (metric) {
    case GridMetric::Entropy: return QStringLiteral("entropy (nats)");
    case GridMetric::EntropyNormalized: return QStringLiteral("normalized entropy");
    case GridMetric::SinkScore: return QStringLiteral("first-token sink score alpha_0");
    case GridMetric::Density: return QStringLiteral("density at gamma 0.9");
    case GridMetric::RoleScore: return QStringLiteral("role score");
    case GridMetric::MeanDistance: return QStringLiteral("mean attention distance");
    }
    return {};
}

HeatmapFigure mapFigure(const AttentionMap& map, const QStringList& tokens, bool maxPooling, const QString& title) {
    HeatmapFigure f;
    f.title = title;
    f.rows = map.height;
    f.cols = map.width;
    const auto& src = maxPooling ? map.max : map.mean;
    f.values.assign(src.begin(), src.end());
    float vmax = 0;
    for (size_t i = 0; i < f.values.size(); ++i) {
        // Cells the mask rules out entirely are "no data", not zero probability.
        if (i < map.allowed.size() && map.allowed[i] <= 0)
            f.values[i] = NAN;
        else if (std::isfinite(f.values[i]))
            vmax = std::max(vmax, f.values[i]);
    }
    f.scale = ColorScale::Log;
    f.vmax = float(std::max(double(vmax), kMapEpsilon));
    f.vmin = float(logScaleFloor(double(f.vmax)));  // core's floor, as the GUI map and the CLI's PNG
    f.x0 = map.rect.k0, f.x1 = map.rect.k1, f.y0 = map.rect.q0, f.y1 = map.rect.q1;
    f.xLabel = QStringLiteral("key");
    f.yLabel = QStringLiteral("query");
    f.colorBarLabel = maxPooling ? QStringLiteral("max probability") : QStringLiteral("mean probability");
    const int64_t qn = map.rect.q1 - map.rect.q0, kn = map.rect.k1 - map.rect.k0;
    f.subtitle = QStringLiteral("queries %1–%2 × keys %3–%4 · %5 pooling · %6×%7 cells")
                     .arg(map.rect.q0)
                     .arg(map.rect.q1 - 1)
                     .arg(map.rect.k0)
                     .arg(map.rect.k1 - 1)
                     .arg(maxPooling ? QStringLiteral("max") : QStringLiteral("mean"))
                     .arg(map.width)
                     .arg(map.height);
    const bool tokenLevel = map.width == kn && map.height == qn && kn <= kMaxTokenAxis && qn <= kMaxTokenAxis;
    if (tokenLevel && map.rect.k1 <= tokens.size() && map.rect.q1 <= tokens.size()) {
        f.xCategories = tokens.mid(map.rect.k0, kn);
        f.yCategories = tokens.mid(map.rect.q0, qn);
    }
    return f;
}

HeatmapFigure headGridFigure(const ModelAnalysis& model, GridMetric metric,
                             const std::vector<std::pair<int, int>>& selected) {
    HeatmapFigure f;
    f.title = QStringLiteral("Heads by %1").arg(gridMetricName(metric));
    f.subtitle = QString::fromStdString(model.model) + QStringLiteral(" · %1 tokens").arg(model.tokens);
    std::vector<int> layers;
    int maxHead = -1;
    for (const auto& h : model.heads) {
        if (std::find(layers.begin(), layers.end(), h.layer) == layers.end()) layers.push_back(h.layer);
        maxHead = std::max(maxHead, h.head);
    }
    std::sort(layers.begin(), layers.end());
    f.rows = int(layers.size());
    f.cols = maxHead + 1;
    f.values.assign(size_t(f.rows) * size_t(std::max(0, f.cols)), NAN);
    for (const auto& h : model.heads) {
        const int r = int(std::lower_bound(layers.begin(), layers.end(), h.layer) - layers.begin());
        f.values[size_t(r) * f.cols + h.head] = float(gridValue(h, metric));
    }
    for (int l : layers) f.yCategories << QStringLiteral("L%1").arg(l);
    for (int h = 0; h < f.cols; ++h) f.xCategories << QStringLiteral("H%1").arg(h);
    f.xLabel = QStringLiteral("head");
    f.yLabel = QStringLiteral("layer");
    f.colorBarLabel = gridMetricName(metric);
    f.annotate = true;
    if (metric == GridMetric::SinkScore || metric == GridMetric::Density || metric == GridMetric::RoleScore ||
        metric == GridMetric::EntropyNormalized)
        f.vmin = 0, f.vmax = 1;
    for (const auto& [l, h] : selected) {
        const auto it = std::lower_bound(layers.begin(), layers.end(), l);
        if (it != layers.end() && *it == l) f.highlighted.push_back(QPoint(h, int(it - layers.begin())));
    }
    return f;
}

LinePlotFigure sinkFigure(const HeadAnalysis& head, const QStringList& tokens, const SinkOptions& options) {
    LinePlotFigure f;
    f.title = QStringLiteral("Sink scores of %1").arg(headName(head.layer, head.head));
    f.subtitle = QStringLiteral("alpha_k: mean attention to key k over the queries that see it");
    f.xLabel = QStringLiteral("key position");
    f.yLabel = QStringLiteral("alpha_k");
    LineSeries s;
    s.name = headName(head.layer, head.head);
    s.stems = true;
    for (size_t k = 0; k < head.sinks.alpha.size(); ++k) s.x.push_back(double(k)), s.y.push_back(head.sinks.alpha[k]);
    f.series.push_back(std::move(s));
    f.yMin = 0;
    f.references = {{options.firstTokenEps, QStringLiteral("first-token sink eps %1").arg(options.firstTokenEps)},
                    {options.hiddenThreshold, QStringLiteral("hidden sink %1").arg(options.hiddenThreshold)}};
    for (int64_t k : head.sinks.keys()) {
        if (k < 0 || size_t(k) >= head.sinks.alpha.size()) continue;
        const QString tok =
            k < tokens.size() ? fig::displayToken(tokens[int(k)], fig::font(fig::FontRole::Tick), 60) : QString();
        f.labels.push_back({double(k), head.sinks.alpha[size_t(k)], QStringLiteral("%1 %2").arg(k).arg(tok)});
    }
    return f;
}

BarChartFigure sinkRateFigure(const ModelAnalysis& model) {
    BarChartFigure f;
    f.title = QStringLiteral("First-token sink rate per layer");
    f.subtitle = QStringLiteral("model: %1%").arg(fig::formatNumber(model.sinkRate));
    f.valueLabel = QStringLiteral("% of heads with alpha_0 > eps");
    BarGroup g;
    g.name = QStringLiteral("sink rate");
    for (const auto& l : model.layers)
        f.categories << QStringLiteral("layer %1").arg(l.layer), g.values.push_back(l.sinkRate);
    f.groups.push_back(std::move(g));
    f.valueMax = 100;
    return f;
}

LinePlotFigure densityFigure(const ModelAnalysis& model, int64_t blockSize) {
    LinePlotFigure f;
    f.title = QStringLiteral("Block density needed to reach mass gamma");
    f.subtitle = QStringLiteral("mean over heads per layer · block %1").arg(blockSize);
    f.xLabel = QStringLiteral("gamma (attention mass kept)");
    f.yLabel = QStringLiteral("density (kept / allowed blocks)");
    f.yMin = 0, f.yMax = 1;
    std::map<int, std::map<double, std::pair<double, int>>> acc;  // layer -> gamma -> (sum, n)
    for (const auto& h : model.heads)
        for (const auto& b : h.blocks) {
            if (b.blockSize != blockSize) continue;
            for (const auto& c : b.coverage) {
                auto& a = acc[h.layer][c.gamma];
                a.first += c.density, a.second += 1;
            }
        }
    for (const auto& [layer, byGamma] : acc) {
        LineSeries s;
        s.name = QStringLiteral("layer %1").arg(layer);
        s.markers = true;
        for (const auto& [g, a] : byGamma) s.x.push_back(g), s.y.push_back(a.first / a.second);
        f.series.push_back(std::move(s));
    }
    return f;
}

LinePlotFigure headDensityFigure(const HeadAnalysis& head) {
    LinePlotFigure f;
    f.title = QStringLiteral("Density against gamma, %1").arg(headName(head.layer, head.head));
    f.xLabel = QStringLiteral("gamma (attention mass kept)");
    f.yLabel = QStringLiteral("density (kept / allowed blocks)");
    f.yMin = 0, f.yMax = 1;
    for (const auto& b : head.blocks) {
        LineSeries s;
        s.name = QStringLiteral("block %1").arg(b.blockSize);
        s.markers = true;
        for (const auto& c : b.coverage) s.x.push_back(c.gamma), s.y.push_back(c.density);
        f.series.push_back(std::move(s));
    }
    return f;
}

BarChartFigure maskRecallFigure(const ModelAnalysis& model) {
    BarChartFigure f;
    f.title = QStringLiteral("Recall of candidate sparse masks");
    f.subtitle = QStringLiteral("mean over %1 heads of the attention mass each mask keeps").arg(model.heads.size());
    f.valueLabel = QStringLiteral("recall");
    std::vector<QString> order;
    std::map<QString, std::pair<double, int>> acc;
    for (const auto& h : model.heads)
        for (const auto& m : h.masks) {
            const QString n = maskName(m);
            if (!acc.count(n)) order.push_back(n);
            acc[n].first += m.recall, acc[n].second += 1;
        }
    BarGroup g;
    g.name = QStringLiteral("recall");
    for (const auto& n : order) f.categories << n, g.values.push_back(acc[n].first / acc[n].second);
    f.groups.push_back(std::move(g));
    f.valueMax = 1;
    return f;
}

BarChartFigure headMaskRecallFigure(const HeadAnalysis& head) {
    BarChartFigure f;
    f.title = QStringLiteral("Mask recall, %1").arg(headName(head.layer, head.head));
    f.valueLabel = QStringLiteral("recall");
    BarGroup g;
    g.name = QStringLiteral("recall");
    for (const auto& m : head.masks) f.categories << maskName(m), g.values.push_back(m.recall);
    f.groups.push_back(std::move(g));
    f.valueMax = 1;
    return f;
}

HeatmapFigure similarityFigure(const HeadSimilarity& s) {
    HeatmapFigure f;
    f.title = QStringLiteral("Layer %1 head similarity").arg(s.layer);
    f.subtitle = QStringLiteral("1 − Jensen–Shannon distance · heads in average-linkage order");
    const int n = s.heads;
    std::vector<int> order = s.order;
    if (int(order.size()) != n) {
        order.resize(size_t(n));
        for (int i = 0; i < n; ++i) order[size_t(i)] = i;
    }
    f.rows = f.cols = n;
    if (s.similarity.size() == size_t(n) * size_t(n))
        for (int r = 0; r < n; ++r)
            for (int c = 0; c < n; ++c)
                f.values.push_back(float(s.similarity[size_t(order[size_t(r)]) * n + order[size_t(c)]]));
    for (int i : order) f.xCategories << QStringLiteral("H%1").arg(i), f.yCategories << QStringLiteral("H%1").arg(i);
    f.vmin = 0, f.vmax = 1;
    f.annotate = true;
    f.colorBarLabel = QStringLiteral("similarity");
    return f;
}

TokenFigure tokenFigure(const std::vector<AttentionMap>& maps, const QStringList& headNames, const QStringList& tokens,
                        const QString& title) {
    TokenFigure f;
    f.title = title;
    if (maps.empty()) return f;
    const MapRect r = maps.front().rect;
    f.queryOffset = r.q0, f.keyOffset = r.k0;
    auto tok = [&](int64_t i) { return i < tokens.size() ? tokens[int(i)] : QStringLiteral("#%1").arg(i); };
    for (int64_t q = r.q0; q < r.q1; ++q) f.queryTokens << tok(q);
    for (int64_t k = r.k0; k < r.k1; ++k) f.keyTokens << tok(k);
    f.subtitle = QStringLiteral("queries %1–%2 → keys %3–%4 · line opacity = attention")
                     .arg(r.q0)
                     .arg(r.q1 - 1)
                     .arg(r.k0)
                     .arg(r.k1 - 1);
    for (size_t i = 0; i < maps.size(); ++i) {
        const auto& m = maps[i];
        if (m.width != r.k1 - r.k0 || m.height != r.q1 - r.q0) continue;  // token view needs one cell per token
        f.heads.push_back(
            {i < size_t(headNames.size()) ? headNames[int(i)] : QStringLiteral("head %1").arg(i), m.mean});
    }
    return f;
}

NeuronFigure neuronFigure(const std::vector<float>& q, const std::vector<float>& k, double scale,
                          const QString& queryToken, const QString& keyToken, double probability,
                          const QString& title) {
    NeuronFigure f;
    f.title = title;
    f.q = q, f.k = k;
    f.scale = scale;
    f.queryToken = queryToken, f.keyToken = keyToken;
    f.probability = probability;
    return f;
}

BarChartFigure profileTimeFigure(const ShapeProfile& shape, const std::string& backend) {
    BarChartFigure f;
    f.title = QStringLiteral("Attention variants: median time (%1)").arg(QString::fromStdString(backend));
    f.subtitle = QString::fromStdString(shape.description) + QStringLiteral(" · whiskers: interquartile range");
    f.valueLabel = QStringLiteral("time (ms)");
    BarGroup g;
    g.name = QStringLiteral("median");
    for (const auto& v : shape.variants) {
        if (!v.error.empty() || v.stats.n == 0) continue;
        f.categories << QString::fromStdString(v.label);
        g.values.push_back(v.stats.median);
        g.errLow.push_back(v.stats.q1);
        g.errHigh.push_back(v.stats.q3);
    }
    f.groups.push_back(std::move(g));
    return f;
}

ScatterFigure paretoFigure(const ShapeProfile& shape, const std::string& backend) {
    ScatterFigure f;
    f.title = QStringLiteral("Speed against accuracy (%1)").arg(QString::fromStdString(backend));
    f.subtitle = QStringLiteral("relative output error vs dense · dashed: Pareto frontier · 0 drawn at 1e-8");
    f.xLabel = QStringLiteral("median time (ms)");
    f.yLabel = QStringLiteral("relative output error");
    f.logY = true;
    for (const auto& v : shape.variants) {
        if (!v.error.empty() || v.stats.n == 0 || v.relError < 0) continue;
        f.points.push_back({v.stats.median, std::max(v.relError, kErrorFloor), QString::fromStdString(v.label)});
    }
    return f;
}

}  // namespace attnscope
