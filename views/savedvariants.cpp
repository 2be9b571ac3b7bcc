// Saved variant programs as one QSettings array, rewritten whole on each change (a user keeps tens
// of programs, not thousands).
#include "savedvariants.h"

#include <QSettings>

#include <algorithm>
#include <utility>
#include <vector>

namespace attnscope::savedvariants {
namespace {
constexpr const char* kGroup = "variants/saved";
using Entry = std::pair<QString, QString>;  // name, program

std::vector<Entry> readAll() {
    QSettings s;
    std::vector<Entry> out;
    const int n = s.beginReadArray(QString::fromLatin1(kGroup));
    for (int i = 0; i < n; ++i) {
        s.setArrayIndex(i);
        const QString name = s.value(QStringLiteral("name")).toString().trimmed();
        if (!name.isEmpty()) out.emplace_back(name, s.value(QStringLiteral("program")).toString());
    }
    s.endArray();
    return out;
}

void writeAll(std::vector<Entry> entries) {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return QString::compare(a.first, b.first, Qt::CaseInsensitive) < 0;
    });
    QSettings s;
    s.remove(QString::fromLatin1(kGroup));
    s.beginWriteArray(QString::fromLatin1(kGroup), int(entries.size()));
    for (int i = 0; i < int(entries.size()); ++i) {
        s.setArrayIndex(i);
        s.setValue(QStringLiteral("name"), entries[size_t(i)].first);
        s.setValue(QStringLiteral("program"), entries[size_t(i)].second);
    }
    s.endArray();
}
}  // namespace

QStringList names() {
    QStringList out;
    for (const auto& [name, program] : readAll()) out << name;
    out.sort(Qt::CaseInsensitive);
    return out;
}

QString program(const QString& name) {
    for (const auto& [n, p] : readAll())
        if (n == name.trimmed()) return p;
    return {};
}

void store(const QString& name, const QString& program) {
    const QString key = name.trimmed();
    if (key.isEmpty()) return;
    auto entries = readAll();
    std::erase_if(entries, [&](const Entry& e) { return e.first == key; });
    entries.emplace_back(key, program);
    writeAll(std::move(entries));
}

bool remove(const QString& name) {
    auto entries = readAll();
    const size_t before = entries.size();
    std::erase_if(entries, [&](const Entry& e) { return e.first == name.trimmed(); });
    if (entries.size() == before) return false;
    writeAll(std::move(entries));
    return true;
}

}  // namespace attnscope::savedvariants
