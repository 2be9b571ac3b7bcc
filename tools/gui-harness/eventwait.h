#pragma once
// Runs the event loop until a condition holds or a timeout passes. For the scripted modes
// (benchmark, screenshot tour) only: the GUI keeps processing events while it waits.
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QThread>

#include <functional>

namespace attnscope {

inline bool waitFor(const std::function<bool()>& done, int timeoutMs) {
    constexpr int kSliceMs = 5;
    QElapsedTimer timer;
    timer.start();
    while (!done()) {
        if (timer.elapsed() > timeoutMs) return false;
        QCoreApplication::processEvents(QEventLoop::AllEvents, kSliceMs);
        QThread::msleep(1);
    }
    return true;
}

inline void settle(int ms) {
    waitFor([] { return false; }, ms);
}

}  // namespace attnscope
