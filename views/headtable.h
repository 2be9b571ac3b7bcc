#pragma once
// Shared parts of the analysis panels (sinks, sparsity): a sortable per-head table whose rows
// select their head, laid out beside two stacked figures or above two figures side by side.
#include <QString>

class QSplitter;
class QTableWidget;
class QWidget;

namespace attnscope {

class FigureWidget;
class TraceSession;

/// "Run the analysis" prompt shown until the analysis exists.
QString analysisPrompt();
/// A read-only, sortable table; columns 0 and 1 hold the layer and head, and clicking a row
/// selects that head in the session.
QTableWidget* createHeadTable(TraceSession* session, QWidget* parent);
/// Fills the layer and head cells of `row` (numbers, so sorting is numeric).
void setHeadCells(QTableWidget* table, int row, int layer, int head);
/// The table on the left, `top` above `bottom` on the right.
QSplitter* tableBesidePlots(QTableWidget* table, FigureWidget* top, FigureWidget* bottom, QWidget* parent);
/// A wide table across the top, `left` beside `right` below it.
QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent);
/// After filling `table`: columns sized to their contents and headers, and the splitter of
/// tableBesidePlots widened so every column shows (up to most of the panel; the plots keep the rest).
void showAllColumns(QTableWidget* table);

}  // namespace attnscope
