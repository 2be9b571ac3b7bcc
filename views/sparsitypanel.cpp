#include "sparsitypanel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QTableWidget>

#include "figurebuilders.h"
#include "tracesession.h"

namespace attnscope {

namespace {
const QList<double> kGammas = {0.5, 0.9, 0.95, 0.99};
const QList<int> kBlockSizes = {64, 128};
constexpr int kFixedColumns = 4;

QTableWidgetItem* numberItem(double v, int decimals) {
    auto* item = new QTableWidgetItem;
    item->setData(Qt::DisplayRole, QString::number(v, 'f', decimals).toDouble());
    return item;
}
}  // namespace

SparsityPanel::SparsityPanel(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : HeadTablePanel(session, parent) {
    m_gamma = new QComboBox(this);
    for (double g : kGammas) m_gamma->addItem(QStringLiteral("γ = %1").arg(g), g);
    m_block = new QComboBox(this);
    for (int b : kBlockSizes) m_block->addItem(tr("block %1").arg(b), b);
    m_overlay = new QCheckBox(tr("Show coverage blocks on the map"), this);
    auto* bar = new QHBoxLayout;
    bar->addWidget(m_gamma);
    bar->addWidget(m_block);
    bar->addWidget(m_overlay);
    bar->addWidget(m_summary, 1);
    finishLayout(bar);

    auto sync = [this] {
        const ViewOptions& o = m_session->options();
        const QSignalBlocker b1(m_gamma), b2(m_block), b3(m_overlay);
        m_gamma->setCurrentIndex(std::max(0, int(kGammas.indexOf(o.gamma))));
        m_block->setCurrentIndex(std::max(0, int(kBlockSizes.indexOf(o.blockSize))));
        m_overlay->setChecked(o.showCoverage);
    };
    sync();
    connect(session, &TraceSession::optionsChanged, this, [this, sync] {
        sync();
        refreshTable();
    });
    connect(m_gamma, &QComboBox::currentIndexChanged, this, &SparsityPanel::pushOptions);
    connect(m_block, &QComboBox::currentIndexChanged, this, &SparsityPanel::pushOptions);
    connect(m_overlay, &QCheckBox::toggled, this, &SparsityPanel::pushOptions);
    Q_UNUSED(analysis);
    refreshTable();
}

void SparsityPanel::pushOptions() {
    ViewOptions o = m_session->options();
    o.gamma = m_gamma->currentData().toDouble();
    o.blockSize = m_block->currentData().toInt();
    o.showCoverage = m_overlay->isChecked();
    m_session->setOptions(o);
}

std::optional<QString> SparsityPanel::fillTable(const ModelAnalysis& model) {
    if (model.heads.empty()) return std::nullopt;
    const ViewOptions& o = m_session->options();
    QStringList headers = {tr("Layer"), tr("Head"), tr("Density"), tr("Recall")};
    const auto& masks = model.heads.front().masks;
    // Two short lines per mask ("window", "recall / err"); its parameters on hover.
    for (const CandidateMaskResult& m : masks) {
        const QString name = QString::fromStdString(m.name);
        headers << tr("%1\nrecall / err").arg(name.section(QStringLiteral(" ("), 0, 0));
    }
    m_table->setColumnCount(int(headers.size()));
    m_table->setHorizontalHeaderLabels(headers);
    m_table->horizontalHeaderItem(2)->setToolTip(tr("Kept / allowed blocks to keep γ of each block-row's mass"));
    m_table->horizontalHeaderItem(3)->setToolTip(tr("Attention mass inside the kept blocks"));
    for (int m = 0; m < int(masks.size()); ++m)
        m_table->horizontalHeaderItem(kFixedColumns + m)
            ->setToolTip(tr("%1: attention mass it keeps (recall) / output error")
                             .arg(QString::fromStdString(masks[size_t(m)].name)));
    m_table->setRowCount(int(model.heads.size()));
    double densitySum = 0;
    for (int r = 0; r < int(model.heads.size()); ++r) {
        const HeadAnalysis& h = model.heads[size_t(r)];
        const GammaCoverage* c = h.coverage(o.blockSize, o.gamma);
        setHeadCells(m_table, r, h.layer, h.head);
        m_table->setItem(r, 2, numberItem(c ? c->density : 0.0, 3));
        m_table->setItem(r, 3, numberItem(c ? c->recall : 0.0, 3));
        densitySum += c ? c->density : 0.0;
        for (int m = 0; m < int(h.masks.size()) && kFixedColumns + m < headers.size(); ++m)
            m_table->setItem(r, kFixedColumns + m,
                             new QTableWidgetItem(QStringLiteral("%1 / %2")
                                                      .arg(h.masks[size_t(m)].recall, 0, 'f', 3)
                                                      .arg(h.masks[size_t(m)].outputError, 0, 'f', 3)));
    }
    return tr("Mean density %1% of allowed %2-blocks to keep γ = %3 of each block-row's mass")
        .arg(100 * densitySum / double(model.heads.size()), 0, 'f', 1)
        .arg(o.blockSize)
        .arg(o.gamma);
}

Figure SparsityPanel::headFigure(const HeadAnalysis& head, const ModelAnalysis&) const {
    return headDensityFigure(head);
}

Figure SparsityPanel::traceFigure(const ModelAnalysis& model) const { return maskRecallFigure(model); }

}  // namespace attnscope
