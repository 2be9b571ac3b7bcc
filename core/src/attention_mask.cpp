// Tile classification and masking: the engine skips tiles the mask rules out, scores tiles it
// fully allows without any per-element test, and masks only the rest element by element.
#include <algorithm>
#include <cmath>
#include <string>

#include "attention_kernels.h"
#include "attnscope/variant_expr.h"

namespace attnscope::detail {

namespace {
TileClass combine(TileClass a, TileClass b) {
    if (a == TileClass::Empty || b == TileClass::Empty) return TileClass::Empty;
    if (a == TileClass::Partial || b == TileClass::Partial) return TileClass::Partial;
    return TileClass::Full;
}
}  // namespace

MaskPlan::MaskPlan(const AttentionSpec& spec) : m_spec(spec) {
    const auto& docs = spec.mask.documents;
    if (!docs.empty()) {
        m_docRun.resize(docs.size());
        int32_t run = 0;
        for (size_t i = 0; i < docs.size(); ++i) {
            if (i > 0 && docs[i] != docs[i - 1]) ++run;
            m_docRun[i] = run;
        }
    }
}

TileClass MaskPlan::positional(int64_t pa, int64_t pb, int64_t ka, int64_t kb) const {
    const MaskSpec& m = m_spec.mask;
    const int64_t dMin = pa - (kb - 1), dMax = (pb - 1) - ka;  // range of q − k over the tile
    TileClass c = TileClass::Full;
    if (m.causal) {
        if (dMax < 0)
            c = TileClass::Empty;
        else if (dMin < 0)
            c = TileClass::Partial;
    }
    if (c != TileClass::Empty && m.window > 0) {
        const bool outside = dMin >= m.window || (!m.causal && dMax <= -m.window);
        const bool inside = dMax < m.window && (m.causal || dMin > -m.window);
        if (outside)
            c = TileClass::Empty;
        else if (!inside)
            c = TileClass::Partial;
    }
    if (c == TileClass::Full && m.dilation > 1 && !(dMin == dMax && dMin % m.dilation == 0)) c = TileClass::Partial;
    if (ka < m.prefix) {  // keys below the prefix are visible whatever the positional rule says
        if (kb <= m.prefix) return TileClass::Full;
        return c == TileClass::Full ? TileClass::Full : TileClass::Partial;
    }
    return c;
}

TileClass MaskPlan::classify(int64_t pa, int64_t pb, int64_t ka, int64_t kb) const {
    const MaskSpec& m = m_spec.mask;
    TileClass c = positional(pa, pb, ka, kb);
    if (c == TileClass::Empty) return c;
    if (!m_docRun.empty()) {
        const bool oneQueryRun = m_docRun[size_t(pa)] == m_docRun[size_t(pb - 1)];
        const bool oneKeyRun = m_docRun[size_t(ka)] == m_docRun[size_t(kb - 1)];
        if (oneQueryRun && oneKeyRun)
            c = combine(c, m.documents[size_t(pa)] == m.documents[size_t(ka)] ? TileClass::Full : TileClass::Empty);
        else
            c = combine(c, TileClass::Partial);
        if (c == TileClass::Empty) return c;
    }
    if (m.blocks) {
        bool any = false, all = true;
        for (int64_t br = pa / m.blockSize; br <= (pb - 1) / m.blockSize; ++br)
            for (int64_t bc = ka / m.blockSize; bc <= (kb - 1) / m.blockSize; ++bc) {
                const bool kept = blockKept(m, br * m.blockSize, bc * m.blockSize);
                any |= kept;
                all &= kept;
            }
        c = combine(c, !any ? TileClass::Empty : (all ? TileClass::Full : TileClass::Partial));
        if (c == TileClass::Empty) return c;
    }
    if (m.expr && m.expr->expr->hasMask()) {
        switch (maskOverRect(*m.expr->expr, m.expr->binding, pa, pb, ka, kb)) {
        case ExprTruth::False: return TileClass::Empty;
        case ExprTruth::Unknown: c = combine(c, TileClass::Partial); break;
        case ExprTruth::True: break;
        }
    }
    const auto& ex = m.excludedKeys;
    const auto it = std::lower_bound(ex.begin(), ex.end(), ka);
    if (it != ex.end() && *it < kb) c = combine(c, TileClass::Partial);
    return c;
}

void MaskPlan::apply(float* s, int64_t ld, int64_t pa, int64_t rows, int64_t ka, int64_t cols) const {
    const MaskSpec& m = m_spec.mask;
    const bool docs = !m.documents.empty();
    for (int64_t r = 0; r < rows; ++r) {
        float* row = s + r * ld;
        const int64_t p = pa + r;
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t k = ka + c;
            bool ok = positionalAllows(m, p, k);
            if (ok && docs) ok = m.documents[size_t(p)] == m.documents[size_t(k)];
            if (ok && m.blocks) ok = blockKept(m, p, k);
            if (!ok) row[c] = kNegInf;
        }
    }
    if (m.expr && m.expr->expr->hasMask()) {  // a user mask: one evaluated row at a time
        thread_local std::vector<uint8_t> allowed;
        allowed.resize(size_t(cols));
        for (int64_t r = 0; r < rows; ++r) {
            evalMaskRow(*m.expr->expr, m.expr->binding, pa + r, ka, cols, allowed.data());
            float* row = s + r * ld;
            for (int64_t c = 0; c < cols; ++c)
                if (!allowed[size_t(c)]) row[c] = kNegInf;
        }
    }
    // Excluded keys are whole columns: mask them once instead of searching per element.
    for (auto it = std::lower_bound(m.excludedKeys.begin(), m.excludedKeys.end(), ka);
         it != m.excludedKeys.end() && *it < ka + cols; ++it)
        for (int64_t r = 0; r < rows; ++r) s[r * ld + (*it - ka)] = kNegInf;
}

void MaskPlan::applyScoreMods(float* s, int64_t ld, int64_t pa, int64_t rows, int64_t ka, int64_t cols) const {
    const float cap = m_spec.softcap;
    // ALiBi adds slope·(k − q) and the relative bias adds bias·(q − k): one linear term in k − q.
    const float slope = m_spec.alibiSlope - m_spec.relativeBias;
    for (int64_t r = 0; r < rows; ++r) {
        float* row = s + r * ld;
        if (cap > 0)
            for (int64_t c = 0; c < cols; ++c) row[c] = cap * std::tanh(row[c] / cap);
        if (slope != 0) {
            const int64_t p = pa + r;
            for (int64_t c = 0; c < cols; ++c) row[c] += slope * static_cast<float>(ka + c - p);
        }
    }
    if (hasExprScore())
        for (int64_t r = 0; r < rows; ++r)
            evalScoreRow(*m_spec.mask.expr->expr, m_spec.mask.expr->binding, pa + r, ka, cols, s + r * ld);
}

bool MaskPlan::hasExprScore() const { return m_spec.mask.expr && m_spec.mask.expr->expr->hasScore(); }

Status validateInputs(const char* what, const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                      int64_t qOffset) {
    const std::string w = what;
    if (q.cols() != k.cols())
        return {ErrorCode::Shape, w + ": q has head dim " + std::to_string(q.cols()) + " but k has " +
                                      std::to_string(k.cols()) + " (expected equal)"};
    if (q.cols() == 0) return {ErrorCode::Shape, w + ": head dim is 0 (expected at least 1)"};
    if (qOffset < 0) return {ErrorCode::InvalidArgument, w + ": qOffset " + std::to_string(qOffset) + " is negative"};
    const MaskSpec& m = spec.mask;
    if (!(spec.scale == spec.scale) || !(spec.softcap >= 0))
        return {ErrorCode::InvalidArgument, w + ": scale must be a number and softcap >= 0"};
    if (spec.hasSink() && !std::isfinite(spec.sinkLogit))
        return {ErrorCode::InvalidArgument, w + ": learned sink logit " + std::to_string(spec.sinkLogit) +
                                                " (expected a finite number, or -inf for none)"};
    if (m.window < 0) return {ErrorCode::InvalidArgument, w + ": mask window " + std::to_string(m.window) + " < 0"};
    if (m.dilation < 1)
        return {ErrorCode::InvalidArgument, w + ": mask dilation " + std::to_string(m.dilation) + " (expected >= 1)"};
    const int64_t positions = std::max<int64_t>(k.rows(), q.rows() + qOffset);
    if (!m.documents.empty() && static_cast<int64_t>(m.documents.size()) < positions)
        return {ErrorCode::Shape, w + ": mask documents has " + std::to_string(m.documents.size()) +
                                      " ids but the sequence needs " + std::to_string(positions)};
    if (!std::is_sorted(m.excludedKeys.begin(), m.excludedKeys.end()))
        return {ErrorCode::InvalidArgument, w + ": mask excludedKeys must be sorted ascending"};
    if (m.blocks) {
        if (m.blockSize <= 0 || m.blockCols <= 0)
            return {ErrorCode::InvalidArgument, w + ": block mask needs blockSize > 0 and blockCols > 0"};
        const int64_t needCols = (k.rows() + m.blockSize - 1) / m.blockSize;
        const int64_t needRows = (positions + m.blockSize - 1) / m.blockSize;
        if (m.blockCols < needCols || static_cast<int64_t>(m.blocks->size()) < needRows * m.blockCols)
            return {ErrorCode::Shape, w + ": block mask has " + std::to_string(m.blocks->size()) + " entries with " +
                                          std::to_string(m.blockCols) + " columns but needs " +
                                          std::to_string(needRows) + " x " + std::to_string(needCols)};
    }
    return {};
}

}  // namespace attnscope::detail
