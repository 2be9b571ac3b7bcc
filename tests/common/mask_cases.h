#pragma once
// The analysis tests' data-driven (T, mask) cases: MaskCase as a QTest column type and one way to
// lay out and name the rows.
#include <QtTest>

#include <initializer_list>
#include <utility>

#include "analysis_bruteforce.h"

Q_DECLARE_METATYPE(attnscope::test::MaskCase)

namespace attnscope::test {

inline const char* maskCaseName(MaskCase mask) {
    switch (mask) {
    case MaskCase::Causal: return "causal";
    case MaskCase::Window: return "window";
    case MaskCase::Full: return "full";
    case MaskCase::Documents: return "documents";
    case MaskCase::Excluded: return "excluded";
    case MaskCase::FullWindow: return "full window";
    }
    return "?";
}

/// Columns T (qint64) and mask (MaskCase), one row "<mask> T=<T>" per case.
inline void addMaskCases(std::initializer_list<std::pair<qint64, MaskCase>> cases) {
    QTest::addColumn<qint64>("T");
    QTest::addColumn<MaskCase>("mask");
    for (const auto& [tokens, mask] : cases)
        QTest::addRow("%s T=%lld", maskCaseName(mask), static_cast<long long>(tokens)) << tokens << mask;
}

}  // namespace attnscope::test
