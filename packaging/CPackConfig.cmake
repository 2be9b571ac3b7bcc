# Installation of the data files and the Debian package (CPack, `cpack -G DEB` in a build dir).
# Included from the top-level CMakeLists.txt. The executables install themselves (app/, bench/).
# Build the package from a tree configured with -DCMAKE_INSTALL_PREFIX=/usr, so the programs look
# for the demo trace where the package puts it (see docs/packaging.md).

set(ATTNSCOPE_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

# The demo trace, where attnscope and attnscope-cli look for it (ATTNSCOPE_DATADIR/demo).
file(GLOB ATTNSCOPE_DEMO_TRACES ${PROJECT_SOURCE_DIR}/resources/demo/*.attn.safetensors)
install(FILES ${ATTNSCOPE_DEMO_TRACES} ${PROJECT_SOURCE_DIR}/resources/demo/README.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/attnscope/demo)

# Documentation.
file(GLOB ATTNSCOPE_DOCS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${ATTNSCOPE_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR})
if(EXISTS ${PROJECT_SOURCE_DIR}/docs/screenshots)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/screenshots DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

# Desktop integration: menu entry, icon and the MIME type that opens traces from file managers.
# dpkg triggers of desktop-file-utils, shared-mime-info and hicolor-icon-theme refresh their
# caches after installation, so the package needs no maintainer scripts.
if(ATTNSCOPE_GUI)
  install(FILES ${ATTNSCOPE_PACKAGING_DIR}/attnscope.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
endif()
install(FILES ${ATTNSCOPE_PACKAGING_DIR}/attnscope-mime.xml DESTINATION ${CMAKE_INSTALL_DATADIR}/mime/packages
        RENAME attnscope.xml)
install(FILES ${PROJECT_SOURCE_DIR}/resources/icons/attnscope.svg
        DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)

if(ATTNSCOPE_HAVE_CUDA)
  message(STATUS "packaging: this build links libcupti.so.13 from the CUDA toolkit, which Debian does not "
                 "ship; configure the .deb with -DATTNSCOPE_CUDA=OFF (docs/packaging.md)")
endif()
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "packaging: CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}; configure with "
                 "-DCMAKE_INSTALL_PREFIX=/usr before `cpack -G DEB` (docs/packaging.md)")
endif()

set(CPACK_PACKAGE_NAME attnscope)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "attnscope")
set(CPACK_PACKAGE_CONTACT "attnscope maintainers <attnscope@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Native attention visualizer and profiler for transformer models")
set(CPACK_PACKAGE_DESCRIPTION
    "attnscope browses the attention heads of a model trace (*.attn.safetensors): multiscale maps,
token lines, the Q.K neuron view, sinks, sparsity and head roles, and profiles attention-variant
kernels side by side. attnscope-cli writes figures and offline HTML/Markdown/JSON/CSV reports.")
set(CPACK_PACKAGE_HOMEPAGE_URL "")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Shared-library dependencies (libqt6widgets6, libqt6svg6, libqt6opengl6, libstdc++6, …) come
# from dpkg-shlibdeps on the built binaries, so they match what was linked.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Qt's run-time plugins are not seen by dpkg-shlibdeps, but the ones used ship in libraries it does
# find: the xcb and offscreen platforms (headless reports) in libqt6gui6, the SVG icon engine in
# libqt6svg6; so no explicit Depends is needed.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "shared-mime-info, desktop-file-utils, hicolor-icon-theme, fonts-dejavu-core")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "poppler-utils")

include(CPack)
