# Eigen is header-only: use the system package, or a directory given by ATTNSCOPE_EIGEN_DIR
# (the GPU machine has no Eigen, so scripts/device-run.sh carries a copy in third_party/eigen).
add_library(attnscope_eigen INTERFACE)
if(ATTNSCOPE_EIGEN_DIR)
  target_include_directories(attnscope_eigen SYSTEM INTERFACE ${ATTNSCOPE_EIGEN_DIR})
elseif(EXISTS ${PROJECT_SOURCE_DIR}/third_party/eigen/Eigen)
  target_include_directories(attnscope_eigen SYSTEM INTERFACE ${PROJECT_SOURCE_DIR}/third_party/eigen)
else()
  find_package(Eigen3 3.4 REQUIRED NO_MODULE)
  target_link_libraries(attnscope_eigen INTERFACE Eigen3::Eigen)
endif()
# Every C++ object is built for the same instruction set (top-level CMakeLists.txt); the alignment
# is pinned too, so a matrix allocated in one library and freed in another always agrees on it.
target_compile_definitions(attnscope_eigen INTERFACE EIGEN_MPL2_ONLY EIGEN_MAX_ALIGN_BYTES=32
                           EIGEN_MAX_STATIC_ALIGN_BYTES=32)
