#include "headtable.h"

#include <QHeaderView>
#include <QScrollBar>
#include <QSplitter>
#include <QStyle>
#include <QTableWidget>

#include <algorithm>

#include "figurewidget.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kTableWidth = 460;
constexpr int kRowPadding = 6;
constexpr double kMaxTableShare = 0.7;  ///< of the splitter, so the plots keep room
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

void showAllColumns(QTableWidget* table)
{
    table->resizeColumnsToContents();
    auto* split = qobject_cast<QSplitter*>(table->parentWidget());
    if (!split || split->count() != 2 || split->orientation() != Qt::Horizontal)
        return;  // a table above the plots has the whole width
    // The frame and, visible or not yet, the vertical scroll bar come on top of the columns.
    const int scrollBar = table->style()->pixelMetric(QStyle::PM_ScrollBarExtent, nullptr, table);
    const int chrome = table->width() - table->viewport()->width() + (table->verticalScrollBar()->isVisible() ? 0 : scrollBar);
    const int needed = table->horizontalHeader()->length() + chrome;
    const int total = split->width() > 0 ? split->width() : split->sizeHint().width();
    const int width = std::min(needed, int(total * kMaxTableShare));
    split->setSizes({width, std::max(0, total - width)});
}

QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent)
{
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
    return split;
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
