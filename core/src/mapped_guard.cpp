#include "mapped_guard.h"

#include <csetjmp>
#include <csignal>
#include <mutex>

namespace attnscope::detail {
namespace {

thread_local sigjmp_buf* t_jump = nullptr;  ///< set while this thread runs a guarded read
struct sigaction g_previous {};

void onBusError(int signal, siginfo_t* info, void* context) {
    if (sigjmp_buf* jump = t_jump) siglongjmp(*jump, 1);
    // Not a guarded read: hand the fault to whoever handled it before (a sanitizer, a crash
    // reporter), else restore the default action; returning re-runs the faulting access.
    if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
        g_previous.sa_sigaction(signal, info, context);
    } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
        g_previous.sa_handler(signal);
    } else {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGBUS, &dfl, nullptr);
    }
}

void installHandler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_sigaction = onBusError;
        action.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        sigaction(SIGBUS, &action, &g_previous);
    });
}

}  // namespace

bool runGuarded(void (*fn)(void*), void* context) {
    installHandler();
    sigjmp_buf jump;
    sigjmp_buf* const outer = t_jump;
    if (sigsetjmp(jump, 1) != 0) {
        t_jump = outer;
        return false;
    }
    t_jump = &jump;
    fn(context);
    t_jump = outer;
    return true;
}

}  // namespace attnscope::detail
