#pragma once
// The QGuiApplication that figure and report verbs need for fonts and painting, on the offscreen
// platform unless the caller chose one (so they run on machines without a display).
#include <QGuiApplication>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace attnscope::cli {

inline std::unique_ptr<QGuiApplication> makeGuiApp() {
    if (!std::getenv("QT_QPA_PLATFORM")) setenv("QT_QPA_PLATFORM", "offscreen", 0);
    if (!std::getenv("XDG_RUNTIME_DIR")) {
        // Headless shells often lack it and Qt then warns on every run; give it the private
        // directory it would fall back to anyway.
        const std::string dir = "/tmp/runtime-" + std::to_string(getuid());
        mkdir(dir.c_str(), S_IRWXU);
        setenv("XDG_RUNTIME_DIR", dir.c_str(), 0);
    }
    static int argc = 1;
    static char name[] = "attnscope-cli";
    static char* argv[] = {name, nullptr};
    return std::make_unique<QGuiApplication>(argc, argv);
}

}  // namespace attnscope::cli
