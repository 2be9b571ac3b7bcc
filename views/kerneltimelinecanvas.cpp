// Kernel timeline canvas: ImGui draw lists on a QOpenGLWidget.
#include "kerneltimelinecanvas.h"

#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLFunctions>
#include <QPainter>
#include <QWheelEvent>

#include <cfloat>
#include <cmath>

#include <imgui.h>
#include <imgui_impl_opengl3.h>

namespace attnscope {
namespace {
constexpr double kWheelZoomPerUnit = 1.0025;  // per angleDelta unit: one notch (120) ≈ 1.35×
constexpr double kMinLabelPx = 40;            // kernel names are drawn inside boxes at least this wide
constexpr float kSecondsPerFrameFallback = 1.0f / 60.0f;
constexpr int kAxisTicks = 8;

ImU32 variantColour(int track) {
    // Tableau-like palette: adjacent tracks differ clearly.
    static const ImU32 palette[] = {IM_COL32(78, 121, 167, 255),  IM_COL32(242, 142, 43, 255),
                                    IM_COL32(225, 87, 89, 255),   IM_COL32(118, 183, 178, 255),
                                    IM_COL32(89, 161, 79, 255),   IM_COL32(237, 201, 72, 255),
                                    IM_COL32(176, 122, 161, 255), IM_COL32(255, 157, 167, 255),
                                    IM_COL32(156, 117, 95, 255),  IM_COL32(186, 176, 172, 255)};
    return palette[size_t(track) % (sizeof palette / sizeof palette[0])];
}

/// "12.3 µs" / "1.23 ms" for axis labels and tooltips.
QString formatTime(double us) {
    if (std::abs(us) >= 1000) return QString::number(us / 1000.0, 'g', 4) + " ms";
    return QString::number(us, 'g', 4) + " µs";
}

}  // namespace

KernelTimelineCanvas::KernelTimelineCanvas(QWidget* parent) : QOpenGLWidget(parent) {
    setMouseTracking(true);
    setMinimumHeight(int(kAxisHeight + 2 * kTrackHeight));
    m_frameClock.start();
}

KernelTimelineCanvas::~KernelTimelineCanvas() {
    if (!m_imgui) return;
    makeCurrent();
    ImGui::SetCurrentContext(m_imgui);
    if (m_imguiReady) ImGui_ImplOpenGL3_Shutdown();
    ImGui::DestroyContext(m_imgui);
    doneCurrent();
}

void KernelTimelineCanvas::setRecords(std::vector<KernelRecord> records, std::vector<std::string> variantLabels) {
    m_records = std::move(records);
    m_labels = std::move(variantLabels);
    m_tracks = timelineTracks(m_records, m_labels);
    double first = 0, last = 1;
    for (size_t i = 0; i < m_records.size(); ++i) {
        const auto& r = m_records[i];
        first = i == 0 ? r.startUs : std::min(first, r.startUs);
        last = i == 0 ? r.startUs + r.durationUs : std::max(last, r.startUs + r.durationUs);
    }
    m_view.reset(first, last, plotWidth());
    setMinimumHeight(int(kAxisHeight + kTrackHeight * std::max<size_t>(2, m_tracks.names.size())));
    update();
}

int KernelTimelineCanvas::trackAt(double y) const {
    const double t = (y - kAxisHeight) / kTrackHeight;
    if (t < 0 || t >= double(m_tracks.names.size())) return -1;
    return int(t);
}

QString KernelTimelineCanvas::detailsAt(QPointF pos) const {
    const int track = trackAt(pos.y());
    if (track < 0 || pos.x() < kLabelWidth) return {};
    const auto boxes = layoutTimeline(m_records, m_tracks, m_view);
    const int hit = hitTest(boxes, pos.x() - kLabelWidth, track);
    if (hit < 0) return {};
    const TimelineBox& b = boxes[size_t(hit)];
    if (b.count > 1) return QStringLiteral("%1 kernels folded here — zoom in to separate them").arg(b.count);
    const KernelRecord& r = m_records[size_t(b.first)];
    const QString variant = r.variantIndex >= 0 && size_t(r.variantIndex) < m_labels.size()
                                ? QString::fromStdString(m_labels[size_t(r.variantIndex)])
                                : QStringLiteral("?");
    if (r.correlationId == 0)  // a CPU reference call: no launch configuration, registers or streams
        return QStringLiteral("%1\nvariant %2 · sample %3\nduration %4 · start %5 (CPU, wall clock)")
            .arg(QString::fromStdString(r.name), variant)
            .arg(r.sample)
            .arg(formatTime(r.durationUs), formatTime(r.startUs));
    return QStringLiteral(
               "%1\nvariant %2 · sample %3\nduration %4 · start %5\ngrid [%6,%7,%8] · block [%9,%10,%11]\n"
               "registers/thread %12 · shared memory %13 B (static %14 + dynamic %15)\n"
               "stream %16 · correlation %17 · external id %18")
        .arg(QString::fromStdString(r.name), variant)
        .arg(r.sample)
        .arg(formatTime(r.durationUs), formatTime(r.startUs))
        .arg(r.grid[0])
        .arg(r.grid[1])
        .arg(r.grid[2])
        .arg(r.block[0])
        .arg(r.block[1])
        .arg(r.block[2])
        .arg(r.registers)
        .arg(r.staticSharedBytes + r.dynamicSharedBytes)
        .arg(r.staticSharedBytes)
        .arg(r.dynamicSharedBytes)
        .arg(r.streamId)
        .arg(r.correlationId)
        .arg(qulonglong(r.externalId));
}

void KernelTimelineCanvas::initializeGL() {
    IMGUI_CHECKVERSION();
    m_imgui = ImGui::CreateContext();
    ImGui::SetCurrentContext(m_imgui);
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // no imgui.ini next to the user's files
    io.LogFilename = nullptr;
    ImGui::StyleColorsLight();
    m_imguiReady = ImGui_ImplOpenGL3_Init(nullptr);
    if (!m_imguiReady) m_renderError = tr("the ImGui OpenGL 3 renderer could not start on this OpenGL context");
}

void KernelTimelineCanvas::resizeGL(int, int) { m_view.resize(plotWidth()); }

void KernelTimelineCanvas::paintGL() {
    if (!m_imguiReady) {
        paintFallback();
        return;
    }
    ImGui::SetCurrentContext(m_imgui);
    ImGuiIO& io = ImGui::GetIO();
    const float dpr = float(devicePixelRatioF());
    io.DisplaySize = ImVec2(float(width()), float(height()));
    io.DisplayFramebufferScale = ImVec2(dpr, dpr);
    const float dt = float(m_frameClock.restart()) / 1000.0f;
    io.DeltaTime = dt > 0 ? dt : kSecondsPerFrameFallback;
    io.MousePos = m_mouse.x() >= 0 ? ImVec2(float(m_mouse.x()), float(m_mouse.y())) : ImVec2(-FLT_MAX, -FLT_MAX);
    ImGui_ImplOpenGL3_NewFrame();
    ImGui::NewFrame();
    drawTimeline();
    ImGui::Render();
    QOpenGLFunctions* gl = context()->functions();
    gl->glViewport(0, 0, int(width() * dpr), int(height() * dpr));
    gl->glClearColor(1, 1, 1, 1);
    gl->glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
}

void KernelTimelineCanvas::drawTimeline() {
    ImGui::SetNextWindowPos(ImVec2(0, 0));
    ImGui::SetNextWindowSize(ImGui::GetIO().DisplaySize);
    ImGui::Begin("kernel timeline", nullptr,
                 ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                     ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoScrollWithMouse);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float left = float(kLabelWidth), w = float(width());
    if (m_records.empty()) {
        dl->AddText(ImVec2(8, 8), IM_COL32(90, 90, 90, 255), "No kernel records yet: run a profile.");
        ImGui::End();
        return;
    }
    // Time axis with 1/2/5 ticks, every label in one unit.
    const double step = timeAxisStep(m_view.spanUs(), kAxisTicks);
    for (double t = std::ceil(m_view.startUs / step) * step; t <= m_view.endUs(); t += step) {
        const float x = left + float(m_view.timeToX(t));
        dl->AddLine(ImVec2(x, float(kAxisHeight) - 6), ImVec2(x, float(height())), IM_COL32(220, 220, 220, 255));
        const std::string label = formatAxisTime(t - m_view.domainStartUs, step);
        dl->AddText(ImVec2(x + 2, 2), IM_COL32(60, 60, 60, 255), label.c_str());
    }
    // Track names and backgrounds.
    for (size_t t = 0; t < m_tracks.names.size(); ++t) {
        const float y = float(kAxisHeight + t * kTrackHeight);
        if (t % 2) dl->AddRectFilled(ImVec2(0, y), ImVec2(w, y + float(kTrackHeight)), IM_COL32(245, 245, 248, 255));
        dl->AddText(ImVec2(4, y + 4), IM_COL32(30, 30, 30, 255), m_tracks.names[t].c_str());
    }
    // Kernels (the layout pass already folded sub-pixel neighbours).
    dl->PushClipRect(ImVec2(left, 0), ImVec2(w, float(height())), true);
    for (const TimelineBox& b : layoutTimeline(m_records, m_tracks, m_view)) {
        const float y0 = float(kAxisHeight + b.track * kTrackHeight) + 3, y1 = y0 + float(kTrackHeight) - 6;
        const ImVec2 p0(left + float(b.x0), y0), p1(left + float(b.x1), y1);
        const ImU32 c = variantColour(b.track);
        dl->AddRectFilled(p0, p1, b.count > 1 ? (c & 0x00FFFFFF) | 0x80000000 : c);
        if (b.x1 - b.x0 >= kMinLabelPx && b.count == 1) {
            const std::string& name = m_records[size_t(b.first)].name;
            dl->PushClipRect(p0, p1, true);
            dl->AddText(ImVec2(p0.x + 3, y0 + 1), IM_COL32(255, 255, 255, 255), name.c_str());
            dl->PopClipRect();
        }
    }
    dl->PopClipRect();
    // Hover: the launch details of the kernel under the cursor.
    const QString details = m_dragging ? QString() : detailsAt(m_mouse);
    if (!details.isEmpty()) {
        ImGui::BeginTooltip();
        ImGui::TextUnformatted(details.toUtf8().constData());
        ImGui::EndTooltip();
    }
    ImGui::End();
}

void KernelTimelineCanvas::paintFallback() {
    QPainter p(this);
    p.fillRect(rect(), Qt::white);
    p.drawText(rect().adjusted(8, 8, -8, -8), Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap,
               tr("Kernel timeline unavailable: %1. The table and the Perfetto export still hold every record.")
                   .arg(m_renderError));
}

void KernelTimelineCanvas::mousePressEvent(QMouseEvent* e) {
    if (e->button() == Qt::LeftButton) m_dragging = true;
    m_mouse = e->position();
    update();
}

void KernelTimelineCanvas::mouseMoveEvent(QMouseEvent* e) {
    if (m_dragging) m_view.panPixels(e->position().x() - m_mouse.x());
    m_mouse = e->position();
    update();
}

void KernelTimelineCanvas::mouseReleaseEvent(QMouseEvent* e) {
    if (e->button() == Qt::LeftButton) m_dragging = false;
    update();
}

void KernelTimelineCanvas::mouseDoubleClickEvent(QMouseEvent*) {
    m_view.fitAll();
    update();
}

void KernelTimelineCanvas::wheelEvent(QWheelEvent* e) {
    const double x = e->position().x() - kLabelWidth;
    m_view.zoomAbout(std::max(0.0, x), std::pow(kWheelZoomPerUnit, e->angleDelta().y()));
    e->accept();
    update();
}

void KernelTimelineCanvas::leaveEvent(QEvent*) {
    m_mouse = QPointF(-1, -1);
    update();
}

}  // namespace attnscope
