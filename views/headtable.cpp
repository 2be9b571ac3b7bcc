#include "headtable.h"

#include <QHeaderView>
#include <QSplitter>
#include <QTableWidget>

#include "figurewidget.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kTableWidth = 460;
constexpr int kRowPadding = 6;
}  // namespace

QString analysisPrompt()
{
    return QObject::tr("Run Analysis ▸ Run Analysis (Ctrl+R) to measure sinks, sparsity and head roles.");
}

QTableWidget* createHeadTable(TraceSession* session, QWidget* parent)
{
    auto* table = new QTableWidget(parent);
    table->verticalHeader()->hide();
    table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + kRowPadding);
    table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    table->horizontalHeader()->setStretchLastSection(true);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    QObject::connect(table, &QTableWidget::cellClicked, session, [table, session](int row, int) {
        session->select({table->item(row, 0)->data(Qt::DisplayRole).toInt(), table->item(row, 1)->data(Qt::DisplayRole).toInt()});
    });
    return table;
}

void setHeadCells(QTableWidget* table, int row, int layer, int head)
{
    for (int column : {0, 1}) {
        auto* item = new QTableWidgetItem;
        item->setData(Qt::DisplayRole, column == 0 ? layer : head);
        table->setItem(row, column, item);
    }
}

QSplitter* tableBesidePlots(QTableWidget* table, FigureWidget* top, FigureWidget* bottom, QWidget* parent)
{
    top->setPlaceholder(analysisPrompt());
    bottom->setPlaceholder(analysisPrompt());
    auto* plots = new QSplitter(Qt::Vertical, parent);
    plots->addWidget(top);
    plots->addWidget(bottom);
    auto* split = new QSplitter(Qt::Horizontal, parent);
    split->addWidget(table);
    split->addWidget(plots);
    split->setSizes({kTableWidth, 2 * kTableWidth});
    return split;
}

}  // namespace attnscope
