#include "mapviewport.h"

#include <algorithm>
#include <cmath>

namespace attnscope {

void MapViewport::reset(int64_t t, double w, double h) {
    tokens = std::max<int64_t>(t, 0);
    width = std::max(w, 1.0);
    height = std::max(h, 1.0);
    fitAll();
}

double MapViewport::maxTokensPerPixel() const {
    const double side = std::max(1.0, std::min(width, height));
    return std::max(double(std::max<int64_t>(tokens, 1)) / side, minTokensPerPixel());
}

void MapViewport::fitAll() {
    tokensPerPixel = maxTokensPerPixel();
    keyOrigin = 0;
    queryOrigin = 0;
    clamp();
}

void MapViewport::zoomAbout(double x, double y, double factor) {
    if (!(factor > 0) || !std::isfinite(factor)) return;
    const double key = xToKey(x);
    const double query = yToQuery(y);
    tokensPerPixel = std::clamp(tokensPerPixel / factor, minTokensPerPixel(), maxTokensPerPixel());
    keyOrigin = key - x * tokensPerPixel;
    queryOrigin = query - y * tokensPerPixel;
    clamp();
}

void MapViewport::panPixels(double dx, double dy) {
    keyOrigin -= dx * tokensPerPixel;
    queryOrigin -= dy * tokensPerPixel;
    clamp();
}

void MapViewport::resize(double w, double h) {
    width = std::max(w, 1.0);
    height = std::max(h, 1.0);
    clamp();
}

int64_t MapViewport::keyAt(double x) const {
    const double k = std::floor(xToKey(x));
    return (k < 0 || k >= double(tokens)) ? -1 : int64_t(k);
}

int64_t MapViewport::queryAt(double y) const {
    const double q = std::floor(yToQuery(y));
    return (q < 0 || q >= double(tokens)) ? -1 : int64_t(q);
}

MapViewport::Range MapViewport::visible() const {
    auto span = [this](double origin, double pixels) {
        const double t = double(tokens);
        const int64_t a = int64_t(std::clamp(std::floor(origin), 0.0, t));
        const int64_t b = int64_t(std::clamp(std::ceil(origin + pixels * tokensPerPixel), 0.0, t));
        return std::pair{a, b};
    };
    const auto [q0, q1] = span(queryOrigin, height);
    const auto [k0, k1] = span(keyOrigin, width);
    return {q0, q1, k0, k1};
}

void MapViewport::clamp() {
    tokensPerPixel = std::clamp(tokensPerPixel, minTokensPerPixel(), maxTokensPerPixel());
    auto clampAxis = [this](double& origin, double pixels) {
        const double visibleTokens = pixels * tokensPerPixel;
        const double t = double(tokens);
        if (visibleTokens >= t)
            origin = (t - visibleTokens) / 2;  // centred when the map is smaller than the view
        else
            origin = std::clamp(origin, 0.0, t - visibleTokens);
    };
    clampAxis(keyOrigin, width);
    clampAxis(queryOrigin, height);
}

}  // namespace attnscope
