#include "sinkspanel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QTableWidget>

#include "analysisrunner.h"
#include "figurebuilders.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kMaxListedSinks = 6;
constexpr int kLearnedColumn = 6;  // shown only for traces with learned sink logits (GPT-OSS)
}  // namespace

SinksPanel::SinksPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : HeadTablePanel(session, parent) {
    auto* run = new QPushButton(tr("Run analysis"), this);
    connect(run, &QPushButton::clicked, analysis, &AnalysisRunner::run);
    m_table->setColumnCount(7);
    m_table->setHorizontalHeaderLabels(
        {tr("Layer"), tr("Head"), tr("α₀"), tr("Sink"), tr("Hidden sinks"), tr("Role"), tr("Learned")});
    m_table->horizontalHeaderItem(2)->setToolTip(tr("First-token sink score: mean attention to key 0"));
    m_table->horizontalHeaderItem(3)->setToolTip(tr("First-token sink: α₀ above the threshold"));
    m_table->horizontalHeaderItem(4)->setToolTip(
        tr("Keys after the first with sink score α above the threshold: key (α)"));
    m_table->horizontalHeaderItem(kLearnedColumn)
        ->setToolTip(tr("Learned sink (a per-head logit in the softmax denominator, GPT-OSS): its share of the "
                        "attention mass, mean over rows of exp(sink − L)"));
    m_table->setColumnHidden(kLearnedColumn, true);
    auto* top = new QHBoxLayout;
    top->addWidget(m_summary, 1);
    top->addWidget(run);
    finishLayout(top);
    refreshTable();
}

void SinksPanel::clearTable() {
    HeadTablePanel::clearTable();
    m_table->setColumnHidden(kLearnedColumn, true);  // until a head with a learned sink fills it
}

std::optional<QString> SinksPanel::fillTable(const ModelAnalysis& model) {
    int hidden = 0, learned = 0;
    double learnedShare = 0;
    const QStringList tokens = traceTokens(m_session->trace()->metadata());
    m_table->setRowCount(int(model.heads.size()));
    for (int r = 0; r < int(model.heads.size()); ++r) {
        const HeadAnalysis& h = model.heads[size_t(r)];
        hidden += h.sinks.hiddenSinks.empty() ? 0 : 1;
        QStringList keys, withTokens;  // short in the cell, with the tokens on hover
        for (size_t i = 0; i < h.sinks.hiddenSinks.size() && i < kMaxListedSinks; ++i) {
            const int64_t k = h.sinks.hiddenSinks[i];
            const QString alpha = QString::number(double(h.sinks.alpha[size_t(k)]), 'f', 2);
            keys << QStringLiteral("%1 (%2)").arg(k).arg(alpha);
            withTokens << QStringLiteral("%1 “%2” (α %3)").arg(k).arg(tokens.value(int(k)).trimmed(), alpha);
        }
        if (h.sinks.hiddenSinks.size() > kMaxListedSinks) keys << QStringLiteral("…");
        setHeadCells(m_table, r, h.layer, h.head);
        auto* alpha = new QTableWidgetItem;
        alpha->setData(Qt::DisplayRole, QString::number(h.sinks.alpha0, 'f', 3).toDouble());
        m_table->setItem(r, 2, alpha);
        m_table->setItem(r, 3, new QTableWidgetItem(h.sinks.firstTokenSink ? tr("yes") : tr("no")));
        auto* hiddenItem = new QTableWidgetItem(keys.join(QStringLiteral(", ")));
        hiddenItem->setToolTip(withTokens.join(QLatin1Char('\n')));
        m_table->setItem(r, 4, hiddenItem);
        m_table->setItem(r, 5, new QTableWidgetItem(QString::fromStdString(h.role.label)));
        if (h.sinks.learnedSink) {
            ++learned;
            learnedShare += h.sinks.learnedSinkShare;
            auto* share = new QTableWidgetItem;
            share->setData(Qt::DisplayRole, QString::number(h.sinks.learnedSinkShare, 'f', 3).toDouble());
            share->setToolTip(tr("sink logit %1: %2% of this head's attention mass")
                                  .arg(double(h.sinks.learnedSinkLogit), 0, 'f', 3)
                                  .arg(100.0 * h.sinks.learnedSinkShare, 0, 'f', 1));
            m_table->setItem(r, kLearnedColumn, share);
        }
    }
    m_table->setColumnHidden(kLearnedColumn, learned == 0);
    QString summary = tr("Sink rate %1% of %2 heads (first-token α₀ > %3) · %4 heads with hidden sinks (α > %5)")
                          .arg(model.sinkRate, 0, 'f', 1)
                          .arg(model.heads.size())
                          .arg(model.options.head.sinks.firstTokenEps)
                          .arg(hidden)
                          .arg(model.options.head.sinks.hiddenThreshold);
    if (learned > 0)
        summary += tr(" · learned sinks in %1 heads take %2% of their attention mass on average")
                       .arg(learned)
                       .arg(100.0 * learnedShare / learned, 0, 'f', 1);
    return summary;
}

Figure SinksPanel::headFigure(const HeadAnalysis& head, const ModelAnalysis& model) const {
    return sinkFigure(head, traceTokens(m_session->trace()->metadata()), model.options.head.sinks);
}

Figure SinksPanel::traceFigure(const ModelAnalysis& model) const { return sinkRateFigure(model); }

}  // namespace attnscope
