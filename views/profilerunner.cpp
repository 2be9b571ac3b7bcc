#include "profilerunner.h"

#include "computeservice.h"

namespace attnscope {

namespace {
const QString kTag = QStringLiteral("profile");
}  // namespace

ProfileRunner::ProfileRunner(ComputeService* compute, ProfilerPanel* panel)
    : QObject(panel), m_compute(compute), m_panel(panel) {
    panel->setRunner([this](ProfilerPanel::Work work) { run(std::move(work)); });
}

void ProfileRunner::run(ProfilerPanel::Work work) {
    // The panel's own cancel flag stops the work (through its progress callback); whatever the
    // answer, Cancelled included, the panel shows it.
    m_compute->submitGpu(
        kTag, [work = std::move(work)](GpuEngine*, const CancelToken&) { return work(); }, this,
        [this](Result<ProfileReport> r) { m_panel->deliver(std::move(r)); });
}

}  // namespace attnscope
