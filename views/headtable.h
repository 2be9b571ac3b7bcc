#pragma once
// Shared parts of the analysis panels (sinks, sparsity): a sortable per-head table whose rows
// select their head, laid out above two figures side by side, and the panel around them.
#include <QString>
#include <QWidget>

#include <optional>

#include "figuresource.h"

class QBoxLayout;
class QLabel;
class QSplitter;
class QTableWidget;

namespace attnscope {

class FigureWidget;
class TraceSession;
struct HeadAnalysis;
struct ModelAnalysis;

/// What the analysis panels say until the analysis exists.
QString analysisPrompt();
/// A read-only, sortable table; columns 0 and 1 hold the layer and head, and clicking a row
/// selects that head in the session.
QTableWidget* createHeadTable(TraceSession* session, QWidget* parent);
/// Fills the layer and head cells of `row` (numbers, so sorting is numeric).
void setHeadCells(QTableWidget* table, int row, int layer, int head);
/// `above` across the whole width, `left` beside `right` below it, the heights in the ratio
/// aboveWeight : plotsWeight (stretch and first sizes: the size hints would give one side all).
QSplitter* abovePlots(QWidget* above, FigureWidget* left, FigureWidget* right, int aboveWeight, int plotsWeight,
                      QWidget* parent);
/// A table across the whole width (a column per candidate mask or sink list does not share the
/// width well), `left` beside `right` below it, half the height each; the figures say what they
/// wait for (analysisPrompt).
QSplitter* tableAbovePlots(QTableWidget* table, FigureWidget* left, FigureWidget* right, QWidget* parent);

/// An analysis panel: a bar with a summary line (and the panel's controls), a per-head table of
/// the session's analysis, and below it a figure of the current head beside one of the whole
/// trace. The panel refreshes the table when the analysis changes and the figures when the
/// current head does; a subclass fills the rows and names the figures.
class HeadTablePanel : public QWidget, public FigureSource {
    Q_OBJECT
public:
    /// The current head's figure, else the trace's, else nullopt.
    std::optional<Figure> currentFigure() const override;
    int rows() const;

protected:
    HeadTablePanel(TraceSession* session, QWidget* parent);
    /// Puts `bar` (which holds m_summary) above the table and figures; once, from the constructor.
    void finishLayout(QBoxLayout* bar);
    /// Empties the table, fills it from the analysis (fillTable) and sets the summary (the prompt
    /// without an analysis), then the figures.
    void refreshTable();
    void refreshPlots();
    /// Empties the table before it is filled again (a subclass may also reset its columns).
    virtual void clearTable();
    /// Fills the rows (sorting is off while it runs) and returns the summary line, or nullopt
    /// when the analysis has nothing for this panel (the prompt is shown).
    virtual std::optional<QString> fillTable(const ModelAnalysis& model) = 0;
    virtual Figure headFigure(const HeadAnalysis& head, const ModelAnalysis& model) const = 0;
    virtual Figure traceFigure(const ModelAnalysis& model) const = 0;

    TraceSession* m_session;
    QLabel* m_summary;
    QTableWidget* m_table;

private:
    FigureWidget* m_headPlot;
    FigureWidget* m_tracePlot;
};

}  // namespace attnscope
