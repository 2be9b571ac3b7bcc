#pragma once
// The QGuiApplication that figure and report verbs need for fonts and painting, on the offscreen
// platform unless the caller chose one (so they run on machines without a display).
#include <QGuiApplication>

#include <cstdlib>
#include <memory>

namespace attnscope::cli {

inline std::unique_ptr<QGuiApplication> makeGuiApp() {
    if (!std::getenv("QT_QPA_PLATFORM")) setenv("QT_QPA_PLATFORM", "offscreen", 0);
    static int argc = 1;
    static char name[] = "attnscope-cli";
    static char* argv[] = {name, nullptr};
    return std::make_unique<QGuiApplication>(argc, argv);
}

}  // namespace attnscope::cli
