#pragma once
// Matrix types shared by the engine. Row-major so one token's vector is contiguous.
#include <Eigen/Core>

namespace attnscope {
using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRMd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace attnscope
