#pragma once
// A view under test on screen (offscreen in the suite): its ComputeService, its TraceSession and
// the view itself, resized, shown and exposed — the set-up the view tests share.
#include <QSize>
#include <QtTest>

#include "computeservice.h"
#include "tracesession.h"

namespace attnscope::testing {

template <typename View>
struct ShownView {
    ComputeService compute;
    TraceSession session{&compute};
    View view{&session};

    /// Check exposed() with QVERIFY: a view that never appears makes every wait time out.
    explicit ShownView(QSize size) {
        view.resize(size);
        view.show();
    }
    bool exposed() { return QTest::qWaitForWindowExposed(&view); }
    /// exposed(), then `trace` handed to the session (check the answer with QVERIFY).
    bool showing(std::shared_ptr<const Trace> trace) {
        if (!exposed()) return false;
        session.setTrace(std::move(trace));
        return true;
    }
};

}  // namespace attnscope::testing
