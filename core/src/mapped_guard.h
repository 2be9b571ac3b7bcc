#pragma once
// Reading a memory-mapped file that another program truncates raises SIGBUS on the next access of
// a page past the new end. Every read of a trace's mapping runs under this guard, so a truncated
// trace gives an error for the affected request instead of killing the program.

#include <type_traits>

namespace attnscope::detail {

/// Runs `fn(context)`. Returns false, instead of crashing, when it touches a page of a mapped
/// file that no longer exists (SIGBUS); any other SIGBUS keeps its previous handling. `fn` must
/// only read and copy (no allocation, no objects with destructors): a fault leaves it by
/// siglongjmp. Thread-safe; nests.
bool runGuarded(void (*fn)(void*), void* context);

/// `runGuarded` for a callable (a lambda capturing by reference).
template <typename F>
bool guarded(F&& f) {
    return runGuarded([](void* c) { (*static_cast<std::remove_reference_t<F>*>(c))(); }, &f);
}

}  // namespace attnscope::detail
