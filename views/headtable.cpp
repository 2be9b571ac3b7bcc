#include "headtable.h"

#include <QHeaderView>
#include <QSplitter>
#include <QTableWidget>

#include "figurewidget.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kRowPadding = 6;
constexpr int kEqualShare = 1000;  ///< splitter sizes: table and plots half each
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

QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent) {
    left->setPlaceholder(analysisPrompt());
    right->setPlaceholder(analysisPrompt());
    auto* plots = new QSplitter(Qt::Horizontal, parent);
    plots->addWidget(left);
    plots->addWidget(right);
    auto* split = new QSplitter(Qt::Vertical, parent);
    split->addWidget(table);
    split->addWidget(plots);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 1);
    split->setSizes({kEqualShare, kEqualShare});  // the table's size hint would take it all
    return split;
}

}  // namespace attnscope
