// Allowed-pair counts of a mask (denominators of alpha_k, normalized entropy and block density),
// in closed form for causal/window masks and by one O(T²) sweep for the rest.
#include <algorithm>

#include "analysis_internal.h"

namespace attnscope::detail {

int64_t excludedIn(const std::vector<int64_t>& excluded, int64_t lo, int64_t hi) {
    if (lo > hi) return 0;
    auto a = std::lower_bound(excluded.begin(), excluded.end(), lo);
    auto b = std::upper_bound(excluded.begin(), excluded.end(), hi);
    return b - a;
}

namespace {

bool isExcluded(const std::vector<int64_t>& excluded, int64_t key) {
    return std::binary_search(excluded.begin(), excluded.end(), key);
}

/// Range of offsets d = q - k a simple mask allows: [lo, hi].
void offsetRange(const MaskSpec& m, int64_t tokens, int64_t& lo, int64_t& hi) {
    lo = m.causal ? 0 : -(tokens - 1);
    hi = tokens - 1;
    if (m.window > 0) {
        hi = std::min(hi, m.window - 1);
        if (!m.causal) lo = std::max(lo, -(m.window - 1));
    }
}

}  // namespace

void allowedInterval(const MaskSpec& mask, int64_t tokens, int64_t query, int64_t& lo, int64_t& hi) {
    int64_t dLo = 0, dHi = 0;
    offsetRange(mask, tokens, dLo, dHi);
    lo = std::max<int64_t>(0, query - dHi);
    hi = std::min(tokens - 1, query - dLo);
}

bool isSimpleMask(const MaskSpec& m) { return m.documents.empty() && !m.blocks && m.dilation <= 1 && m.prefix <= 0; }

MaskCounts countAllowed(const MaskSpec& mask, int64_t tokens) {
    MaskCounts c;
    c.rowAllowed.assign(size_t(tokens), 0);
    c.colAllowed.assign(size_t(tokens), 0);
    if (!isSimpleMask(mask)) {
        for (int64_t i = 0; i < tokens; ++i)
            for (int64_t j = 0; j < tokens; ++j)
                if (mask.allows(i, j)) {
                    ++c.rowAllowed[size_t(i)];
                    ++c.colAllowed[size_t(j)];
                }
        return c;
    }
    int64_t dLo = 0, dHi = 0;
    offsetRange(mask, tokens, dLo, dHi);
    for (int64_t i = 0; i < tokens; ++i) {
        // Keys k = i - d for d in [dLo, dHi].
        const int64_t lo = std::max<int64_t>(0, i - dHi), hi = std::min(tokens - 1, i - dLo);
        c.rowAllowed[size_t(i)] = lo > hi ? 0 : (hi - lo + 1) - excludedIn(mask.excludedKeys, lo, hi);
    }
    for (int64_t k = 0; k < tokens; ++k) {
        if (isExcluded(mask.excludedKeys, k)) continue;
        // Queries q = k + d.
        const int64_t lo = std::max<int64_t>(0, k + dLo), hi = std::min(tokens - 1, k + dHi);
        c.colAllowed[size_t(k)] = lo > hi ? 0 : hi - lo + 1;
    }
    return c;
}

std::vector<uint8_t> allowedBlocks(const MaskSpec& mask, int64_t tokens, int64_t blockSize) {
    const int64_t nb = (tokens + blockSize - 1) / blockSize;
    std::vector<uint8_t> out(size_t(nb * nb), 0);
    if (!isSimpleMask(mask)) {
        for (int64_t i = 0; i < tokens; ++i)
            for (int64_t j = 0; j < tokens; ++j)
                if (mask.allows(i, j)) out[size_t((i / blockSize) * nb + j / blockSize)] = 1;
        return out;
    }
    int64_t dLo = 0, dHi = 0;
    offsetRange(mask, tokens, dLo, dHi);
    for (int64_t bi = 0; bi < nb; ++bi) {
        const int64_t i0 = bi * blockSize, i1 = std::min(tokens, i0 + blockSize) - 1;
        for (int64_t bj = 0; bj < nb; ++bj) {
            const int64_t j0 = bj * blockSize, j1 = std::min(tokens, j0 + blockSize) - 1;
            if (i0 - j1 > dHi || i1 - j0 < dLo) continue;  // offset ranges do not meet
            bool any = mask.excludedKeys.empty();
            // With exclusions, a block is allowed if some non-excluded key meets an allowed offset.
            for (int64_t j = j0; !any && j <= j1; ++j)
                any = !isExcluded(mask.excludedKeys, j) && i0 - j <= dHi && i1 - j >= dLo;
            out[size_t(bi * nb + bj)] = any ? 1 : 0;
        }
    }
    return out;
}

ProgressFn subProgress(const ProgressFn& parent, double from, double to) {
    if (!parent) return {};
    return [parent, from, to](double f, std::string_view stage) { return parent(from + (to - from) * f, stage); };
}

Status cancelledStatus(const std::string& what) { return Status(ErrorCode::Cancelled, what + ": cancelled"); }

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace attnscope::detail

namespace attnscope {

std::vector<uint8_t> allowedBlockFlags(const MaskSpec& mask, int64_t tokens, int64_t blockSize) {
    return detail::allowedBlocks(mask, tokens, blockSize);
}

}  // namespace attnscope
