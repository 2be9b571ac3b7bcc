#pragma once
// Implemented by every view that File > Export view can save: the view as a publication figure.
#include <optional>

#include "figuremodel.h"

namespace attnscope {

class FigureSource {
public:
    virtual ~FigureSource() = default;
    /// The view as it is on screen, or nullopt when it shows nothing yet.
    virtual std::optional<Figure> currentFigure() const = 0;
};

}  // namespace attnscope
