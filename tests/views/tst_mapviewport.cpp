// MapViewport: token <-> pixel mapping, zoom about a point, pan and clamping.
#include <QtTest>

#include "mapviewport.h"

using attnscope::MapViewport;

class TestMapViewport : public QObject {
    Q_OBJECT
private slots:
    void fitAll_data();
    void fitAll();
    void zoomKeepsPointFixed_data();
    void zoomKeepsPointFixed();
    void zoomIsClamped_data();
    void zoomIsClamped();
    void panIsClamped_data();
    void panIsClamped();
    void roundTrip_data();
    void roundTrip();
    void tokenAtPixel_data();
    void tokenAtPixel();
};

void TestMapViewport::fitAll_data() {
    QTest::addColumn<qint64>("tokens");
    QTest::addColumn<double>("width");
    QTest::addColumn<double>("height");
    QTest::addColumn<double>("tokensPerPixel");
    QTest::addColumn<qint64>("k1");
    QTest::newRow("square 1024 on 512") << qint64(1024) << 512.0 << 512.0 << 2.0 << qint64(1024);
    QTest::newRow("wide: height limits") << qint64(1000) << 800.0 << 500.0 << 2.0 << qint64(1000);
    QTest::newRow("tall: width limits") << qint64(300) << 300.0 << 900.0 << 1.0 << qint64(300);
    // A short sequence cannot be blown up past kMaxPixelsPerToken: 4 tokens × 48 px = 192 px.
    QTest::newRow("tiny sequence") << qint64(4) << 400.0 << 400.0 << 0.01 << qint64(4);
    QTest::newRow("32k") << qint64(32768) << 1024.0 << 768.0 << 32768.0 / 768.0 << qint64(32768);
}

void TestMapViewport::fitAll() {
    QFETCH(qint64, tokens);
    QFETCH(double, width);
    QFETCH(double, height);
    QFETCH(double, tokensPerPixel);
    QFETCH(qint64, k1);
    MapViewport v;
    v.reset(tokens, width, height);
    const double expected = std::max(tokensPerPixel, v.minTokensPerPixel());
    QVERIFY(qAbs(v.tokensPerPixel - expected) < 1e-9);
    QVERIFY(v.isOverview());
    const auto r = v.visible();
    QCOMPARE(r.k0, 0);
    QCOMPARE(r.q0, 0);
    QCOMPARE(r.k1, k1);
    QCOMPARE(r.q1, tokens);
    // The map is centred along the axis it does not fill.
    const double left = v.keyToX(0), right = width - v.keyToX(double(tokens));
    QVERIFY(qAbs(left - right) < 1e-6);
}

void TestMapViewport::zoomKeepsPointFixed_data() {
    QTest::addColumn<double>("x");
    QTest::addColumn<double>("y");
    QTest::addColumn<double>("factor");
    QTest::newRow("centre ×2") << 256.0 << 256.0 << 2.0;
    QTest::newRow("corner ×4") << 10.0 << 20.0 << 4.0;
    QTest::newRow("off-centre ×1.25") << 400.0 << 100.0 << 1.25;
    QTest::newRow("×8 then out is tested elsewhere") << 300.0 << 300.0 << 8.0;
}

void TestMapViewport::zoomKeepsPointFixed() {
    QFETCH(double, x);
    QFETCH(double, y);
    QFETCH(double, factor);
    MapViewport v;
    v.reset(4096, 512, 512);
    v.zoomAbout(256, 256, 2.0);  // leave the overview so clamping does not move the point
    const double key = v.xToKey(x), query = v.yToQuery(y);
    const double before = v.tokensPerPixel;
    v.zoomAbout(x, y, factor);
    QVERIFY(qAbs(v.tokensPerPixel - before / factor) < 1e-9);
    QVERIFY(qAbs(v.xToKey(x) - key) < 1e-6);
    QVERIFY(qAbs(v.yToQuery(y) - query) < 1e-6);
}

void TestMapViewport::zoomIsClamped_data() {
    QTest::addColumn<double>("factor");
    QTest::addColumn<bool>("toMin");
    QTest::newRow("zoom in far") << 1e6 << true;
    QTest::newRow("zoom out far") << 1e-6 << false;
    QTest::newRow("zoom out a little from overview") << 0.5 << false;
}

void TestMapViewport::zoomIsClamped() {
    QFETCH(double, factor);
    QFETCH(bool, toMin);
    MapViewport v;
    v.reset(2048, 640, 480);
    v.zoomAbout(100, 100, factor);
    const double expected = toMin ? v.minTokensPerPixel() : v.maxTokensPerPixel();
    QVERIFY(qAbs(v.tokensPerPixel - expected) < 1e-12);
    const auto r = v.visible();
    QVERIFY(r.k0 >= 0 && r.k1 <= 2048 && r.k0 < r.k1);
    QVERIFY(r.q0 >= 0 && r.q1 <= 2048 && r.q0 < r.q1);
    if (toMin)  // token level: a few hundred pixels show about width/48 tokens
        QVERIFY(r.k1 - r.k0 <= qint64(640 / MapViewport::kMaxPixelsPerToken) + 2);
}

void TestMapViewport::panIsClamped_data() {
    QTest::addColumn<double>("dx");
    QTest::addColumn<double>("dy");
    QTest::addColumn<double>("keyOrigin");
    QTest::addColumn<double>("queryOrigin");
    // 1000 tokens on 500 px zoomed ×4: 0.5 tokens per pixel, 250 tokens visible, origin in [0, 750].
    QTest::newRow("small pan") << -20.0 << -40.0 << 385.0 << 395.0;
    QTest::newRow("far right/down clamps at end") << -1e6 << -1e6 << 750.0 << 750.0;
    QTest::newRow("far left/up clamps at 0") << 1e6 << 1e6 << 0.0 << 0.0;
}

void TestMapViewport::panIsClamped() {
    QFETCH(double, dx);
    QFETCH(double, dy);
    QFETCH(double, keyOrigin);
    QFETCH(double, queryOrigin);
    MapViewport v;
    v.reset(1000, 500, 500);
    v.zoomAbout(250, 250, 4.0);
    QVERIFY(qAbs(v.keyOrigin - 375.0) < 1e-9);
    v.panPixels(dx, dy);
    QVERIFY(qAbs(v.keyOrigin - keyOrigin) < 1e-9);
    QVERIFY(qAbs(v.queryOrigin - queryOrigin) < 1e-9);
}

void TestMapViewport::roundTrip_data() {
    QTest::addColumn<double>("token");
    QTest::newRow("0") << 0.0;
    QTest::newRow("middle") << 511.5;
    QTest::newRow("last") << 1023.0;
}

void TestMapViewport::roundTrip() {
    QFETCH(double, token);
    MapViewport v;
    v.reset(1024, 300, 700);
    v.zoomAbout(120, 80, 3.0);
    QVERIFY(qAbs(v.xToKey(v.keyToX(token)) - token) < 1e-9);
    QVERIFY(qAbs(v.yToQuery(v.queryToY(token)) - token) < 1e-9);
}

void TestMapViewport::tokenAtPixel_data() {
    QTest::addColumn<double>("x");
    QTest::addColumn<qint64>("key");
    // 8 tokens on 384 px: 48 px per token, no centring offset.
    QTest::newRow("first pixel") << 0.0 << qint64(0);
    QTest::newRow("inside token 2") << 100.0 << qint64(2);
    QTest::newRow("last token") << 383.0 << qint64(7);
    QTest::newRow("past the end") << 384.0 << qint64(-1);
    QTest::newRow("before the start") << -1.0 << qint64(-1);
}

void TestMapViewport::tokenAtPixel() {
    QFETCH(double, x);
    QFETCH(qint64, key);
    MapViewport v;
    v.reset(8, 384, 384);
    QCOMPARE(v.keyAt(x), key);
    QCOMPARE(v.queryAt(x), key);
}

QTEST_GUILESS_MAIN(TestMapViewport)
#include "tst_mapviewport.moc"
