"""Issue 13 in headless Chromium: the run page's report for a backtest and for a day-by-day
run (every chart has drawn data, the page asks nothing of anyone but the gateway), and the
downloaded report.html opened from disk with the network off (every chart drawn from the
file alone); a sweep's run says to replay it, and its replay has the report. Screenshots:
run-report.png, run-report-drawdowns.png, run-report-days.png, run-report-file.png."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import SCREENSHOTS, WEB_KEY, Browser

pytestmark = pytest.mark.timeout(180)

RUN_CHARTS = ["run-equity-chart", "run-underwater-chart", "run-calendar-chart", "run-price-chart", "run-rolling-chart",
              "run-exposure-chart", "run-trade-returns-chart", "run-daily-returns-chart"]
FILE_CHARTS = ["chart-equity", "chart-underwater", "chart-calendar", "chart-price", "chart-rolling", "chart-exposure",
               "chart-trades", "chart-daily"]
STRATEGY_ID = "3c0e5a38-6f0b-4a53-9d3e-2f4f1b7c9a11"
STRATEGY = {
    "name": "report web test",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "15:00"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 35", "side": "buy", "quantity": 10}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 60"}],
}
# Points of each trace of every chart: a chart has drawn data when one of its traces has some.
TRACE_POINTS = """(ids) => ids.map((id) => {
  const gd = document.getElementById(id);
  if (!gd || !gd.data || !gd.querySelector('.main-svg')) return [id, 0];
  return [id, Math.max(...gd.data.map((t) => (t.x || t.z || []).filter((v) => v !== null).length))];
})"""


def api(browser: Browser) -> httpx.Client:
    return httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=60)


def logged_in(browser: Browser) -> None:
    """The tests of this file may run alone: log in unless the browser has a session."""
    browser.log_in()


def every_chart_has_data(page, ids: list[str]) -> None:
    for chart in ids:
        page.wait_for_selector(f"#{chart} .main-svg", timeout=30_000)
    points = dict(page.evaluate(TRACE_POINTS, ids))
    assert all(points[c] > 0 for c in ids), points


def test_report_of_a_backtest_on_the_run_page(browser: Browser) -> None:
    logged_in(browser)
    page = browser.page
    with api(browser) as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover",
                                       "parameters": {"fast_period": 10, "slow_period": 30}}).json()
        report = c.get(f"/api/v1/runs/{bt['id']}/report").json()
    before = len(browser.requests)
    browser.goto(f"/ui/runs/{bt['id']}")
    every_chart_has_data(page, RUN_CHARTS)
    # The charts come from the one report call (the price from the dataset's bars).
    asked = [u for u in browser.requests[before:] if "/api/v1/" in u]
    assert sum(1 for u in asked if re.search(rf"/runs/{bt['id']}/report$", u)) == 1, asked

    rows = page.query_selector_all("#run-drawdowns tbody tr")
    assert len(rows) == 5
    first = [td.inner_text() for td in rows[0].query_selector_all("td")]
    worst = report["drawdowns"][0]
    assert first[1] == worst["start"][:10] and first[2] == worst["trough"][:10]
    assert first[4] == f"{worst['depth_pct']:.2f} %"
    assert page.inner_text("#run-calendar-chart").count("Year") == 1  # the yearly totals column
    heat = page.evaluate("() => document.getElementById('run-calendar-chart').data[0].z.length")
    assert heat == len({m["year"] for m in report["monthly_returns"]})
    # Log scale when asked.
    page.check("#run-log-scale")
    page.wait_for_function("() => document.getElementById('run-equity-chart').layout.yaxis.type === 'log'")
    browser.shot("run-report")
    card = page.query_selector("#run-underwater-chart").evaluate_handle("e => e.closest('.card')")
    card.as_element().scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card.as_element().screenshot(path=str(SCREENSHOTS / "run-report-drawdowns.png"))

    # Another rolling-Sharpe window redraws that chart from the API.
    page.fill("#run-window", "30")
    page.click("#run-window-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('run-rolling-chart').data[0].x.length === 2000 - 29")
    assert "30 days" in page.inner_text("main")


def test_report_of_a_day_by_day_run_on_the_run_page(browser: Browser) -> None:
    logged_in(browser)
    page = browser.page
    with api(browser) as c:
        assert c.put(f"/api/v1/strategies/{STRATEGY_ID}", json=STRATEGY).status_code in (200, 201)
        job_id = c.post("/api/v1/backtest/run", json={"user_id": "report-web", "strategy_id": STRATEGY_ID,
                                                      "start_date": "2024-01-01", "end_date": "2024-02-23"}).json()["job_id"]
        deadline = time.time() + 120
        while (status := c.get(f"/api/v1/jobs/{job_id}").json()["status"]) != "completed":
            assert status in ("queued", "running") and time.time() < deadline, status
            time.sleep(0.2)
        runs = c.get("/api/v1/runs", params={"kind": "day_by_day", "limit": 100}).json()["runs"]
        run_id = next(r["id"] for r in runs if c.get(f"/api/v1/runs/{r['id']}").json()["job_id"] == job_id)
        report = c.get(f"/api/v1/runs/{run_id}/report").json()
    assert report["calendar"] == "daily" and report["trades_total"] > 0
    browser.goto(f"/ui/runs/{run_id}")
    every_chart_has_data(page, RUN_CHARTS)
    assert "Daily P&L" in page.inner_text("main")
    bars = page.evaluate("() => document.getElementById('run-calendar-chart').data[0].x.length")
    assert bars == report["days"]
    browser.shot("run-report-days")


def test_downloaded_report_renders_from_disk_with_the_network_off(browser: Browser, tmp_path: Path) -> None:
    logged_in(browser)
    page = browser.page
    with api(browser) as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-MINUTE", "strategy": "ema_crossover", "direction": "both",
                                       "parameters": {"fast_period": 12, "slow_period": 40}}).json()
    browser.goto(f"/ui/runs/{bt['id']}")
    page.wait_for_selector("#run-equity-chart .main-svg")
    with page.expect_download() as dl:
        page.click("#run-report-download")
    saved = tmp_path / dl.value.suggested_filename
    dl.value.save_as(str(saved))
    assert saved.name == f"run_{bt['id']}_report.html" and saved.stat().st_size < 5_000_000

    # A page of its own, offline, with every request outside the file refused and recorded.
    asked: list[str] = []
    errors: list[str] = []
    view = browser.context.new_page()
    browser.context.set_offline(True)
    try:
        view.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (asked.append(route.request.url), route.abort()))
        view.on("request", lambda r: asked.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
        view.on("pageerror", lambda e: errors.append(str(e)))
        view.goto(saved.as_uri())
        view.wait_for_function("() => document.body.dataset.rendered !== 'false'", timeout=60_000)
        assert view.evaluate("() => document.body.dataset.rendered") == "true", view.inner_text("#report-error")
        every_chart_has_data(view, FILE_CHARTS)
        assert len(view.query_selector_all("#report-drawdowns tbody tr")) == 5
        assert f"Run #{bt['id']}: ema_crossover on DEMO-MINUTE" in view.inner_text("#report-title")
        view.check("#log-scale")
        view.wait_for_function("() => document.getElementById('chart-equity').layout.yaxis.type === 'log'")
        view.screenshot(path=str(SCREENSHOTS / "run-report-file.png"), full_page=True)
        assert asked == [] and errors == []
    finally:
        browser.context.set_offline(False)
        view.close()


def test_a_sweeps_run_says_to_replay_it_for_a_report(browser: Browser) -> None:
    logged_in(browser)
    page = browser.page
    with api(browser) as c:
        job_id = c.post("/api/v1/strategy/sweep", json={"ticker": "DEMO-DAILY", "fast_range": [10, 12],
                                                        "slow_range": [20, 22], "step": 2, "min_trades": 10}).json()["job_id"]
        deadline = time.time() + 60
        while c.get(f"/api/v1/jobs/{job_id}").json()["status"] != "completed":
            assert time.time() < deadline
            time.sleep(0.2)
        run_id = next(r["id"] for r in c.get("/api/v1/runs", params={"kind": "sweep"}).json()["runs"]
                      if c.get(f"/api/v1/runs/{r['id']}").json()["job_id"] == job_id)
    browser.goto(f"/ui/runs/{run_id}")
    box = page.wait_for_selector("#run-no-report .info-box")
    assert "Replay this run" in box.inner_text() and page.query_selector("#run-report-download") is None
    page.click("#replay-run")
    page.wait_for_url(re.compile(rf"/ui/runs/(?!{run_id}$)\d+$"))
    every_chart_has_data(page, RUN_CHARTS)


def test_the_report_pages_talk_to_the_gateway_only(browser: Browser) -> None:
    assert browser.foreign_requests() == []
    assert [e for e in browser.errors if e.startswith("pageerror")] == []
    shots = {p.name for p in SCREENSHOTS.glob("*.png")}
    assert {"run-report.png", "run-report-drawdowns.png", "run-report-days.png", "run-report-file.png"} <= shots
