// The shared display scales (attnscope/scales.h).
#include "attnscope/scales.h"

#include <cmath>
#include <initializer_list>

namespace attnscope {

double logScaleFloor(double hi) { return hi * std::pow(10.0, -kLogScaleDecades); }

double niceTickStep(double raw) {
    if (!(raw > 0) || !std::isfinite(raw)) return 1.0;
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * p >= raw) return m * p;
    return 10 * p;
}

}  // namespace attnscope
