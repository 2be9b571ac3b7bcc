// Figure dispatch and encoding: PNG through QImage, SVG through QSvgGenerator, PDF through
// QPdfWriter (one page per figure). Files are written atomically.
#include "figure.h"

#include <QBuffer>
#include <QFileInfo>
#include <QImage>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSvgGenerator>

#include <algorithm>
#include <cmath>

#include "attnscope/trace.h"

namespace attnscope {

namespace {
constexpr double kPointsPerInch = 72;
constexpr double kInchesPerMeter = 39.3700787;
// QPdfWriter's painter works in device pixels of its resolution; drawing in points scaled up
// keeps line widths and glyph positions exact instead of rounded to whole points.
constexpr int kPdfResolution = 720;
constexpr qint64 kMaxPngPixels = 400'000'000;  // refuse before QImage fails to allocate

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

QSizeF sizeFor(const Figure& figure, const FigureSaveOptions& o) {
    const QSizeF s = o.size.isEmpty() ? preferredFigureSize(figure) : o.size;
    return s;
}

void paintPage(QPainter& p, const Figure& figure, const QSizeF& size) {
    p.setRenderHint(QPainter::Antialiasing, true);
    p.setRenderHint(QPainter::TextAntialiasing, true);
    p.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
    renderFigure(p, QRectF(QPointF(0, 0), size), figure);
}

Status pdfError(const QString& what) { return {ErrorCode::IoError, QStringLiteral("PDF: %1").arg(what).toStdString()}; }

}  // namespace

QString figureTitle(const Figure& figure) {
    return std::visit([](const auto& f) { return f.title; }, figure);
}

std::optional<FigureFormat> figureFormatFromPath(const QString& path) {
    const QString ext = QFileInfo(path).suffix().toLower();
    if (ext == QLatin1String("png")) return FigureFormat::Png;
    if (ext == QLatin1String("svg")) return FigureFormat::Svg;
    if (ext == QLatin1String("pdf")) return FigureFormat::Pdf;
    return std::nullopt;
}

QString figureFormatName(FigureFormat format) {
    switch (format) {
    case FigureFormat::Png: return QStringLiteral("png");
    case FigureFormat::Svg: return QStringLiteral("svg");
    case FigureFormat::Pdf: return QStringLiteral("pdf");
    }
    return {};
}

QSizeF preferredFigureSize(const Figure& figure) {
    return std::visit(Overloaded{
                          [](const HeatmapFigure& f) {
                              // Cells are square: wide grids (few layers, many heads) get a wide,
                              // short page instead of a square one with empty space under the grid.
                              constexpr double kAxesW = 130, kAxesH = 110, kPlotW = 330, kWideW = 520;
                              const double aspect = f.rows > 0 && f.cols > 0 ? double(f.cols) / f.rows : 1.0;
                              const double plotW = aspect > 1.2 ? kWideW : kPlotW;
                              const double plotH = std::clamp(plotW / aspect, 60.0, 480.0);
                              return QSizeF(plotW + kAxesW, plotH + kAxesH);
                          },
                          [](const LinePlotFigure&) { return QSizeF(460, 300); },
                          [](const BarChartFigure& f) {
                              const double rows = double(f.categories.size()) * std::max<size_t>(1, f.groups.size());
                              return QSizeF(460, std::clamp(90 + rows * 16, 220.0, 700.0));
                          },
                          [](const ScatterFigure&) { return QSizeF(460, 320); },
                          [](const TokenFigure& f) {
                              const double rows = std::max(f.queryTokens.size(), f.keyTokens.size());
                              return QSizeF(380, std::clamp(70 + rows * 14, 200.0, 760.0));
                          },
                          [](const NeuronFigure&) { return QSizeF(520, 340); },
                      },
                      figure);
}

void renderFigure(QPainter& painter, const QRectF& rect, const Figure& figure) {
    std::visit([&](const auto& f) { render(painter, rect, f); }, figure);
}

Result<QByteArray> encodeFigure(const Figure& figure, FigureFormat format, const FigureSaveOptions& options) {
    const QSizeF size = sizeFor(figure, options);
    if (!(size.width() > 0 && size.height() > 0))
        return Status(ErrorCode::InvalidArgument, "figure size must be positive");
    QByteArray bytes;
    switch (format) {
    case FigureFormat::Png: {
        if (!(options.dpi >= kMinFigureDpi && options.dpi <= kMaxFigureDpi))
            return Status(ErrorCode::InvalidArgument, QStringLiteral("dpi %1 out of range %2..%3")
                                                          .arg(options.dpi)
                                                          .arg(kMinFigureDpi)
                                                          .arg(kMaxFigureDpi)
                                                          .toStdString());
        const double s = options.dpi / kPointsPerInch;
        // The epsilon keeps 240 pt at 150 dpi at 500 px rather than 501 after rounding error.
        constexpr double kEps = 1e-6;
        const QSize px(int(std::ceil(size.width() * s - kEps)), int(std::ceil(size.height() * s - kEps)));
        if (qint64(px.width()) * px.height() > kMaxPngPixels)
            return Status(ErrorCode::InvalidArgument, "PNG would exceed 400 megapixels; lower --dpi");
        QImage img(px, QImage::Format_ARGB32_Premultiplied);
        if (img.isNull()) return Status(ErrorCode::OutOfMemory, "cannot allocate the PNG image");
        const int dpm = int(std::lround(options.dpi * kInchesPerMeter));
        img.setDotsPerMeterX(dpm);
        img.setDotsPerMeterY(dpm);
        img.fill(Qt::white);
        {
            QPainter p(&img);
            p.scale(s, s);
            paintPage(p, figure, size);
        }
        QBuffer buf(&bytes);
        buf.open(QIODevice::WriteOnly);
        if (!img.save(&buf, "PNG")) return Status(ErrorCode::Internal, "PNG encoding failed");
        return bytes;
    }
    case FigureFormat::Svg: {
        QBuffer buf(&bytes);
        buf.open(QIODevice::WriteOnly);
        QSvgGenerator gen;
        gen.setOutputDevice(&buf);
        gen.setSize(size.toSize());
        gen.setViewBox(QRectF(QPointF(0, 0), size));
        gen.setResolution(int(kPointsPerInch));
        gen.setTitle(figureTitle(figure));
        gen.setDescription(QStringLiteral("attnscope figure"));
        QPainter p;
        if (!p.begin(&gen)) return Status(ErrorCode::Internal, "SVG generator failed to start");
        paintPage(p, figure, size);
        p.end();
        return bytes;
    }
    case FigureFormat::Pdf: return encodeFiguresPdf({figure}, options);
    }
    return Status(ErrorCode::InvalidArgument, "unknown figure format");
}

Result<QByteArray> encodeFiguresPdf(const std::vector<Figure>& figures, const FigureSaveOptions& options) {
    if (figures.empty()) return Status(ErrorCode::InvalidArgument, "PDF: no figures to write");
    QByteArray bytes;
    QBuffer buf(&bytes);
    buf.open(QIODevice::WriteOnly);
    QPdfWriter writer(&buf);
    writer.setResolution(kPdfResolution);
    writer.setCreator(QStringLiteral("attnscope " ATTNSCOPE_VERSION));
    writer.setTitle(figureTitle(figures.front()));
    writer.setPageMargins(QMarginsF(0, 0, 0, 0));
    const double s = kPdfResolution / kPointsPerInch;
    QPainter p;
    for (size_t i = 0; i < figures.size(); ++i) {
        const QSizeF size = sizeFor(figures[i], options);
        // Each page takes its figure's size; the page size must be set before the page starts.
        if (!writer.setPageSize(QPageSize(size, QPageSize::Point, QString(), QPageSize::ExactMatch)))
            return pdfError(QStringLiteral("page size %1×%2 pt refused").arg(size.width()).arg(size.height()));
        if (i == 0) {
            if (!p.begin(&writer)) return pdfError(QStringLiteral("the PDF writer failed to start"));
        } else if (!writer.newPage()) {
            return pdfError(QStringLiteral("cannot start page %1").arg(i + 1));
        }
        p.save();
        p.scale(s, s);
        paintPage(p, figures[i], size);
        p.restore();
    }
    p.end();
    return bytes;
}

Status saveFigure(const Figure& figure, const QString& path, FigureFormat format, const FigureSaveOptions& options) {
    auto bytes = encodeFigure(figure, format, options);
    if (!bytes) return Status(bytes.status().code(), path.toStdString() + ": " + bytes.message());
    return writeFileAtomic(path.toStdString(), bytes->constData(), size_t(bytes->size()));
}

Status saveFiguresPdf(const std::vector<Figure>& figures, const QString& path, const FigureSaveOptions& options) {
    auto bytes = encodeFiguresPdf(figures, options);
    if (!bytes) return Status(bytes.status().code(), path.toStdString() + ": " + bytes.message());
    return writeFileAtomic(path.toStdString(), bytes->constData(), size_t(bytes->size()));
}

}  // namespace attnscope
