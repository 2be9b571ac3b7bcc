// Profiler panel: controls, worker-thread runs with progress, results table, chart and timeline.
#include "profilerpanel.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDialog>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSet>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QTabWidget>
#include <QVBoxLayout>

#include "attnscope/variant_expr.h"
#include "computeservice.h"
#include "figurebuilders.h"
#include "figurewidget.h"
#include "kerneltimelinecanvas.h"
#include "profilerunner.h"
#include "savedvariants.h"
#include "varianteditor.h"
#include "threadhandoff.h"

namespace attnscope {
namespace {
const QStringList kDefaultVariants = {"causal", "sliding:1024", "alibi", "softcap:30", "document:8", "linear"};
const QStringList kOtherVariants = {
    "full", "prefix:1024", "dilated:512:2", "relbias:0.01", "topk:8", "gamma:0.9", "vslash", "decode",
    // cuDNN's fused SDPA with the same masks: the production baseline (GPU only).
    "cudnn:causal", "cudnn:full", "cudnn:sliding:1024", "cudnn:alibi", "cudnn:softcap:30"};
constexpr int kProgressSteps = 1000;
constexpr int kMaxTokens = 1 << 20;
constexpr int kRelErrorColumn = 11;

QString cell(double v, int precision = 4) { return v >= 0 ? QString::number(v, 'g', precision) : QStringLiteral("–"); }
}  // namespace

ProfilerPanel::ProfilerPanel(std::shared_ptr<const Trace> trace, QWidget* parent) : QWidget(parent) {
    buildUi();
    setTrace(std::move(trace));
}

ProfilerPanel::~ProfilerPanel() {
    // The work holds no pointer to the panel; stop it, and let a service of our own finish it
    // (its destructor waits) while the panel's members are still alive.
    if (m_cancel) m_cancel->store(true);
    m_ownCompute.reset();
}

void ProfilerPanel::buildUi() {
    auto* source = new QGroupBox(tr("Shape"));
    m_fromTrace = new QRadioButton(tr("Trace Q/K/V"));
    m_synthetic = new QRadioButton(tr("Synthetic"));
    m_layer = new QSpinBox;
    m_head = new QSpinBox;
    m_head->setSpecialValueText(tr("all"));
    m_head->setMinimum(-1);
    m_batch = new QSpinBox;
    m_batch->setRange(1, 64);
    m_heads = new QSpinBox;
    m_heads->setRange(1, 128);
    m_heads->setValue(16);
    m_tokens = new QSpinBox;
    m_tokens->setRange(16, kMaxTokens);
    m_tokens->setSingleStep(1024);
    m_tokens->setValue(4096);
    m_headDim = new QSpinBox;
    m_headDim->setRange(16, 256);
    m_headDim->setSingleStep(64);
    m_headDim->setValue(128);
    m_dtype = new QComboBox;
    m_dtype->addItems({"bf16", "f16"});
    auto* traceRow = new QHBoxLayout;
    traceRow->addWidget(m_fromTrace);
    traceRow->addWidget(new QLabel(tr("layer")));
    traceRow->addWidget(m_layer);
    traceRow->addWidget(new QLabel(tr("head")));
    traceRow->addWidget(m_head);
    traceRow->addStretch();
    auto* synthRow = new QHBoxLayout;
    synthRow->addWidget(m_synthetic);
    for (auto [label, box] : {std::pair{"B", m_batch}, {"H", m_heads}, {"T", m_tokens}, {"D", m_headDim}}) {
        synthRow->addWidget(new QLabel(QString::fromLatin1(label)));
        synthRow->addWidget(box);
    }
    synthRow->addWidget(m_dtype);
    synthRow->addStretch();
    auto* sourceLayout = new QVBoxLayout(source);
    sourceLayout->addLayout(traceRow);
    sourceLayout->addLayout(synthRow);
    connect(m_fromTrace, &QRadioButton::toggled, this, &ProfilerPanel::updateSourceControls);

    auto* variants = new QGroupBox(tr("Variants"));
    m_variantList = new QListWidget;
    for (const QString& v : kDefaultVariants + kOtherVariants) {
        auto* item = new QListWidgetItem(v, m_variantList);
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(kDefaultVariants.contains(v) ? Qt::Checked : Qt::Unchecked);
    }
    m_extraVariants = new QLineEdit;
    m_extraVariants->setPlaceholderText(tr("more, comma-separated (e.g. sliding:256&document:4, expr:mask: k <= q)"));
    // User programs (docs/variants.md): the editor checks them as they are typed and adds them here.
    auto* writeProgram = new QPushButton(tr("Write a variant…"));
    writeProgram->setObjectName(QStringLiteral("writeProgram"));
    writeProgram->setToolTip(tr("Write a mask / score program; Profile adds it to the variants above"));
    connect(writeProgram, &QPushButton::clicked, this, [this] {
        auto* dialog = findChild<QDialog*>(QStringLiteral("variantEditorDialog"));
        if (!dialog) {
            dialog = new QDialog(this);
            dialog->setObjectName(QStringLiteral("variantEditorDialog"));
            dialog->setWindowTitle(tr("Variant program"));
            auto* editor = new VariantEditor(dialog);
            auto* layout = new QVBoxLayout(dialog);
            layout->addWidget(editor);
            connect(editor, &VariantEditor::programChanged, this, [this](const QString& token) {
                if (!token.isEmpty()) emit variantProgramChanged(token);
            });
            connect(editor, &VariantEditor::savedChanged, this, &ProfilerPanel::refreshSavedVariants);
            connect(editor, &VariantEditor::profileRequested, this, [this](const QString& token) {
                const QString text = m_extraVariants->text().trimmed();
                m_extraVariants->setText(text.isEmpty() ? token : text + QStringLiteral(",") + token);
            });
        }
        dialog->show();
        dialog->raise();
    });
    refreshSavedVariants();
    auto* variantsLayout = new QVBoxLayout(variants);
    variantsLayout->addWidget(m_variantList);
    variantsLayout->addWidget(m_extraVariants);
    variantsLayout->addWidget(writeProgram);

    auto* options = new QGroupBox(tr("Run"));
    m_backend = new QComboBox;
    m_backend->addItem(tr("Auto (GPU, else CPU)"), int(BackendChoice::Auto));
    m_backend->addItem(tr("GPU (CUPTI)"), int(BackendChoice::Gpu));
    m_backend->addItem(tr("CPU reference"), int(BackendChoice::Cpu));
    m_cold = new QCheckBox(tr("Cold L2 (flush before each sample)"));
    m_metrics = new QCheckBox(tr("Hardware metrics (CUPTI range profiler, replay pass)"));
    m_maxSamples = new QSpinBox;
    m_maxSamples->setRange(1, 10000);
    m_maxSamples->setValue(StoppingRule{}.maxSamples);
    m_runButton = new QPushButton(tr("Run profile"));
    m_cancelButton = new QPushButton(tr("Cancel"));
    m_cancelButton->setEnabled(false);
    m_progress = new QProgressBar;
    m_progress->setRange(0, kProgressSteps);
    m_status = new QLabel;
    m_backendLabel = new QLabel;
    m_backendLabel->setWordWrap(true);
    auto* form = new QFormLayout(options);
    form->addRow(tr("Backend"), m_backend);
    form->addRow(m_cold);
    form->addRow(m_metrics);
    form->addRow(tr("Max samples"), m_maxSamples);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_runButton);
    buttons->addWidget(m_cancelButton);
    const std::pair<QString, QString> formats[] = {{QStringLiteral("json"), tr("JSON")},
                                                   {QStringLiteral("csv"), tr("CSV")},
                                                   {QStringLiteral("perfetto"), tr("Perfetto")}};
    for (const auto& [format, name] : formats) {
        auto* b = new QPushButton(tr("Export %1…").arg(name));
        b->setEnabled(false);
        connect(b, &QPushButton::clicked, this, [this, format] { exportReport(format); });
        buttons->addWidget(b);
        m_exportButtons << b;
    }
    form->addRow(buttons);
    form->addRow(m_progress);
    form->addRow(m_status);
    connect(m_runButton, &QPushButton::clicked, this, &ProfilerPanel::run);
    connect(m_cancelButton, &QPushButton::clicked, this, &ProfilerPanel::cancel);

    m_table = new QTableWidget;
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->verticalHeader()->setVisible(false);
    m_chart = new FigureWidget;
    m_chart->setPlaceholder(tr("Run a profile to see the median time per variant."));
    m_timeline = new KernelTimelineCanvas;
    auto* results = new QTabWidget;
    results->addTab(m_table, tr("Table"));
    results->addTab(m_chart, tr("Chart"));
    results->addTab(m_timeline, tr("Kernel timeline"));

    auto* top = new QHBoxLayout;
    auto* left = new QVBoxLayout;
    left->addWidget(source);
    left->addWidget(options);
    top->addLayout(left, 3);
    top->addWidget(variants, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(m_backendLabel);
    layout->addWidget(results, 1);
}

void ProfilerPanel::setTrace(std::shared_ptr<const Trace> trace) {
    m_trace = std::move(trace);
    const bool qk = m_trace && m_trace->hasQK();
    m_fromTrace->setEnabled(qk);
    if (qk) {
        m_layer->setRange(0, m_trace->numLayers() - 1);
        m_head->setRange(-1, m_trace->config(0).heads - 1);
        m_fromTrace->setChecked(true);
    } else {
        m_synthetic->setChecked(true);
    }
    m_fromTrace->setToolTip(qk ? QString() : tr("open a trace with Q/K/V to profile its own data"));
    updateSourceControls();
}

void ProfilerPanel::setHead(int layer, int head) {
    if (!m_trace || layer < 0 || layer >= m_trace->numLayers()) return;
    m_layer->setValue(layer);
    m_head->setRange(-1, m_trace->config(layer).heads - 1);
    m_head->setValue(head);
}

void ProfilerPanel::updateSourceControls() {
    const bool trace = m_fromTrace->isChecked();
    m_layer->setEnabled(trace);
    m_head->setEnabled(trace);
    for (QWidget* w : {static_cast<QWidget*>(m_batch), static_cast<QWidget*>(m_heads), static_cast<QWidget*>(m_tokens),
                       static_cast<QWidget*>(m_headDim)})
        w->setEnabled(!trace);
}

namespace {
constexpr int kTokenRole = Qt::UserRole;      // the variant token of a saved program's item
constexpr int kSavedRole = Qt::UserRole + 1;  // true on items listed from the user's settings
QString itemToken(const QListWidgetItem* item) {
    const QVariant token = item->data(kTokenRole);
    return token.isValid() ? token.toString() : item->text();
}
}  // namespace

void ProfilerPanel::refreshSavedVariants() {
    QSet<QString> checked;
    for (int i = m_variantList->count() - 1; i >= 0; --i) {
        auto* item = m_variantList->item(i);
        if (!item->data(kSavedRole).toBool()) continue;
        if (item->checkState() == Qt::Checked) checked.insert(item->text());
        delete m_variantList->takeItem(i);
    }
    for (const QString& name : savedvariants::names()) {
        auto parsed = parseVariantExpr(savedvariants::program(name).toStdString(), name.toStdString());
        if (!parsed) continue;  // the editor keeps only programs that parse; a hand-edited setting may not
        auto* item = new QListWidgetItem(name, m_variantList);
        item->setData(kTokenRole, QStringLiteral("expr:") + QString::fromStdString((*parsed)->canonical));
        item->setData(kSavedRole, true);
        item->setToolTip(tr("Saved program: %1").arg(QString::fromStdString((*parsed)->canonical)));
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(checked.contains(name) ? Qt::Checked : Qt::Unchecked);
    }
}

void ProfilerPanel::setVariants(const QStringList& tokens) {
    QStringList extra = tokens;
    for (int i = 0; i < m_variantList->count(); ++i) {
        auto* item = m_variantList->item(i);
        item->setCheckState(tokens.contains(itemToken(item)) ? Qt::Checked : Qt::Unchecked);
        extra.removeAll(itemToken(item));
    }
    m_extraVariants->setText(extra.join(','));
}

void ProfilerPanel::setSyntheticShape(int batch, int heads, int tokens, int headDim) {
    m_synthetic->setChecked(true);
    m_batch->setValue(batch);
    m_heads->setValue(heads);
    m_tokens->setValue(tokens);
    m_headDim->setValue(headDim);
}

void ProfilerPanel::setBackendChoice(BackendChoice choice) {
    m_backend->setCurrentIndex(m_backend->findData(int(choice)));
}

void ProfilerPanel::setMaxSamples(int samples) { m_maxSamples->setValue(samples); }

ProfileRequest ProfilerPanel::request() const {
    ProfileRequest r;
    ShapeSource s;
    s.dtype = m_dtype->currentText() == "f16" ? GpuDType::F16 : GpuDType::BF16;
    if (m_fromTrace->isChecked() && m_trace) {
        s.trace = m_trace;
        s.layer = m_layer->value();
        s.head = m_head->value();
    } else {
        s.batch = m_batch->value();
        s.heads = m_heads->value();
        s.kvHeads = s.heads;
        s.tokens = m_tokens->value();
        s.headDim = m_headDim->value();
    }
    r.shapes = {s};
    for (int i = 0; i < m_variantList->count(); ++i)
        if (m_variantList->item(i)->checkState() == Qt::Checked)
            r.variants.push_back(itemToken(m_variantList->item(i)).toStdString());
    for (const std::string& t : splitVariantList(m_extraVariants->text().toStdString()))
        if (const QString s = QString::fromStdString(t).trimmed(); !s.isEmpty()) r.variants.push_back(s.toStdString());
    r.backend = BackendChoice(m_backend->currentData().toInt());
    r.cold = m_cold->isChecked();
    r.metrics = m_metrics->isChecked();
    r.stop.maxSamples = m_maxSamples->value();
    r.stop.minSamples = std::min(r.stop.minSamples, r.stop.maxSamples);
    return r;
}

bool ProfilerPanel::isRunning() const { return m_runnerBusy; }

void ProfilerPanel::deliver(Result<ProfileReport> result) {
    if (!m_runnerBusy) return;  // not ours (or already delivered)
    m_runnerBusy = false;
    showResult(std::move(result));
}

void ProfilerPanel::run() {
    if (isRunning()) return;
    const ProfileRequest req = request();
    m_cancel = std::make_shared<std::atomic<bool>>(false);
    m_runButton->setEnabled(false);
    m_cancelButton->setEnabled(true);
    m_progress->setValue(0);
    m_status->setText(tr("starting…"));
    clearResults();  // the last run's results would read as this one's if it fails or is cancelled
    // Progress crosses threads as queued calls; the QPointer drops them if the panel is gone.
    QPointer<ProfilerPanel> self(this);
    auto cancel = m_cancel;
    ProgressFn progress = [self, cancel](double fraction, std::string_view stage) {
        const QString label = QString::fromUtf8(stage.data(), qsizetype(stage.size()));
        postToGuiThread(qApp, [self, fraction, label] {
            if (self) self->onProgress(fraction, label);
        });
        return !cancel->load();
    };
    Work work = [req, progress] { return runProfileOnBestBackend(req, progress); };
    if (!m_runner) {
        // A panel on its own (no main window) gets a service of its own: the one way runs go,
        // on a GPU worker thread that owns the CUDA context and CUPTI.
        m_ownCompute = std::make_unique<ComputeService>();
        new ProfileRunner(m_ownCompute.get(), this);
    }
    m_runnerBusy = true;
    m_runner(std::move(work));
}

void ProfilerPanel::clearResults() {
    m_report.reset();
    m_table->clear();
    m_table->setRowCount(0);
    m_table->setColumnCount(0);
    m_chart->setFigure(std::nullopt);
    m_timeline->setRecords({}, {});
    m_backendLabel->clear();
    for (auto* b : m_exportButtons) b->setEnabled(false);
}

void ProfilerPanel::cancel() {
    if (m_cancel) m_cancel->store(true);
    m_status->setText(tr("cancelling…"));
}

void ProfilerPanel::onProgress(double fraction, const QString& stage) {
    if (!isRunning()) return;
    m_progress->setValue(int(fraction * kProgressSteps));
    m_status->setText(stage);
}

void ProfilerPanel::showResult(Result<ProfileReport> result) {
    m_runButton->setEnabled(true);
    m_cancelButton->setEnabled(false);
    if (!result) {
        const QString msg = QString::fromStdString(result.message());
        m_status->setText(result.status().code() == ErrorCode::Cancelled ? tr("cancelled") : tr("failed: %1").arg(msg));
        if (result.status().code() != ErrorCode::Cancelled) emit profilingFailed(msg);
        return;
    }
    m_report = std::move(*result);
    m_progress->setValue(kProgressSteps);
    m_status->setText(tr("done in %1 s").arg(m_report->wallSeconds, 0, 'f', 1));
    QString label =
        tr("Backend: %1 — %2 (%3)")
            .arg(QString::fromStdString(m_report->backend), QString::fromStdString(m_report->backendDescription),
                 QString::fromStdString(m_report->mode));
    if (!m_report->fallbackReason.empty())
        label += "<br><b style='color:#b05000'>" + tr("CPU fallback: ") +
                 QString::fromStdString(m_report->fallbackReason).toHtmlEscaped() + "</b>";
    if (!m_report->metricsNote.empty())
        label += "<br><span style='color:#b05000'>" + QString::fromStdString(m_report->metricsNote).toHtmlEscaped() +
                 "</span>";
    m_backendLabel->setText(label);
    if (!m_report->shapes.empty()) {
        const ShapeProfile& shape = m_report->shapes.front();
        fillTable(shape, m_report->backend);
        m_chart->setFigure(Figure(profileTimeFigure(shape, m_report->backend)));
        std::vector<std::string> labels;
        for (const auto& v : shape.variants) labels.push_back(v.label);
        m_timeline->setRecords(shape.records, labels);
    }
    for (auto* b : m_exportButtons) b->setEnabled(true);
    emit profileFinished();
}

void ProfilerPanel::fillTable(const ShapeProfile& shape, const std::string& backend) {
    const QStringList headers = {tr("variant"), tr("backend"),        tr("median ms"), tr("min ms"),
                                 tr("IQR ms"),  tr("rel std"),        tr("n"),         tr("TFLOP/s"),
                                 tr("GB/s"),    tr("ratio to dense"), tr("density"),   tr("rel error"),
                                 tr("recall"),  tr("kernels / error")};
    m_table->clear();
    m_table->setColumnCount(int(headers.size()));
    m_table->setHorizontalHeaderLabels(headers);
    m_table->setRowCount(int(shape.variants.size()));
    for (int row = 0; row < int(shape.variants.size()); ++row) {
        const VariantResult& v = shape.variants[size_t(row)];
        const std::string& rowBackend = v.backend.empty() ? backend : v.backend;
        QStringList kernels;
        for (const auto& k : v.kernels)  // registers and shared memory exist on the GPU only
            kernels << (rowBackend == "GPU" ? QStringLiteral("%1 [%2 regs, %3 B smem]")
                                                  .arg(QString::fromStdString(k.name))
                                                  .arg(k.registers)
                                                  .arg(k.staticSharedBytes + k.dynamicSharedBytes)
                                            : QString::fromStdString(k.name));
        const QString relError = v.relError >= 0 ? cell(v.relError, 3) : v.accuracyNote.empty() ? cell(-1) : tr("n/a");
        const QStringList cells = {
            QString::fromStdString(v.label) + (v.isDense ? tr(" (dense)") : QString()),
            QString::fromStdString(rowBackend),
            cell(v.stats.median),
            cell(v.stats.min),
            cell(v.stats.iqr),
            QString::number(v.stats.relStdDev * 100, 'f', 2) + "%",
            QString::number(v.stats.n),
            cell(v.tflops),
            cell(v.gbps),
            cell(v.ratioToDense),
            cell(v.density),
            relError,
            cell(v.recall),
            v.error.empty() ? kernels.join(QStringLiteral("; ")) : QString::fromStdString(v.error)};
        for (int c = 0; c < cells.size(); ++c) m_table->setItem(row, c, new QTableWidgetItem(cells[c]));
        if (!v.accuracyNote.empty())
            m_table->item(row, kRelErrorColumn)->setToolTip(QString::fromStdString(v.accuracyNote));
        if (!v.error.empty()) m_table->item(row, int(cells.size()) - 1)->setToolTip(QString::fromStdString(v.error));
    }
    m_table->horizontalHeaderItem(kRelErrorColumn)
        ->setToolTip(
            tr("‖O − O_dense‖ / ‖O_dense‖ on the trace's data; n/a where the variant is a different function"));
    m_table->resizeColumnsToContents();
}

void ProfilerPanel::exportReport(const QString& format) {
    if (!m_report) return;
    const QString filter = format == "csv" ? tr("CSV (*.csv)") : tr("JSON (*.json)");
    const QString path = QFileDialog::getSaveFileName(this, tr("Export profile"),
                                                      QStringLiteral("profile.%1")
                                                          .arg(format == "csv"        ? "csv"
                                                               : format == "perfetto" ? "trace.json"
                                                                                      : "json"),
                                                      filter);
    if (path.isEmpty()) return;
    if (Status st = writeProfile(*m_report, path.toStdString(), format.toStdString()); !st)
        emit profilingFailed(QString::fromStdString(st.message()));
}

}  // namespace attnscope
