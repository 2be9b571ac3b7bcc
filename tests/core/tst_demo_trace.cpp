// The shipped demo trace (resources/demo/*.attn.safetensors, a real capture of a small Llama)
// analysed on the CPU shows the patterns the demo is meant to show: first-token sinks
// (alpha_0 > 0.3) in ≥ 4 heads of layers ≥ 1, a previous-token head (TransformerLens score > 0.4)
// and an induction head (> 0.3 on the repeated passage, from the trace's own token ids).
#include <QtTest>

#include "attnscope/analysis.h"
#include "attnscope/demo_trace.h"
#include "attnscope/trace.h"

using namespace attnscope;

class TestDemoTrace : public QObject {
    Q_OBJECT
    // What the demo must show (the thresholds of the comment above).
    static constexpr double kSinkEps = 0.3;
    static constexpr int kMinSinkHeads = 4;
    static constexpr double kPreviousToken = 0.4;
    static constexpr double kInduction = 0.3;
private slots:
    void patternsPresent();
};

void TestDemoTrace::patternsPresent() {
    const std::string path = findDemoTrace();  // core's finder, as `demo` and the GUI use it
    if (path.empty())
        QSKIP("no resources/demo/*.attn.safetensors yet (the demo trace is trained and captured separately)");
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    QVERIFY2(int64_t((*trace)->metadata().tokenIds.size()) == (*trace)->tokens(), "demo trace has no token ids");
    AnalyzeOptions opt;
    opt.similarity = false;
    opt.head.masks.enabled = false;  // not asserted here; keeps the test short
    auto model = analyzeTrace(**trace, opt);
    QVERIFY2(model.ok(), model.message().c_str());

    int sinkHeads = 0;
    const HeadAnalysis* bestPrev = nullptr;
    const HeadAnalysis* bestInd = nullptr;
    std::string sinks;
    for (const HeadAnalysis& h : model->heads) {
        if (h.layer >= 1 && h.sinks.alpha0 > kSinkEps) ++sinkHeads;
        if (h.layer >= 1)
            sinks += " L" + std::to_string(h.layer) + "H" + std::to_string(h.head) + "=" +
                     std::to_string(h.sinks.alpha0).substr(0, 4);
        if (!bestPrev || h.roles.previousToken > bestPrev->roles.previousToken) bestPrev = &h;
        if (!bestInd || h.roles.inductionRepeat > bestInd->roles.inductionRepeat) bestInd = &h;
    }
    qInfo("first-token sinks (alpha_0 > 0.3) in %d heads of layers >= 1", sinkHeads);
    qInfo("best previous-token L%dH%d %.3f; best induction L%dH%d %.3f (TL all rows %.3f, %lld repeated rows)",
          bestPrev->layer, bestPrev->head, bestPrev->roles.previousToken, bestInd->layer, bestInd->head,
          bestInd->roles.inductionRepeat, bestInd->roles.induction, static_cast<long long>(bestInd->roles.repeatRows));
    QVERIFY2(bestPrev->roles.previousToken > kPreviousToken, "no previous-token head above 0.4");
    QVERIFY2(bestInd->roles.inductionRepeat > kInduction, "no induction head above 0.3 on the repeated passage");
    QVERIFY2(
        sinkHeads >= kMinSinkHeads,
        qPrintable(QString("first-token sinks (alpha_0 > 0.3) in %1 heads of layers >= 1, expected >= 4; alpha_0:%2")
                       .arg(sinkHeads)
                       .arg(sinks.c_str())));
}

QTEST_GUILESS_MAIN(TestDemoTrace)
#include "tst_demo_trace.moc"
