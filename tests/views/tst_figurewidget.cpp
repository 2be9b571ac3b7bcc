// FigureWidget: figures on screen are drawn by the publication renderer at a scale that keeps their
// smallest text (tick labels, 7 px on the page) readable, and grow with the widget up to a cap.
#include <QtTest>

#include "figurepainter.h"
#include "figurewidget.h"
#include "figuresamples.h"

using namespace attnscope;

namespace {
constexpr double kReadablePx = 10;  // smallest screen text we accept
}  // namespace

class TestFigureWidget : public QObject {
    Q_OBJECT
private slots:
    void textStaysReadable_data();
    void textStaysReadable();
};

void TestFigureWidget::textStaysReadable_data() {
    QTest::addColumn<QSize>("size");
    QTest::newRow("small plot beside a table") << QSize(300, 200);
    QTest::newRow("half a tab") << QSize(700, 400);
    QTest::newRow("a whole tab") << QSize(1250, 850);
}

void TestFigureWidget::textStaysReadable() {
    QFETCH(QSize, size);
    FigureWidget w;
    w.resize(size);
    w.setFigure(Figure(test::sampleSinks()));
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY2(w.scale() * fig::kTickSize >= kReadablePx, qPrintable(QString::number(w.scale())));
    QVERIFY(w.scale() <= 2.0);
    const QImage shot = w.grab().toImage();
    QVERIFY(!shot.isNull());
}

QTEST_MAIN(TestFigureWidget)
#include "tst_figurewidget.moc"
