#include "tracepanel.h"

#include <QColor>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>

#include "tracesession.h"

namespace attnscope {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
constexpr int kRowPadding = 6;        ///< compact rows, as in the analysis tables
constexpr int kMaxWarningRows = 4;    ///< the warning list grows to this many rows, then scrolls
constexpr int kShownLayers = 8;       ///< layer rows always visible; longer models scroll
constexpr int kMinTextLines = 2;      ///< the input text box shrinks to this first
constexpr int kMismatchDarker = 130;  ///< a failed capture check in a dark red, readable on white
}  // namespace

TracePanel::TracePanel(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    m_summary = new QLabel(this);
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_text = new QPlainTextEdit(this);
    m_text->setReadOnly(true);
    m_text->setPlaceholderText(tr("Input text"));
    m_text->setMinimumHeight(m_text->fontMetrics().lineSpacing() * kMinTextLines + 2 * m_text->frameWidth());
    m_layers = new QTableWidget(this);
    m_layers->setColumnCount(7);
    m_layers->setHorizontalHeaderLabels(
        {tr("Layer"), tr("Heads"), tr("KV"), tr("d"), tr("Mask"), tr("Softcap"), tr("Positional")});
    m_layers->verticalHeader()->hide();
    m_layers->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_layers->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_layers->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_layers->verticalHeader()->setDefaultSectionSize(m_layers->fontMetrics().height() + kRowPadding);
    m_warnings = new QListWidget(this);
    m_warnings->setMaximumHeight((m_warnings->fontMetrics().height() + kRowPadding) * kMaxWarningRows);
    m_validation = new QLabel(tr("Validation"), this);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_summary);
    layout->addWidget(new QLabel(tr("Input text"), this));
    layout->addWidget(m_text, 1);
    layout->addWidget(new QLabel(tr("Layers"), this));
    layout->addWidget(m_layers, 3);
    layout->addWidget(m_validation);
    layout->addWidget(m_warnings);

    connect(session, &TraceSession::traceOpened, this, &TracePanel::refresh);
    connect(session, &TraceSession::traceClosed, this, &TracePanel::refresh);
    connect(m_layers, &QTableWidget::cellDoubleClicked, this, [this](int row, int) { m_session->select({row, 0}); });
    refresh();
}

void TracePanel::refresh() {
    m_layers->setRowCount(0);
    m_warnings->clear();
    if (!m_session->isOpen()) {
        m_summary->setText(tr("No trace open. Use File ▸ Open, or drop a *.attn.safetensors file here."));
        m_text->clear();
        return;
    }
    const Trace& t = *m_session->trace();
    const TraceMetadata& m = t.metadata();
    // The capture tool's self-check: a pass is a line of the summary, a mismatch a warning.
    const QString check = QString::fromStdString(describeCaptureCheck(m.captureCheck)).toHtmlEscaped();
    m_summary->setText(
        tr("<b>%1</b><br>%2 · %3 tokens · %4 layers · %5 · %6 MiB<br><small>%7</small>")
            .arg(QString::fromStdString(m.model).toHtmlEscaped(), QString::fromLatin1(traceKindName(m.kind)))
            .arg(t.tokens())
            .arg(t.numLayers())
            .arg(QString::fromLatin1(dtypeName(t.dtype())))
            .arg(double(t.fileSize()) / kMiB, 0, 'f', 1)
            .arg(QFileInfo(QString::fromStdString(t.path())).fileName().toHtmlEscaped()) +
        (m.captureCheck.present && m.captureCheck.passed() ? tr("<br><small>Capture check %1</small>").arg(check)
                                                           : QString()));
    m_text->setPlainText(QString::fromStdString(m.text));
    m_layers->setRowCount(t.numLayers());
    for (int l = 0; l < t.numLayers(); ++l) {
        const LayerConfig& c = t.config(l);
        QString mask = c.causal ? tr("causal") : tr("full");
        if (c.slidingWindow > 0) mask += tr(", window %1").arg(c.slidingWindow);
        if (c.alibi) mask += tr(", ALiBi");
        if (c.hasSinks()) mask += tr(", learned sinks");
        const QStringList cells = {QString::number(l),
                                   QString::number(c.heads),
                                   QString::number(c.kvHeads),
                                   QString::number(c.headDim),
                                   mask,
                                   c.softcap > 0 ? QString::number(c.softcap) : QStringLiteral("–"),
                                   QString::fromStdString(c.positional)};
        for (int col = 0; col < cells.size(); ++col) m_layers->setItem(l, col, new QTableWidgetItem(cells[col]));
    }
    // As tall as its rows (up to kShownLayers; then it scrolls) before the input text gets room.
    auto tableHeight = [this](int rows) {
        return m_layers->horizontalHeader()->sizeHint().height() + 2 * m_layers->frameWidth() +
               m_layers->verticalHeader()->defaultSectionSize() * rows +
               m_layers->horizontalScrollBar()->sizeHint().height();
    };
    m_layers->setMinimumHeight(tableHeight(std::min(t.numLayers(), kShownLayers)));
    m_layers->setMaximumHeight(tableHeight(t.numLayers()));
    if (!m.captureCheck.passed()) {
        auto* item = new QListWidgetItem(
            tr("Capture check %1").arg(QString::fromStdString(describeCaptureCheck(m.captureCheck))));
        item->setForeground(QColor(Qt::red).darker(kMismatchDarker));
        m_warnings->addItem(item);
    }
    for (const std::string& w : t.warnings()) m_warnings->addItem(QString::fromStdString(w));
    for (const NonFiniteCount& n : t.nonFinite())
        if (n.nan > 0 || n.inf > 0)
            m_warnings->addItem(tr("%1: %2 NaN, %3 Inf").arg(QString::fromStdString(n.tensor)).arg(n.nan).arg(n.inf));
    if (!t.hasQK())
        m_warnings->addItem(tr("Weights-only trace: maps from stored probabilities; no variants or neuron view"));
    // No warnings: one line instead of an empty box, so the layer table keeps the room.
    m_warnings->setVisible(m_warnings->count() > 0);
    m_validation->setText(m_warnings->count() > 0 ? tr("Validation") : tr("Validation: no warnings"));
}

}  // namespace attnscope
