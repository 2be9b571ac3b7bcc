#pragma once
// Runs the profiler panel's work on the ComputeService's GPU worker, the one thread that owns the
// CUDA context and the CUPTI session (behind background work that holds it), and hands the
// result back to the panel.
#include <QObject>

#include "profilerpanel.h"

namespace attnscope {

class ComputeService;

class ProfileRunner : public QObject {
    Q_OBJECT
public:
    /// Becomes `panel`'s runner (ProfilerPanel::setRunner), as a child of the panel.
    ProfileRunner(ComputeService* compute, ProfilerPanel* panel);

private:
    void run(ProfilerPanel::Work work);

    ComputeService* m_compute;
    ProfilerPanel* m_panel;
};

}  // namespace attnscope
