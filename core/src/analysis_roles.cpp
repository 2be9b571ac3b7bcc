// Head roles (metrics: "Head roles"): the token-template and document sums of pass 2
// (duplicate, induction, repeated-context induction, same-document mass), the column and offset
// profiles (local band, vertical and slash scores), and one label per head with the evidence
// behind it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <unordered_map>

#include "analysis_accumulator.h"

namespace attnscope {

namespace {

/// Sum of the n largest values of v.
double topSum(std::vector<float> v, int64_t n) {
    n = std::min<int64_t>(n, int64_t(v.size()));
    if (n <= 0) return 0;
    std::partial_sort(v.begin(), v.begin() + n, v.end(), std::greater<float>());
    double s = 0;
    for (int64_t x = 0; x < n; ++x) s += v[size_t(x)];
    return s;
}

std::string fmt(const char* name, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s=%.2f", name, value);
    return buf;
}

}  // namespace

std::vector<int64_t> ngramIds(const std::vector<int64_t>& ids, int64_t context) {
    const int64_t T = int64_t(ids.size());
    std::vector<int64_t> out(size_t(T), -1);
    if (context < 1) return out;
    // Polynomial hash of the n-gram ending at i, verified on lookup (collisions cost only time).
    constexpr uint64_t kHashBase = 1000003;
    std::unordered_map<uint64_t, std::vector<int64_t>> seen;  // hash -> first position of each distinct n-gram
    auto same = [&](int64_t a, int64_t b) {
        for (int64_t x = 0; x < context; ++x)
            if (ids[size_t(a - x)] != ids[size_t(b - x)]) return false;
        return true;
    };
    int64_t next = 0;
    for (int64_t i = context - 1; i < T; ++i) {
        uint64_t h = 0;
        for (int64_t x = context - 1; x >= 0; --x) h = h * kHashBase + uint64_t(ids[size_t(i - x)]);
        auto& firsts = seen[h];
        for (int64_t p : firsts)
            if (same(p, i)) {
                out[size_t(i)] = out[size_t(p)];
                break;
            }
        if (out[size_t(i)] < 0) {
            out[size_t(i)] = next++;
            firsts.push_back(i);
        }
    }
    return out;
}

namespace detail {

TokenTemplates buildTemplates(const std::vector<int64_t>& ids, int64_t tokens) {
    TokenTemplates t;
    if (int64_t(ids.size()) != tokens) return t;
    t.enabled = true;
    std::unordered_map<int64_t, size_t> slot;
    for (int64_t i = 0; i < tokens; ++i) {
        auto [it, inserted] = slot.emplace(ids[size_t(i)], t.storage.size());
        if (inserted) t.storage.emplace_back();
        t.storage[it->second].push_back(i);
    }
    t.positions.resize(size_t(tokens));
    for (int64_t i = 0; i < tokens; ++i) t.positions[size_t(i)] = &t.storage[slot[ids[size_t(i)]]];
    return t;
}

RepeatEntries buildRepeats(const std::vector<int64_t>& ids, int64_t tokens, int64_t context) {
    RepeatEntries r;
    r.rowStart.assign(size_t(tokens + 1), 0);
    if (int64_t(ids.size()) != tokens || context < 1) return r;
    const std::vector<int64_t> ngram = ngramIds(ids, context);
    std::unordered_map<int64_t, std::vector<int64_t>> seen;  // n-gram id -> positions so far
    for (int64_t i = 0; i < tokens; ++i) {
        if (ngram[size_t(i)] >= 0) {
            auto& list = seen[ngram[size_t(i)]];
            for (int64_t p : list) r.keys.push_back(p + 1);
            list.push_back(i);
        }
        r.rowStart[size_t(i + 1)] = int64_t(r.keys.size());
    }
    return r;
}

DocumentRuns buildRuns(const std::vector<int32_t>& docs, int64_t tokens) {
    DocumentRuns r;
    if (int64_t(docs.size()) != tokens || tokens == 0) return r;
    r.enabled = true;
    r.start.resize(size_t(tokens));
    r.end.resize(size_t(tokens));
    int64_t s = 0;
    for (int64_t i = 1; i <= tokens; ++i) {
        if (i == tokens || docs[size_t(i)] != docs[size_t(i - 1)]) {
            for (int64_t j = s; j < i; ++j) r.start[size_t(j)] = s, r.end[size_t(j)] = i;
            s = i;
        }
    }
    return r;
}

TokenRoleSums::TokenRoleSums(int64_t tokens, const HeadContext& context, const RoleOptions& options)
    : context(context), options(options), templates(buildTemplates(context.tokenIds, tokens)),
      repeats(buildRepeats(context.tokenIds, tokens, options.repeatContext)),
      runs(buildRuns(context.documents, tokens)), haveDocs(int64_t(context.documents.size()) == tokens) {
    for (auto* vec : {&duplicate, &induction, &repeat, &document}) vec->assign(size_t(tokens), 0.0);
}

void TokenRoleSums::addTile(int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    if (!templates.enabled && repeats.keys.empty() && !haveDocs) return;
    const int64_t c = P.cols(), kEnd = kStart + c;
    const RoleOptions& ro = options;
    for (int64_t a = 0; a < P.rows(); ++a) {
        const int64_t i = qStart + a;
        const auto row = P.row(a);
        const size_t si = size_t(i);
        if (templates.enabled) {
            const std::vector<int64_t>& pos = *templates.positions[si];
            // Duplicate: tok_j == tok_i, j < i (TransformerLens tril with zero diagonal).
            const int64_t dLo = std::max<int64_t>(kStart, ro.excludeBos ? 1 : 0), dHi = std::min(kEnd, i);
            for (auto it = std::lower_bound(pos.begin(), pos.end(), dLo); it != pos.end() && *it < dHi; ++it)
                duplicate[si] += row(*it - kStart);
            // Induction: tok_{j-1} == tok_i with j - 1 < i, i.e. j = p + 1 ≤ i.
            const int64_t jHi = std::min(kEnd, i + 1);
            for (auto it = std::lower_bound(pos.begin(), pos.end(), kStart - 1); it != pos.end() && *it + 1 < jHi;
                 ++it) {
                const int64_t j = *it + 1;
                if (j < kStart || (ro.excludeCurrentToken && j == i)) continue;
                induction[si] += row(j - kStart);
            }
        }
        if (!repeats.keys.empty()) {
            const auto b0 = repeats.keys.begin() + repeats.rowStart[si],
                       b1 = repeats.keys.begin() + repeats.rowStart[si + 1];
            for (auto it = std::lower_bound(b0, b1, kStart); it != b1 && *it < kEnd; ++it)
                if (!(ro.excludeCurrentToken && *it == i)) repeat[si] += row(*it - kStart);
        }
        if (!haveDocs) continue;
        if (runs.enabled) {
            const int64_t lo = std::max(kStart, runs.start[si]), hi = std::min(kEnd, runs.end[si]);
            if (hi > lo) document[si] += row.segment(lo - kStart, hi - lo).sum();
        } else {
            for (int64_t b = 0; b < c; ++b)
                if (context.documents[size_t(kStart + b)] == context.documents[si]) document[si] += row(b);
        }
    }
}

void TokenRoleSums::moveInto(HeadSums& out) {
    out.duplicate = std::move(duplicate);
    out.induction = std::move(induction);
    out.repeat = std::move(repeat);
    out.document = std::move(document);
}

ProfileSums::ProfileSums(int64_t tokens, bool causal, int workers)
    : origin(causal ? 0 : tokens - 1), column(size_t(workers), std::vector<double>(size_t(tokens), 0.0)),
      offset(size_t(workers), std::vector<double>(size_t(origin + tokens), 0.0)) {}

void ProfileSums::addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    const int64_t c = P.cols(), kEnd = kStart + c;
    std::vector<double>& off = offset[size_t(worker)];
    for (int64_t a = 0; a < P.rows(); ++a) {
        const int64_t i = qStart + a;
        // Slash: offset index o = i - j + origin runs downwards along the row; columns with
        // o < 0 (beyond the diagonal of a causal head) hold no mass.
        const int64_t sHi = std::min(kEnd, i + origin + 1);
        if (sHi <= kStart) continue;
        Eigen::Map<Eigen::ArrayXd> o(off.data() + (i - (sHi - 1) + origin), sHi - kStart);
        o += P.row(a).head(sHi - kStart).reverse().transpose().cast<double>().array();
    }
    Eigen::Map<Eigen::VectorXd>(column[size_t(worker)].data() + kStart, c) +=
        P.colwise().sum().transpose().cast<double>();
}

void ProfileSums::merge(HeadSums& out) {
    for (size_t w = 1; w < column.size(); ++w) {
        for (size_t j = 0; j < column[0].size(); ++j) column[0][j] += column[w][j];
        for (size_t o = 0; o < offset[0].size(); ++o) offset[0][o] += offset[w][o];
    }
    out.column = std::move(column[0]);
    out.offset = std::move(offset[0]);
}

void finishProfiles(HeadAnalysis& h, const HeadSums& sums, const ActiveRows& rows, bool causal, const RoleOptions& o) {
    // Profiles (vertical = columns, slash = offsets), normalised by the number of rows.
    const double invRows = rows.count > 0 ? 1.0 / double(rows.count) : 0.0;
    h.profiles.columnMass.resize(sums.column.size());
    for (size_t j = 0; j < sums.column.size(); ++j) h.profiles.columnMass[j] = float(sums.column[j] * invRows);
    h.profiles.offsetOrigin = causal ? 0 : sums.tokens - 1;
    h.profiles.offsetMass.resize(sums.offset.size());
    for (size_t x = 0; x < sums.offset.size(); ++x) h.profiles.offsetMass[x] = float(sums.offset[x] * invRows);

    const auto& off = h.profiles.offsetMass;
    const int64_t origin = h.profiles.offsetOrigin;
    double local = 0;
    std::vector<float> far;
    for (size_t x = 0; x < off.size(); ++x) {
        const int64_t d = int64_t(x) - origin;
        if (std::abs(d) < o.localWidth)
            local += off[x];
        else
            far.push_back(off[x]);
    }
    h.roles.localMass = local;
    h.roles.slashScore = topSum(std::move(far), o.profileTop);
    const auto& col = h.profiles.columnMass;
    h.roles.verticalScore = col.size() > 1 ? topSum(std::vector<float>(col.begin() + 1, col.end()), o.profileTop) : 0;
}

namespace {

/// Row i's mass with TransformerLens' exclusions: the "mul" score's denominator Σ A' where A'
/// has column 0 (exclude_bos) and the diagonal (exclude_current_token) zeroed.
double roleRowMass(const HeadSums& s, const RoleOptions& ro, int64_t i) {
    const size_t si = size_t(i);
    double rowMass = s.mass[si];
    if (ro.excludeBos) rowMass -= s.first[si];
    if (ro.excludeCurrentToken) rowMass -= s.self[si];
    if (ro.excludeBos && ro.excludeCurrentToken && i == 0) rowMass += s.self[si];
    return rowMass;
}

/// Previous-token, duplicate and induction scores (over every row and over the rows their
/// template matches).
void templateScores(RoleScores& rs, const HeadSums& s, const HeadContext& context, const RoleOptions& ro,
                    const ActiveRows& rows) {
    const TokenTemplates templ = buildTemplates(context.tokenIds, s.tokens);
    double denom = 0, dupRowsMass = 0, indRowsMass = 0, prevNum = 0, dupNum = 0, indNum = 0;
    for (int64_t i = 0; i < s.tokens; ++i) {
        const size_t si = size_t(i);
        if (!rows.ok[si]) continue;
        const double rowMass = roleRowMass(s, ro, i);
        denom += rowMass;
        prevNum += (ro.excludeBos && i == 1) ? 0.0 : s.prev[si];
        dupNum += s.duplicate[si];
        indNum += s.induction[si];
        if (!templ.enabled) continue;
        const std::vector<int64_t>& pos = *templ.positions[si];
        const auto firstPos = std::lower_bound(pos.begin(), pos.end(), ro.excludeBos ? 1 : 0);
        if (firstPos != pos.end() && *firstPos < i) dupRowsMass += rowMass, ++rs.duplicateRows;
        // Induction entry j = p + 1 ≤ i (≠ i when the current token is excluded).
        const int64_t jMax = ro.excludeCurrentToken ? i - 1 : i;
        if (!pos.empty() && pos.front() + 1 <= jMax) indRowsMass += rowMass, ++rs.inductionRows;
    }
    rs.previousToken = denom > 0 ? prevNum / denom : 0;
    rs.nextToken = rows.mean(s.next);
    rs.duplicateToken = denom > 0 ? dupNum / denom : 0;
    rs.induction = denom > 0 ? indNum / denom : 0;
    rs.duplicateMatched = dupRowsMass > 0 ? dupNum / dupRowsMass : 0;
    rs.inductionMatched = indRowsMass > 0 ? indNum / indRowsMass : 0;
}

/// Induction on repeated text: over the rows whose n-gram occurred before.
void repeatScore(RoleScores& rs, const HeadSums& s, const HeadContext& context, const RoleOptions& ro,
                 const ActiveRows& rows) {
    if (int64_t(context.tokenIds.size()) != s.tokens) return;
    const std::vector<int64_t> ngram = ngramIds(context.tokenIds, ro.repeatContext);
    std::vector<int64_t> firstOfNgram;  // first position of each n-gram id: rows after it have entries
    for (int64_t i = 0; i < int64_t(ngram.size()); ++i)
        if (ngram[size_t(i)] >= 0 && ngram[size_t(i)] >= int64_t(firstOfNgram.size())) firstOfNgram.push_back(i);
    double repNum = 0, repRowsMass = 0;
    for (int64_t i = 0; i < s.tokens; ++i) {
        const size_t si = size_t(i);
        if (!rows.ok[si] || ngram[si] < 0 || firstOfNgram[size_t(ngram[si])] >= i) continue;
        repNum += s.repeat[si];
        repRowsMass += roleRowMass(s, ro, i);
        ++rs.repeatRows;
    }
    rs.inductionRepeat = repRowsMass > 0 ? repNum / repRowsMass : 0;
}

/// Same-document mass, and the head's mean distance against uniform attention over the document.
void documentScores(HeadAnalysis& h, const HeadSums& s, const AttentionSpec& spec, const HeadContext& context,
                    const ActiveRows& rows) {
    if (int64_t(context.documents.size()) != s.tokens) return;
    h.roles.documentMass = rows.mean(s.document);
    const DocumentRuns runs = buildRuns(context.documents, s.tokens);
    if (!runs.enabled || rows.count == 0) return;
    double docDist = 0;
    for (int64_t i = 0; i < s.tokens; ++i) {
        const size_t si = size_t(i);
        if (!rows.ok[si]) continue;
        // Mean |i - j| of uniform attention over the row's document keys [s, e].
        const double st = double(runs.start[si]), e = spec.mask.causal ? double(i) : double(runs.end[si] - 1);
        const double left = double(i) - st, right = e - double(i);
        docDist += (left * (left + 1) / 2 + right * (right + 1) / 2) / (e - st + 1);
    }
    const double uniform = docDist / double(rows.count);
    h.roles.documentSpread = uniform > 0 ? h.stats.meanDistance / uniform : 0;
}

}  // namespace

void finishRoles(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec, const HeadContext& context,
                 const RoleOptions& options, const ActiveRows& rows) {
    templateScores(h.roles, sums, context, options, rows);
    repeatScore(h.roles, sums, context, options, rows);
    documentScores(h, sums, spec, context, rows);
}

}  // namespace detail
HeadRole classifyHead(const HeadAnalysis& h, const RoleOptions& o) {
    const RoleScores& r = h.roles;
    const SinkInfo& s = h.sinks;
    HeadRole role;
    // Evidence always lists the main scores, so a reader can judge the label.
    // Induction: on repeated text when there is enough of it, else on every template row.
    const bool useRepeat = r.repeatRows >= o.minRepeatRows;
    const double induction = useRepeat ? r.inductionRepeat : r.inductionMatched;
    std::string ev = fmt(useRepeat ? "ind(rep)" : "ind", induction) + " " + fmt("dup", r.duplicateMatched) + " " +
                     fmt("prev", r.previousToken) + " " + fmt("alpha0", s.alpha0) + " " +
                     fmt("Hn", h.stats.entropyNormalized);
    // A "document" head keeps its mass in its own document and spreads over it (a local head also
    // stays in its document, but only near the diagonal).
    const bool document = r.documentMass >= o.documentThreshold && r.documentSpread >= 0.5;
    if (r.inductionRows > 0 && induction >= o.inductionThreshold)
        role.label = "induction";
    else if (r.duplicateRows > 0 && r.duplicateMatched >= o.duplicateThreshold)
        role.label = "duplicate-token";
    else if (r.previousToken >= o.positionalThreshold)
        role.label = "previous-token";
    else if (r.nextToken >= o.positionalThreshold)
        role.label = "next-token";
    else if (document)
        role.label = "document", ev += " " + fmt("doc", r.documentMass) + " " + fmt("spread", r.documentSpread);
    else if (r.localMass >= o.localThreshold)
        role.label = "local", ev += " " + fmt("local", r.localMass);
    else if (s.firstTokenSink || !s.hiddenSinks.empty()) {
        // The strongest sink names the head: a hidden sink often sits behind a weaker first-token one.
        // Key 0 competes only when it is a first-token sink (alpha_0 > eps): a head whose alpha_0
        // is below eps but above its hidden sinks' alpha is still a hidden-sink head, not a "sink".
        int64_t strongest = s.firstTokenSink ? 0 : -1;
        for (int64_t k : s.hiddenSinks)
            if (strongest < 0 || s.alpha[size_t(k)] > s.alpha[size_t(strongest)]) strongest = k;
        if (strongest > 0) {
            role.label = "hidden-sink";
            ev += " at=" + std::to_string(strongest) + " " + fmt("alpha", s.alpha[size_t(strongest)]);
        } else {
            role.label = "sink";
        }
    } else if (r.verticalScore >= o.verticalThreshold)
        role.label = "vertical", ev += " " + fmt("vert", r.verticalScore);
    else if (r.slashScore >= o.slashThreshold)
        role.label = "slash", ev += " " + fmt("slash", r.slashScore);
    else if (h.stats.entropyNormalized >= o.broadNormalizedEntropy)
        role.label = "broad";
    else
        role.label = "mixed";
    role.evidence = ev;
    return role;
}

}  // namespace attnscope
