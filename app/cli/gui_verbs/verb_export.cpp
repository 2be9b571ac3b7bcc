// attnscope-cli export: one publication figure of a trace (the same renderer as the GUI's export).
#include <algorithm>
#include <cstdio>

#include <QString>

#include "attnscope/analysis.h"
#include "attnscope/map_service.h"
#include "attnscope/trace.h"
#include "cli.h"
#include "figure.h"
#include "figurebuilders.h"
#include "guiapp.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "export";
constexpr int kDefaultWindow = 24;  // token-level views: the last 24 tokens unless --rect says otherwise
constexpr int kMaxTokenWindow = 256;
constexpr int kMaxExportMapSide = 4096;

struct Context {
    std::shared_ptr<const Trace> trace;
    std::shared_ptr<HeadCache> cache;  ///< the map service's heads
    int layer = 0;
    std::vector<int> heads;
    QStringList tokens;
};

Result<MapRect> parseRect(const std::string& text, int64_t T) {
    long long v[4];
    char tail = 0;
    if (std::sscanf(text.c_str(), "%lld,%lld,%lld,%lld%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4)
        return Status(ErrorCode::InvalidArgument, "--rect: expected q0,q1,k0,k1, got '" + text + "'");
    MapRect r{v[0], v[1], v[2], v[3]};
    if (r.q0 < 0 || r.k0 < 0 || r.q1 > T || r.k1 > T || r.q0 >= r.q1 || r.k0 >= r.k1)
        return Status(ErrorCode::InvalidArgument,
                      "--rect: " + text + " is not a non-empty rectangle inside 0.." + std::to_string(T));
    return r;
}

struct HeadQK {
    MatrixRM q, k, v;
    AttentionSpec spec;
};

Result<HeadQK> loadHead(const Trace& t, int layer, int head) {
    HeadQK h;
    auto q = t.head(layer, head, Which::Q);
    if (!q) return q.status();
    auto k = t.head(layer, head, Which::K);
    if (!k) return k.status();
    auto v = t.head(layer, head, Which::V);
    if (!v) return v.status();
    h.q = std::move(q->m), h.k = std::move(k->m), h.v = std::move(v->m);
    h.spec = specForLayer(t.config(layer), head);
    return h;
}

QString headTitle(int layer, int head) { return QStringLiteral("Layer %1 head %2").arg(layer).arg(head); }

Result<HeadAnalysis> analyseOne(const Context& c, const ProgressFn& progress) {
    auto h = loadHead(*c.trace, c.layer, c.heads.front());
    if (!h) return h.status();
    HeadContext ctx{c.trace->metadata().tokenIds, c.trace->metadata().documents};
    auto a = analyzeHead(h->q, h->k, h->v, h->spec, ctx, {}, progress);
    if (a) a->layer = c.layer, a->head = c.heads.front();
    return a;
}

Result<std::vector<Figure>> buildFigures(Args& args, const Context& c, const ProgressFn& progress) {
    const std::string view = args.get("view");
    const int64_t T = c.trace->tokens();
    const int head = c.heads.front();
    std::string error;
    if (view == "map") {
        MapRect rect{0, T, 0, T};
        if (args.has("rect")) {
            auto r = parseRect(args.get("rect"), T);
            if (!r) return r.status();
            rect = *r;
        }
        const auto size = parseMapSize(args.get("size"), kMaxExportMapSide, &error);
        if (!size) return Status(ErrorCode::InvalidArgument, error);
        MapRequest r;
        r.layer = c.layer;
        r.head = head;
        r.rect = rect;
        r.width = size->first;
        r.height = size->second;
        auto map = headMap(*c.cache, r, progress);
        if (!map) return map.status();
        return std::vector<Figure>{mapFigure(map->map, c.tokens, args.get("pool") == "max", headTitle(c.layer, head))};
    }
    if (view == "tokens") {
        MapRect rect{std::max<int64_t>(0, T - kDefaultWindow), T, std::max<int64_t>(0, T - kDefaultWindow), T};
        if (args.has("rect")) {
            auto r = parseRect(args.get("rect"), T);
            if (!r) return r.status();
            rect = *r;
        }
        if (rect.q1 - rect.q0 > kMaxTokenWindow || rect.k1 - rect.k0 > kMaxTokenWindow)
            return Status(ErrorCode::InvalidArgument, "--rect: the token view shows at most 256 tokens per side");
        std::vector<AttentionMap> maps;
        QStringList names;
        for (int hh : c.heads) {
            MapRequest r;
            r.layer = c.layer;
            r.head = hh;
            r.rect = rect;
            r.width = int(rect.k1 - rect.k0);
            r.height = int(rect.q1 - rect.q0);
            auto map = headMap(*c.cache, r);
            if (!map) return map.status();
            maps.push_back(std::move(map->map));
            names << QStringLiteral("H%1").arg(hh);
        }
        return std::vector<Figure>{
            tokenFigure(maps, names, c.tokens, QStringLiteral("Layer %1 token view").arg(c.layer))};
    }
    if (view == "neuron") {
        auto h = loadHead(*c.trace, c.layer, head);
        if (!h) return h.status();
        const auto query = args.has("query") ? args.getInt("query", &error) : std::optional<long long>(T - 1);
        if (!query || *query < 0 || *query >= T)
            return Status(ErrorCode::InvalidArgument, error.empty() ? "--query out of range" : error);
        auto row = attentionRow(h->q, h->k, h->spec, *query, 1);
        if (!row) return row.status();
        long long key = row->top.empty() ? 0 : row->top.front().first;  // default: the key it attends to most
        if (args.has("key")) {
            const auto k = args.getInt("key", &error);
            if (!k || *k < 0 || *k >= T)
                return Status(ErrorCode::InvalidArgument, error.empty() ? "--key out of range" : error);
            key = *k;
        }
        std::vector<float> q(h->q.row(*query).data(), h->q.row(*query).data() + h->q.cols());
        std::vector<float> k(h->k.row(key).data(), h->k.row(key).data() + h->k.cols());
        auto tok = [&](long long i) { return i < c.tokens.size() ? c.tokens[int(i)] : QString::number(i); };
        return std::vector<Figure>{
            neuronFigure(q, k, h->spec.scale, QStringLiteral("%1 “%2”").arg(*query).arg(tok(*query)),
                         QStringLiteral("%1 “%2”").arg(key).arg(tok(key)), row->probabilities[size_t(key)],
                         headTitle(c.layer, head) + QStringLiteral(": neuron view"))};
    }
    if (view == "sinks" || view == "sparsity") {
        auto a = analyseOne(c, progress);
        if (!a) return a.status();
        if (view == "sinks") return std::vector<Figure>{sinkFigure(*a, c.tokens)};
        return std::vector<Figure>{headDensityFigure(*a), headMaskRecallFigure(*a)};
    }
    if (view == "grid") {
        AnalyzeOptions o;
        o.similarity = false;  // the grid needs per-head metrics only
        auto model = analyzeTrace(*c.trace, o, progress);
        if (!model) return model.status();
        const std::string m = args.get("metric");
        GridMetric metric;
        if (m == "entropy")
            metric = GridMetric::EntropyNormalized;
        else if (m == "sink")
            metric = GridMetric::SinkScore;
        else if (m == "density")
            metric = GridMetric::Density;
        else if (m == "role")
            metric = GridMetric::RoleScore;
        else if (m == "distance")
            metric = GridMetric::MeanDistance;
        else
            return Status(ErrorCode::InvalidArgument,
                          "--metric: expected entropy, sink, density, role or distance, got '" + m + "'");
        return std::vector<Figure>{headGridFigure(*model, metric, {{c.layer, head}})};
    }
    return Status(ErrorCode::InvalidArgument,
                  "--view: expected map, grid, tokens, neuron, sinks or sparsity, got '" + view + "'");
}

int runExport(Args& args) {
    args.description(
            "Renders one figure of TRACE to FILE (.png, .svg or .pdf, by extension) with axes, token labels,\n"
            "colour bar and title. --view sparsity writes density against gamma (and, in a PDF, a second page\n"
            "with the mask recall). --rect, --size and --pool shape the map view (--rect also the tokens view,\n"
            "whose token labels appear at one cell per token, up to 64).")
        .positional("TRACE", "the trace (*.attn.safetensors), or 'demo' for the bundled trace")
        .option("o", "output file: .png, .svg or .pdf")
        .option("layer", "layer", "0")
        .option("head", "head (tokens view: a list, e.g. 0,3,5)", "0")
        .option("view", "map, grid, tokens, neuron, sinks or sparsity", "map")
        .mapCellOptions()
        .option("metric", "grid: entropy, sink, density, role or distance", "entropy")
        .option("query", "neuron: query position (default: the last)")
        .option("key", "neuron: key position (default: the key the query attends to most)")
        .option("dpi", "PNG resolution", "300")
        .noProgressFlag()
        .alias("pooling", "pool")  // earlier spellings, hidden: scripts written for them keep working
        .alias("quiet", "no-progress");
    if (!args.parse()) return args.exitCode();
    if (!args.has("o")) return fail(kVerb, "missing -o FILE (.png, .svg or .pdf)");
    const QString out = QString::fromStdString(args.get("o"));
    const auto format = figureFormatFromPath(out);
    if (!format) return fail(kVerb, args.get("o") + ": unknown extension (expected .png, .svg or .pdf)");
    if (Status s = checkOutputFile(args.get("o")); !s) return fail(kVerb, s);  // before the figure is computed
    if (args.get("pool") != "mean" && args.get("pool") != "max")
        return fail(kVerb, "--pool " + args.get("pool") + ": expected mean or max");
    std::string error;
    const auto dpi = args.getDouble("dpi", &error);
    if (!dpi) return fail(kVerb, error);
    if (*dpi < kMinFigureDpi || *dpi > kMaxFigureDpi) return fail(kVerb, "--dpi must be within 36..1200");

    auto trace = openTraceArg(args.get("TRACE"));
    if (!trace) return fail(kVerb, trace.status());
    Context c;
    c.trace = *trace;
    c.cache = std::make_shared<HeadCache>(c.trace, 4);
    if (!c.trace->hasQK()) return fail(kVerb, args.get("TRACE") + ": weights-only trace (no Q/K); export needs Q/K");
    const auto layer = args.getInt("layer", &error);
    if (!layer) return fail(kVerb, error);
    if (*layer < 0 || *layer >= c.trace->numLayers())
        return fail(kVerb, "--layer " + std::to_string(*layer) + " out of range 0.." +
                               std::to_string(c.trace->numLayers() - 1));
    c.layer = int(*layer);
    auto heads = parseIndexList(args.get("head"), c.trace->config(c.layer).heads, "--head", &error);
    if (!heads || heads->empty()) return fail(kVerb, error.empty() ? "--head: no head given" : error);
    c.heads = *heads;
    c.tokens = traceTokens(c.trace->metadata());

    auto app = makeGuiApp();
    auto figures = buildFigures(args, c, progressLine(!args.has("no-progress")));
    if (!figures) return fail(kVerb, figures.status());
    FigureSaveOptions o;
    o.dpi = *dpi;
    const Status st =
        *format == FigureFormat::Pdf ? saveFiguresPdf(*figures, out, o) : saveFigure(figures->front(), out, *format, o);
    if (!st.ok()) return fail(kVerb, st);
    std::printf("%s written (%s)\n", args.get("o").c_str(), figureTitle(figures->front()).toStdString().c_str());
    return 0;
}

}  // namespace

ATTNSCOPE_CLI_VERB(
    "export",
    "export TRACE [--layer L] [--head H] [--view map|grid|tokens|neuron|sinks|sparsity] [--rect q0,q1,k0,k1] "
    "[--size N|WxH] [--pool mean|max] [--metric M] [--query Q] [--key K] [--dpi N] [--no-progress] "
    "-o FILE.{png,svg,pdf}",
    "render one publication figure of a trace to PNG, SVG or PDF", runExport);

}  // namespace attnscope::cli
