#pragma once
// The user's saved variant programs (docs/variants.md), kept in the user's settings (QSettings,
// group "variants/saved": an array of {name, program}, ordered by name). One home for that key:
// the variant editor and the profiler panel read and write through these functions only.
#include <QString>
#include <QStringList>

namespace attnscope::savedvariants {

/// Names of the saved programs, sorted (case-insensitively).
QStringList names();
/// The program saved under `name`, or an empty string.
QString program(const QString& name);
/// Saves (or replaces) `program` under `name` (trimmed; must not be empty).
void store(const QString& name, const QString& program);
/// Removes the program saved under `name`; false when there was none.
bool remove(const QString& name);

}  // namespace attnscope::savedvariants
