#pragma once
// Sample figures of every type, shared by the figure and report tests.
#include <QString>

#include <cmath>
#include <random>
#include <vector>

#include "figuremodel.h"

namespace attnscope::test {

inline HeatmapFigure sampleMap(int n, bool tokens) {
    HeatmapFigure f;
    f.title = QStringLiteral("Layer 1 head 3 map");
    f.subtitle = QStringLiteral("mean pooling");
    f.rows = f.cols = n;
    f.x0 = f.y0 = 0;
    f.x1 = f.y1 = n * 4;
    f.scale = ColorScale::Log;
    f.colorBarLabel = QStringLiteral("probability");
    f.xLabel = QStringLiteral("key");
    f.yLabel = QStringLiteral("query");
    for (int r = 0; r < n; ++r)
        for (int c = 0; c < n; ++c) f.values.push_back(c <= r ? float(1.0 / (1 + r - c)) : NAN);
    if (tokens)
        for (int i = 0; i < n; ++i) {
            f.xCategories << QStringLiteral("tok%1").arg(i);
            f.yCategories << QStringLiteral("tok%1").arg(i);
        }
    return f;
}

inline HeatmapFigure sampleGrid() {
    HeatmapFigure f;
    f.title = QStringLiteral("Head grid: entropy");
    f.rows = 2, f.cols = 8;
    for (int i = 0; i < 16; ++i) f.values.push_back(float(i) / 3.0f);
    for (int h = 0; h < 8; ++h) f.xCategories << QStringLiteral("H%1").arg(h);
    f.yCategories << QStringLiteral("L0") << QStringLiteral("L1");
    f.annotate = true;
    f.highlighted = {QPoint(2, 1)};
    f.colorBarLabel = QStringLiteral("nats");
    return f;
}

inline LinePlotFigure sampleSinks() {
    LinePlotFigure f;
    f.title = QStringLiteral("Sink scores");
    f.xLabel = QStringLiteral("key position");
    f.yLabel = QStringLiteral("alpha");
    LineSeries s;
    s.name = QStringLiteral("L0 H0");
    s.stems = true;
    for (int k = 0; k < 64; ++k) s.x.push_back(k), s.y.push_back(k == 0 ? 0.8 : 0.02 + 0.01 * (k % 5));
    f.series.push_back(s);
    f.references = {{0.3, QStringLiteral("eps 0.3")}, {0.1, QStringLiteral("hidden 0.1")}};
    f.labels = {{0, 0.8, QStringLiteral("<bos>")}};
    return f;
}

inline LinePlotFigure sampleDensity() {
    LinePlotFigure f;
    f.title = QStringLiteral("Density against gamma");
    f.xLabel = QStringLiteral("gamma");
    f.yLabel = QStringLiteral("density");
    for (int h = 0; h < 3; ++h) {
        LineSeries s;
        s.name = QStringLiteral("head %1").arg(h);
        s.markers = true;
        for (double g : {0.5, 0.9, 0.95, 0.99}) s.x.push_back(g), s.y.push_back(std::pow(g, 4 - h));
        f.series.push_back(s);
    }
    return f;
}

inline BarChartFigure sampleBars() {
    BarChartFigure f;
    f.title = QStringLiteral("Mask recall");
    f.valueLabel = QStringLiteral("recall");
    f.categories = {QStringLiteral("sliding:64"), QStringLiteral("sink+window"), QStringLiteral("vslash"),
                    QStringLiteral("topk:8")};
    f.groups = {{QStringLiteral("recall"), {0.6, 0.9, 0.95, 0.8}, {}, {}}};
    return f;
}

inline ScatterFigure sampleScatter() {
    ScatterFigure f;
    f.title = QStringLiteral("Speed against accuracy");
    f.xLabel = QStringLiteral("time (ms)");
    f.yLabel = QStringLiteral("relative error");
    f.logY = true;
    f.points = {{1.0, 1e-7, QStringLiteral("causal")},
                {0.4, 1e-3, QStringLiteral("sliding")},
                {0.5, 1e-2, QStringLiteral("topk")},
                {0.2, 1e-1, QStringLiteral("linear")}};
    return f;
}

inline TokenFigure sampleTokens() {
    TokenFigure f;
    f.title = QStringLiteral("Token view");
    const int n = 6;
    for (int i = 0; i < n; ++i)
        f.queryTokens << QStringLiteral(" w%1").arg(i), f.keyTokens << QStringLiteral(" w%1").arg(i);
    for (int h = 0; h < 2; ++h) {
        TokenHeadLines l;
        l.name = QStringLiteral("H%1").arg(h);
        l.weights.assign(size_t(n * n), 0.0f);
        for (int i = 0; i < n; ++i) l.weights[size_t(i * n + (h == 0 ? 0 : std::max(0, i - 1)))] = 0.9f;
        f.heads.push_back(l);
    }
    return f;
}

inline NeuronFigure sampleNeuron() {
    NeuronFigure f;
    f.title = QStringLiteral("Neuron view");
    f.queryToken = QStringLiteral("the");
    f.keyToken = QStringLiteral("cat");
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (int i = 0; i < 32; ++i) f.q.push_back(nd(rng)), f.k.push_back(nd(rng));
    f.scale = 1.0 / std::sqrt(32.0);
    f.probability = 0.25;
    return f;
}

}  // namespace attnscope::test
