#pragma once
// The display scales every front end shares (CLI PNGs, the GUI's maps and figures, reports): the
// log colour scale's floor and the 1-2-5 axis step. One home, so a CLI PNG and the GUI map of the
// same head use the same range, and every axis steps alike.

namespace attnscope {

/// Decades a log colour scale spans below its maximum; smaller values take the bottom colour.
inline constexpr double kLogScaleDecades = 4.0;

/// The bottom of a log colour scale whose top is `hi` (> 0): hi · 10^-kLogScaleDecades.
double logScaleFloor(double hi);

/// The smallest step of the form 1, 2 or 5 × 10^k that is at least `raw` (> 0); 1 for a raw step
/// that is not positive and finite. Axes divide a span by the number of ticks they want and step
/// by this.
double niceTickStep(double raw);

}  // namespace attnscope
