#include "headtable.h"

#include <QBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>

#include "figurewidget.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kRowPadding = 6;
constexpr int kSizeUnit = 1000;  ///< splitter sizes per unit of weight (whole pixels for any ratio)
}  // namespace

QString analysisPrompt() {
    return QObject::tr(
        "Sinks, sparsity and head roles appear here once the analysis has run: it starts when a trace "
        "opens, with its progress above the head grid (Analysis ▸ Run Analysis, Ctrl+R, runs it again).");
}

QTableWidget* createHeadTable(TraceSession* session, QWidget* parent) {
    auto* table = new QTableWidget(parent);
    table->verticalHeader()->hide();
    table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + kRowPadding);
    table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    table->horizontalHeader()->setStretchLastSection(true);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    QObject::connect(table, &QTableWidget::cellClicked, session, [table, session](int row, int) {
        session->select(
            {table->item(row, 0)->data(Qt::DisplayRole).toInt(), table->item(row, 1)->data(Qt::DisplayRole).toInt()});
    });
    return table;
}

void setHeadCells(QTableWidget* table, int row, int layer, int head) {
    for (int column : {0, 1}) {
        auto* item = new QTableWidgetItem;
        item->setData(Qt::DisplayRole, column == 0 ? layer : head);
        table->setItem(row, column, item);
    }
}

QSplitter* abovePlots(QWidget* above, FigureWidget* left, FigureWidget* right, int aboveWeight, int plotsWeight,
                      QWidget* parent) {
    auto* plots = new QSplitter(Qt::Horizontal, parent);
    plots->addWidget(left);
    plots->addWidget(right);
    auto* split = new QSplitter(Qt::Vertical, parent);
    split->addWidget(above);
    split->addWidget(plots);
    split->setStretchFactor(0, aboveWeight);
    split->setStretchFactor(1, plotsWeight);
    split->setSizes({aboveWeight * kSizeUnit, plotsWeight * kSizeUnit});
    return split;
}

QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent) {
    left->setPlaceholder(analysisPrompt());
    right->setPlaceholder(analysisPrompt());
    return abovePlots(table, left, right, 1, 1, parent);
}

HeadTablePanel::HeadTablePanel(TraceSession* session, QWidget* parent)
    : QWidget(parent), m_session(session), m_summary(new QLabel(analysisPrompt(), this)),
      m_table(createHeadTable(session, this)), m_headPlot(new FigureWidget(this)), m_tracePlot(new FigureWidget(this)) {
    m_summary->setWordWrap(true);
    connect(session, &TraceSession::analysisChanged, this, &HeadTablePanel::refreshTable);
    connect(session, &TraceSession::currentChanged, this, &HeadTablePanel::refreshPlots);
}

void HeadTablePanel::finishLayout(QBoxLayout* bar) {
    QSplitter* split = tableAbovePlots(m_table, m_headPlot, m_tracePlot, this);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(bar);
    layout->addWidget(split, 1);
}

int HeadTablePanel::rows() const { return m_table->rowCount(); }

void HeadTablePanel::clearTable() { m_table->setRowCount(0); }

void HeadTablePanel::refreshTable() {
    m_table->setSortingEnabled(false);
    clearTable();
    const auto& model = m_session->analysis();
    const std::optional<QString> summary = model ? fillTable(*model) : std::nullopt;
    if (summary) m_table->setSortingEnabled(true);
    m_summary->setText(summary.value_or(analysisPrompt()));
    refreshPlots();
}

void HeadTablePanel::refreshPlots() {
    const auto& model = m_session->analysis();
    const HeadAnalysis* h = model ? m_session->headAnalysis(m_session->current()) : nullptr;
    m_headPlot->setFigure(h ? std::optional<Figure>(headFigure(*h, *model)) : std::nullopt);
    m_tracePlot->setFigure(model ? std::optional<Figure>(traceFigure(*model)) : std::nullopt);
}

std::optional<Figure> HeadTablePanel::currentFigure() const {
    return m_headPlot->figure() ? m_headPlot->figure() : m_tracePlot->figure();
}

}  // namespace attnscope
