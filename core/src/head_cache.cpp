#include "attnscope/head_cache.h"

#include <algorithm>

namespace attnscope {

HeadCache::HeadCache(std::shared_ptr<const Trace> trace, size_t capacity)
    : m_trace(std::move(trace)), m_capacity(std::max<size_t>(capacity, 1)) {}

std::string HeadCache::headKey(int layer, int head) { return std::to_string(layer) + "." + std::to_string(head) + ":"; }

Result<std::shared_ptr<GpuHead>> HeadCache::deviceHead(const std::shared_ptr<const HeadData>& data, GpuEngine& engine) {
    // Keyed by the HeadData object itself (a weak reference: a head evicted from this cache
    // never matches again, even if a new one takes its address).
    for (auto it = m_deviceHeads.begin(); it != m_deviceHeads.end(); ++it) {
        if (it->first.lock() == data) {
            m_deviceHeads.splice(m_deviceHeads.begin(), m_deviceHeads, it);
            return it->second;
        }
    }
    auto uploaded = engine.uploadHead(data->q, data->k);
    if (!uploaded) return uploaded.status();
    m_deviceHeads.emplace_front(data, *uploaded);
    if (m_deviceHeads.size() > kDeviceHeads) m_deviceHeads.pop_back();
    return *uploaded;
}

Result<std::shared_ptr<const HeadData>> HeadCache::head(int layer, int head) {
    {
        std::lock_guard lock(m_mutex);
        for (auto it = m_heads.begin(); it != m_heads.end(); ++it) {
            if ((*it)->layer == layer && (*it)->head == head) {
                m_heads.splice(m_heads.begin(), m_heads, it);
                return *m_heads.begin();
            }
        }
    }
    if (!m_trace || layer < 0 || layer >= m_trace->numLayers() || head < 0 || head >= m_trace->config(layer).heads)
        return Status(ErrorCode::InvalidArgument,
                      "no head " + std::to_string(layer) + "." + std::to_string(head) + " in this trace");
    auto q = m_trace->head(layer, head, Which::Q);
    if (!q) return q.status();
    auto k = m_trace->head(layer, head, Which::K);
    if (!k) return k.status();
    auto data = std::make_shared<HeadData>();
    data->layer = layer;
    data->head = head;
    data->q = std::move(q->m);
    data->k = std::move(k->m);
    data->nonFinite = q->nonFinite + k->nonFinite;
    data->spec = specForLayer(m_trace->config(layer), head);
    std::lock_guard lock(m_mutex);
    m_heads.push_front(data);
    while (m_heads.size() > m_capacity) {
        const auto& last = m_heads.back();
        const std::string prefix = headKey(last->layer, last->head);
        for (auto it = m_lse.lower_bound(prefix); it != m_lse.end() && it->first.starts_with(prefix);)
            it = m_lse.erase(it);
        for (auto it = m_sinks.lower_bound(prefix); it != m_sinks.end() && it->first.starts_with(prefix);)
            it = m_sinks.erase(it);
        m_heads.pop_back();
    }
    return std::shared_ptr<const HeadData>(data);
}

std::string HeadCache::lseKey(const HeadData& data, const AttentionSpec& spec) {
    std::string key = headKey(data.layer, data.head);
    for (int64_t k : spec.mask.excludedKeys) key += std::to_string(k) + ",";
    return key;
}

Result<std::shared_ptr<const std::vector<float>>> HeadCache::lse(const HeadData& data, const AttentionSpec& spec,
                                                                 const ProgressFn& progress) {
    const std::string key = lseKey(data, spec);
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_lse.find(key); it != m_lse.end()) return it->second;
    }
    auto lse = rowLogSumExp(data.q, data.k, spec, 0, data.q.rows(), progress);
    if (!lse) return lse.status();
    auto shared = std::make_shared<const std::vector<float>>(std::move(*lse));
    std::lock_guard lock(m_mutex);
    m_lse[key] = shared;
    return shared;
}

std::shared_ptr<const std::vector<float>> HeadCache::cachedLse(const HeadData& data, const AttentionSpec& spec) {
    std::lock_guard lock(m_mutex);
    auto it = m_lse.find(lseKey(data, spec));
    return it == m_lse.end() ? nullptr : it->second;
}

Result<std::vector<int64_t>> HeadCache::sinks(const HeadData& data, double threshold, const ProgressFn& progress) {
    const std::string key = headKey(data.layer, data.head) + std::to_string(threshold);
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_sinks.find(key); it != m_sinks.end()) return it->second;
    }
    auto found = sinkColumns(data.q, data.k, data.spec, threshold, progress);
    if (!found) return found.status();
    std::lock_guard lock(m_mutex);
    m_sinks[key] = *found;
    return found;
}

AttentionSpec HeadCache::specWithExclusions(const HeadData& data, const std::vector<int64_t>& excludedKeys) {
    AttentionSpec spec = data.spec;
    spec.mask.excludedKeys = excludedKeys;
    std::sort(spec.mask.excludedKeys.begin(), spec.mask.excludedKeys.end());
    spec.mask.excludedKeys.erase(std::unique(spec.mask.excludedKeys.begin(), spec.mask.excludedKeys.end()),
                                 spec.mask.excludedKeys.end());
    return spec;
}

}  // namespace attnscope
