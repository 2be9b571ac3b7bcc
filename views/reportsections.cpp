// The report's sections, built from ReportData; the same document becomes HTML and Markdown.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>

#include "attnscope/trace.h"
#include "figurebuilders.h"
#include "reportdocument.h"

namespace attnscope {

namespace {
constexpr double kClusterDistance = 0.5;  // heads closer than this (JS distance) share a cluster
constexpr int kMaxSimilarityFigures = 4;  // layers whose similarity matrix is drawn
constexpr int kMaxListedSinks = 5;        // hidden sinks listed per head in the sink table
constexpr int kTextPreviewChars = 300;
constexpr int kSummaryBlockSize = 128;

QString num(double v, int precision = 3) {
    if (!std::isfinite(v)) return QStringLiteral("–");
    return QString::number(v, 'g', precision);
}
QString str(const std::string& s) { return QString::fromStdString(s); }
QString headName(int layer, int head) { return QStringLiteral("L%1 H%2").arg(layer).arg(head); }

QString tokenAt(const QStringList& tokens, int64_t k) {
    return k >= 0 && k < tokens.size() ? tokens[int(k)] : QString();
}

// Clusters of one layer: cut the average-linkage dendrogram at kClusterDistance.
std::vector<std::vector<int>> clusters(const HeadSimilarity& s) {
    std::vector<int> parent(size_t(s.heads) + s.merges.size());
    std::iota(parent.begin(), parent.end(), 0);
    auto find = [&](int x) {
        while (parent[size_t(x)] != x) x = parent[size_t(x)] = parent[size_t(parent[size_t(x)])];
        return x;
    };
    for (size_t m = 0; m < s.merges.size(); ++m) {
        const auto& mg = s.merges[m];
        if (mg.height > kClusterDistance) break;  // UPGMA heights never decrease
        const int id = s.heads + int(m);
        if (mg.a < 0 || mg.b < 0 || mg.a >= id || mg.b >= id) break;
        parent[size_t(find(mg.a))] = id;
        parent[size_t(find(mg.b))] = id;
    }
    std::map<int, std::vector<int>> groups;
    for (int h = 0; h < s.heads; ++h) groups[find(h)].push_back(h);
    std::vector<std::vector<int>> out;
    for (auto& [root, members] : groups) out.push_back(members);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.size() > b.size() || (a.size() == b.size() && a < b); });
    return out;
}

ReportSection summarySection(const ReportData& d) {
    ReportSection s{QStringLiteral("summary"), QStringLiteral("Trace summary"), {}};
    const Trace& t = *d.trace;
    const TraceMetadata& m = t.metadata();
    ReportTable tab{{QStringLiteral("field"), QStringLiteral("value")}, {}};
    auto row = [&](const QString& k, const QString& v) { tab.rows.push_back({k, v}); };
    row(QStringLiteral("file"), str(t.path()));
    row(QStringLiteral("model"), str(m.model));
    row(QStringLiteral("source"), str(m.source));
    row(QStringLiteral("kind"), QString::fromLatin1(traceKindName(m.kind)));
    row(QStringLiteral("tokens (T)"), QString::number(t.tokens()));
    row(QStringLiteral("layers"), QString::number(t.numLayers()));
    if (t.numLayers() > 0) {
        const LayerConfig& c = t.config(0);
        row(QStringLiteral("heads / kv heads / head dim (layer 0)"),
            QStringLiteral("%1 / %2 / %3").arg(c.heads).arg(c.kvHeads).arg(c.headDim));
        row(QStringLiteral("mask (layer 0)"),
            QStringLiteral("%1%2%3")
                .arg(c.causal ? QStringLiteral("causal") : QStringLiteral("bidirectional"))
                .arg(c.slidingWindow > 0 ? QStringLiteral(", window %1").arg(c.slidingWindow) : QString())
                .arg(c.alibi ? QStringLiteral(", ALiBi") : QString()));
    }
    row(QStringLiteral("dtype"), QString::fromLatin1(dtypeName(t.dtype())));
    row(QStringLiteral("file size"), QStringLiteral("%1 MiB").arg(num(double(t.fileSize()) / (1024.0 * 1024.0))));
    row(QStringLiteral("analysed heads"), QString::number(d.analysis.heads.size()));
    s.table(std::move(tab));
    if (!m.text.empty()) {
        QString text = str(m.text);
        if (text.size() > kTextPreviewChars) text = text.left(kTextPreviewChars) + QStringLiteral("…");
        s.paragraph(QStringLiteral("Input text: “%1”").arg(text.simplified()));
    }
    for (const auto& w : t.warnings()) s.paragraph(QStringLiteral("Warning: %1").arg(str(w)));
    return s;
}

std::vector<std::pair<int, int>> selectedPairs(const ReportData& d) {
    std::vector<std::pair<int, int>> out;
    for (const auto& h : d.selected) out.push_back({h.layer, h.head});
    return out;
}

ReportSection overviewSection(const ReportData& d) {
    ReportSection s{QStringLiteral("overview"), QStringLiteral("Model overview"), {}};
    s.paragraph(
        QStringLiteral("Every analysed head, layers by rows. Outlined cells are the heads shown in detail below."));
    ReportTable tab{{QStringLiteral("layer"), QStringLiteral("heads"), QStringLiteral("sink rate %"),
                     QStringLiteral("hidden-sink heads"), QStringLiteral("median entropy (nats)"),
                     QStringLiteral("density @0.9"), QStringLiteral("roles")},
                    {}};
    for (const auto& l : d.analysis.layers) {
        QStringList roles;
        for (const auto& [label, n] : l.roles) roles << QStringLiteral("%1 %2").arg(str(label)).arg(n);
        tab.rows.push_back({QString::number(l.layer), QString::number(l.heads), num(l.sinkRate),
                            QString::number(l.hiddenSinkHeads), num(l.medianEntropy), num(l.density),
                            roles.join(QStringLiteral(", "))});
    }
    s.table(std::move(tab));
    const auto sel = selectedPairs(d);
    s.figure(headGridFigure(d.analysis, GridMetric::EntropyNormalized, sel), QStringLiteral("grid-entropy"),
             QStringLiteral("Normalized entropy: 0 = one key, 1 = uniform over the visible keys."));
    s.figure(headGridFigure(d.analysis, GridMetric::SinkScore, sel), QStringLiteral("grid-sink"),
             QStringLiteral("First-token sink score alpha_0 (a sink above 0.3)."));
    s.figure(headGridFigure(d.analysis, GridMetric::Density, sel), QStringLiteral("grid-density"),
             QStringLiteral("Share of allowed 128-blocks needed to keep 90% of the attention mass."));
    s.figure(headGridFigure(d.analysis, GridMetric::RoleScore, sel), QStringLiteral("grid-role"),
             QStringLiteral("Strongest of the previous-token, next-token, induction and duplicate-token scores."));
    return s;
}

ReportSection sinkSection(const ReportData& d) {
    ReportSection s{QStringLiteral("sinks"), QStringLiteral("Attention sinks"), {}};
    const QStringList tokens = traceTokens(d.trace->metadata());
    s.paragraph(
        QStringLiteral(
            "Model sink rate: %1% of heads have a first-token sink (alpha_0 > %2). Hidden sinks: keys after the "
            "first with alpha_k > %3.")
            .arg(num(d.analysis.sinkRate))
            .arg(d.analysis.options.head.sinks.firstTokenEps)
            .arg(d.analysis.options.head.sinks.hiddenThreshold));
    s.figure(sinkRateFigure(d.analysis), QStringLiteral("sink-rate"),
             QStringLiteral("First-token sink rate per layer."));
    ReportTable tab{{QStringLiteral("head"), QStringLiteral("alpha_0"), QStringLiteral("first-token sink"),
                     QStringLiteral("hidden sinks (key token alpha)")},
                    {}};
    const HeadAnalysis* strongestHidden = nullptr;
    double strongest = 0;
    int quiet = 0;
    for (const auto& h : d.analysis.heads) {
        if (!h.sinks.firstTokenSink && h.sinks.hiddenSinks.empty()) {
            ++quiet;
            continue;
        }
        QStringList hidden;
        for (size_t i = 0; i < h.sinks.hiddenSinks.size(); ++i) {
            const int64_t k = h.sinks.hiddenSinks[i];
            const double a = size_t(k) < h.sinks.alpha.size() ? h.sinks.alpha[size_t(k)] : NAN;
            if (a > strongest) strongest = a, strongestHidden = &h;
            if (int(i) < kMaxListedSinks)
                hidden << QStringLiteral("%1 “%2” %3").arg(k).arg(tokenAt(tokens, k).trimmed()).arg(num(a, 2));
        }
        if (int(h.sinks.hiddenSinks.size()) > kMaxListedSinks)
            hidden << QStringLiteral("+%1 more").arg(h.sinks.hiddenSinks.size() - kMaxListedSinks);
        tab.rows.push_back({headName(h.layer, h.head), num(h.sinks.alpha0),
                            h.sinks.firstTokenSink ? QStringLiteral("yes") : QStringLiteral("no"),
                            hidden.join(QStringLiteral("; "))});
    }
    s.table(std::move(tab));
    s.paragraph(QStringLiteral("%1 heads have no sink.").arg(quiet));
    const HeadAnalysis* shown = strongestHidden;
    if (!shown && !d.analysis.heads.empty())
        shown = &*std::max_element(
            d.analysis.heads.begin(), d.analysis.heads.end(),
            [](const HeadAnalysis& a, const HeadAnalysis& b) { return a.sinks.alpha0 < b.sinks.alpha0; });
    if (shown)
        s.figure(sinkFigure(*shown, tokens, d.analysis.options.head.sinks), QStringLiteral("sink-alpha"),
                 QStringLiteral("alpha_k per key of %1 (%2).")
                     .arg(headName(shown->layer, shown->head), strongestHidden
                                                                   ? QStringLiteral("the strongest hidden sink")
                                                                   : QStringLiteral("the strongest first-token sink")));
    return s;
}

ReportSection sparsitySection(const ReportData& d) {
    ReportSection s{QStringLiteral("sparsity"), QStringLiteral("Sparsity"), {}};
    s.paragraph(
        QStringLiteral("Density: the share of allowed blocks needed per block-row to reach attention mass gamma. "
                       "Recall: the attention mass a candidate mask keeps; output error: ‖O_mask − O‖/‖O‖."));
    s.figure(densityFigure(d.analysis, kSummaryBlockSize), QStringLiteral("density-gamma"),
             QStringLiteral("Density against gamma, mean over the heads of each layer."));
    s.figure(maskRecallFigure(d.analysis), QStringLiteral("mask-recall"),
             QStringLiteral("Mean recall of each candidate mask."));
    std::vector<QString> order;
    std::map<QString, std::array<double, 4>> acc;  // recall, error, kept, n
    for (const auto& h : d.analysis.heads)
        for (const auto& m : h.masks) {
            const QString n =
                str(m.name) +
                (m.params.empty() ? QString() : QStringLiteral(" (") + str(m.params) + QStringLiteral(")"));
            if (!acc.count(n)) order.push_back(n), acc[n] = {0, 0, 0, 0};
            auto& a = acc[n];
            a[0] += m.recall, a[1] += m.outputError, a[2] += m.keptFraction, a[3] += 1;
        }
    ReportTable tab{{QStringLiteral("mask"), QStringLiteral("mean recall"), QStringLiteral("mean output error"),
                     QStringLiteral("mean kept fraction")},
                    {}};
    for (const auto& n : order) {
        const auto& a = acc[n];
        tab.rows.push_back({n, num(a[0] / a[3]), num(a[1] / a[3]), num(a[2] / a[3])});
    }
    s.table(std::move(tab));
    return s;
}

ReportSection rolesSection(const ReportData& d) {
    ReportSection s{QStringLiteral("roles"), QStringLiteral("Head roles and similarity"), {}};
    ReportTable tab{{QStringLiteral("head"), QStringLiteral("role"), QStringLiteral("evidence"),
                     QStringLiteral("entropy"), QStringLiteral("mean distance")},
                    {}};
    for (const auto& h : d.analysis.heads)
        tab.rows.push_back({headName(h.layer, h.head), str(h.role.label), str(h.role.evidence), num(h.stats.entropy),
                            num(h.stats.meanDistance)});
    s.table(std::move(tab));
    if (d.analysis.similarity.empty()) return s;
    ReportTable cl{{QStringLiteral("layer"), QStringLiteral("clusters (JS distance ≤ 0.5)")}, {}};
    for (const auto& sim : d.analysis.similarity) {
        QStringList groups;
        for (const auto& c : clusters(sim)) {
            QStringList members;
            for (int h : c) members << QStringLiteral("H%1").arg(h);
            groups << QStringLiteral("{%1}").arg(members.join(QLatin1Char(' ')));
        }
        cl.rows.push_back({QString::number(sim.layer), groups.join(QLatin1Char(' '))});
    }
    s.table(std::move(cl));
    const int n = int(d.analysis.similarity.size());
    const int shown = std::min(n, kMaxSimilarityFigures);
    for (int i = 0; i < shown; ++i) {
        // Evenly spaced layers, first and last included.
        const int idx = shown == 1 ? 0 : int(std::lround(double(i) * (n - 1) / (shown - 1)));
        const auto& sim = d.analysis.similarity[size_t(idx)];
        s.figure(similarityFigure(sim), QStringLiteral("similarity-L%1").arg(sim.layer),
                 QStringLiteral("Layer %1: 1 − JS distance between heads, in clustering order.").arg(sim.layer));
    }
    return s;
}

ReportSection headsSection(const ReportData& d) {
    ReportSection s{QStringLiteral("heads"), QStringLiteral("Selected heads at three scales"), {}};
    const QStringList tokens = traceTokens(d.trace->metadata());
    for (const auto& m : d.maps) {
        const QString name = headName(m.ref.layer, m.ref.head);
        const QString stem = QStringLiteral("map-L%1-H%2").arg(m.ref.layer).arg(m.ref.head);
        for (const auto& h : d.analysis.heads)
            if (h.layer == m.ref.layer && h.head == m.ref.head)
                s.paragraph(QStringLiteral("%1: %2 (%3).").arg(name, str(h.role.label), str(h.role.evidence)));
        s.figure(mapFigure(m.overview, tokens, false, name + QStringLiteral(": whole sequence")),
                 stem + QStringLiteral("-overview"),
                 QStringLiteral("%1, overview of all %2 tokens (mean pooling, log scale).")
                     .arg(name)
                     .arg(d.analysis.tokens));
        s.figure(mapFigure(m.zoom, tokens, true, name + QStringLiteral(": zoom")), stem + QStringLiteral("-zoom"),
                 QStringLiteral("%1, a diagonal window in the middle of the sequence (max pooling).").arg(name));
        const MapRect& wr = m.window.rect;
        s.figure(mapFigure(m.window, tokens, false, name + QStringLiteral(": token level")),
                 stem + QStringLiteral("-tokens"),
                 QStringLiteral(
                     "%1, the last %2 queries against keys %3–%4 (around the key the last query attends to most), "
                     "one cell per token.")
                     .arg(name)
                     .arg(wr.q1 - wr.q0)
                     .arg(wr.k0)
                     .arg(wr.k1 - 1));
        s.figure(tokenFigure({m.window}, {name}, tokens, name + QStringLiteral(": token view")),
                 stem + QStringLiteral("-lines"),
                 QStringLiteral("%1, the same window as lines from queries (left) to keys (right).").arg(name));
    }
    return s;
}

void flattenJson(const Json& j, const QString& prefix, ReportTable& tab) {
    if (j.isObject()) {
        for (const auto& [k, v] : j.asObject())
            flattenJson(v, prefix.isEmpty() ? str(k) : prefix + QLatin1Char('.') + str(k), tab);
    } else if (j.isArray()) {
        for (size_t i = 0; i < j.asArray().size(); ++i)
            flattenJson(j.asArray()[i], prefix + QStringLiteral("[%1]").arg(i), tab);
    } else if (!j.isNull()) {
        tab.rows.push_back({prefix, j.isString() ? str(j.asString()) : str(j.dump())});
    }
}

ReportSection profileSection(const ReportData& d) {
    ReportSection s{QStringLiteral("profile"), QStringLiteral("Profile of attention variants"), {}};
    if (!d.profile) {
        s.paragraph(QStringLiteral("The profile could not run: %1").arg(str(d.profileNote)));
        return s;
    }
    const ProfileReport& p = *d.profile;
    s.paragraph(QStringLiteral("Backend: %1 (%2), %3 mode, %4 s.")
                    .arg(str(p.backend), str(p.backendDescription), str(p.mode), num(p.wallSeconds)));
    if (!p.fallbackReason.empty()) s.paragraph(QStringLiteral("CPU fallback: %1").arg(str(p.fallbackReason)));
    if (!p.metricsNote.empty()) s.paragraph(QStringLiteral("Metrics: %1").arg(str(p.metricsNote)));
    for (const auto& shape : p.shapes) {
        ReportTable tab{{QStringLiteral("variant"), QStringLiteral("median ms"), QStringLiteral("IQR ms"),
                         QStringLiteral("rel. std"), QStringLiteral("n"), QStringLiteral("TFLOP/s"),
                         QStringLiteral("GB/s"), QStringLiteral("× dense"), QStringLiteral("density"),
                         QStringLiteral("rel. error"), QStringLiteral("recall")},
                        {}};
        for (const auto& v : shape.variants) {
            if (!v.error.empty()) {
                tab.rows.push_back(
                    {str(v.label), QStringLiteral("error: ") + str(v.error), {}, {}, {}, {}, {}, {}, {}, {}, {}});
                continue;
            }
            tab.rows.push_back({str(v.label) + (v.isDense ? QStringLiteral(" (dense)") : QString()),
                                num(v.stats.median, 4), num(v.stats.iqr), num(v.stats.relStdDev),
                                QString::number(v.stats.n), num(v.tflops), num(v.gbps), num(v.ratioToDense),
                                num(v.density), v.relError < 0 ? QStringLiteral("–") : num(v.relError),
                                v.recall < 0 ? QStringLiteral("–") : num(v.recall)});
        }
        s.paragraph(QStringLiteral("Shape: %1.").arg(str(shape.description)));
        s.table(std::move(tab));
        s.figure(profileTimeFigure(shape, p.backend), QStringLiteral("profile-time"),
                 QStringLiteral("Median time per variant."));
        s.figure(paretoFigure(shape, p.backend), QStringLiteral("profile-pareto"),
                 QStringLiteral(
                     "Time against relative output error; the dashed line joins variants nothing beats on both."));
        break;  // reports profile one shape (the first selected head)
    }
    ReportTable env{{QStringLiteral("environment"), QStringLiteral("value")}, {}};
    flattenJson(p.environment, QString(), env);
    s.table(std::move(env));
    return s;
}

}  // namespace

void ReportSection::paragraph(const QString& text) {
    ReportBlock b;
    b.kind = ReportBlock::Kind::Paragraph;
    b.text = text;
    blocks.push_back(std::move(b));
}

void ReportSection::table(ReportTable t) {
    ReportBlock b;
    b.kind = ReportBlock::Kind::Table;
    b.table = std::move(t);
    blocks.push_back(std::move(b));
}

void ReportSection::figure(Figure f, const QString& name, const QString& caption) {
    ReportBlock b;
    b.kind = ReportBlock::Kind::Figure;
    b.figure = std::move(f);
    b.name = name;
    b.text = caption;
    blocks.push_back(std::move(b));
}

/// Vision traces: each head's mean attention distance in patches and the prefix tokens' share.
ReportSection visionSection(const ReportData& d) {
    const VisionAnalysis& v = *d.vision;
    ReportSection s{QStringLiteral("vision"), QStringLiteral("Vision: attention distance and prefix tokens"), {}};
    QStringList names;
    for (const auto& n : v.prefixNames) names << str(n);
    s.paragraph(
        QStringLiteral("Patch grid %1×%2 with %3 prefix token(s)%4. Distance: the patch queries' mean attention "
                       "distance over the patch keys, in patches (ViT's mean attention distance). Prefix "
                       "share: their mean attention mass on the prefix tokens, and the token that takes the "
                       "most (a register sink, as in “Vision Transformers Need Registers”).")
            .arg(v.layout.rows)
            .arg(v.layout.cols)
            .arg(v.layout.prefix)
            .arg(names.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(names.join(QStringLiteral(" ")))));
    ReportTable tab{{QStringLiteral("head"), QStringLiteral("distance (patches)"), QStringLiteral("prefix share"),
                     QStringLiteral("top prefix token")},
                    {}};
    for (const VisionHeadStats& h : v.heads) {
        const int64_t top = h.topPrefixToken();
        tab.rows.push_back(
            {headName(h.layer, h.head), num(h.patchDistance), top < 0 ? QStringLiteral("-") : num(h.prefixShare),
             top < 0 ? QStringLiteral("-")
                     : QStringLiteral("%1 %2").arg(names[int(top)]).arg(num(h.prefixTokenShare[size_t(top)]))});
    }
    s.table(std::move(tab));
    return s;
}

ReportDocument buildReportDocument(const ReportData& d) {
    ReportDocument doc;
    doc.title = QStringLiteral("attnscope report: %1")
                    .arg(str(d.trace->metadata().model.empty() ? d.trace->path() : d.trace->metadata().model));
    doc.subtitle = QStringLiteral("%1 · %2 tokens · %3 layers · attnscope %4")
                       .arg(str(d.trace->path()))
                       .arg(d.trace->tokens())
                       .arg(d.trace->numLayers())
                       .arg(QStringLiteral(ATTNSCOPE_VERSION));
    doc.sections.push_back(summarySection(d));
    doc.sections.push_back(overviewSection(d));
    doc.sections.push_back(sinkSection(d));
    doc.sections.push_back(sparsitySection(d));
    doc.sections.push_back(rolesSection(d));
    if (d.vision) doc.sections.push_back(visionSection(d));
    if (!d.maps.empty()) doc.sections.push_back(headsSection(d));
    if (d.profile || !d.profileNote.empty()) doc.sections.push_back(profileSection(d));
    return doc;
}

}  // namespace attnscope
