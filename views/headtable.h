#pragma once
// Shared parts of the analysis panels (sinks, sparsity): a sortable per-head table whose rows
// select their head, laid out above two figures side by side.
#include <QString>

class QSplitter;
class QTableWidget;
class QWidget;

namespace attnscope {

class FigureWidget;
class TraceSession;

/// What the analysis panels say until the analysis exists.
QString analysisPrompt();
/// A read-only, sortable table; columns 0 and 1 hold the layer and head, and clicking a row
/// selects that head in the session.
QTableWidget* createHeadTable(TraceSession* session, QWidget* parent);
/// Fills the layer and head cells of `row` (numbers, so sorting is numeric).
void setHeadCells(QTableWidget* table, int row, int layer, int head);
/// A table across the whole width (a column per candidate mask or sink list does not share the
/// width well), `left` beside `right` below it.
QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent);

}  // namespace attnscope
