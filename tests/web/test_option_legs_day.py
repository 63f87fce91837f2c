"""Issue 15, item 4 in the dashboard: a short straddle on DEMO-MINUTE (its legs on the demo
chain DEMO-OPTIONS) run from the Day-by-day page; a day's positions name their contracts and
the day's chart shows the legs' premiums on a second axis beside the underlying's candles."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import WEB_KEY, Browser

pytestmark = pytest.mark.timeout(180)

STRADDLE = {
    "name": "Short straddle (dashboard)",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [
        {"id": f"entry-{t.lower()}", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
         "instrument": {"type": "option", "option_type": t, "strike": "ATM", "expiry": "current_week"},
         "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}}
        for t in ("CE", "PE")
    ],
}


def test_a_straddle_day_shows_contracts_and_premiums(browser: Browser) -> None:
    page = browser.page
    with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
        sid = c.post("/api/v1/strategies", json=STRADDLE).json()["strategy_id"]
    try:
        browser.log_in()
        browser.goto(f"/ui/days?strategy={sid}")
        page.wait_for_selector(f'#days-strategy option[value="{sid}"]', state="attached")
        page.select_option("#days-strategy", sid)
        page.click("#days-run")
        page.wait_for_selector('#days-progress [role=progressbar][aria-valuenow="100"]', timeout=120_000)
        page.wait_for_selector("#days-summary")
        with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
            meta = c.get(f"/api/v1/backtest/metadata/dashboard/{sid}").json()
        assert meta["status"] == "completed"
        day = next(d for d in meta["daily_summaries"] if d["positions"] > 0 and d["pnl"] != 0)
        iso = f"{day['date'][6:]}-{day['date'][3:5]}-{day['date'][:2]}"
        page.click(f'#pnl-calendar .day[data-date="{iso}"]')
        page.wait_for_selector("#day-positions .position")
        titles = page.eval_on_selector_all("#day-positions .position header strong", "ss => ss.map(s => s.textContent)")
        assert len(titles) == day["positions"] and all(":OPT:" in t and t.split()[-1].startswith("DEMO-MINUTE:")
                                                       for t in titles), titles
        page.wait_for_selector("#day-chart .main-svg")
        assert page.eval_on_selector("#day-chart", "el => el.textContent.includes('premium')")
        assert page.query_selector("#day-chart .y2tick") is not None  # the premium axis has ticks
        browser.shot("days-straddle-day")
    finally:
        with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
            c.delete(f"/api/v1/strategies/{sid}")


def _demo_straddles(c: httpx.Client) -> list[dict]:
    return [s for s in c.get("/api/v1/strategies", params={"limit": 1000}).json()["strategies"]
            if s["name"] == "Short straddle (demo)"]


def test_the_demo_straddle_runs_in_one_click(browser: Browser) -> None:
    """A new user opens DEMO-OPTIONS on the Datasets page and clicks "Run the demo straddle on
    it": the strategy is saved for the tenant and run day by day over the demo data, and the
    result (the P&L calendar) opens. The Day-by-day page's button runs the same saved strategy
    again, without a second copy."""
    page = browser.page
    with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
        for s in _demo_straddles(c):
            c.delete(f"/api/v1/strategies/{s['strategy_id']}")
        chain = next(d for d in c.get("/api/v1/datasets").json()["datasets"] if d["ticker"] == "DEMO-OPTIONS")
        minute = next(d for d in c.get("/api/v1/datasets").json()["datasets"] if d["ticker"] == "DEMO-MINUTE")
    browser.log_in()
    browser.goto(f"/ui/datasets?dataset={chain['dataset_id']}")
    page.click("#dataset-demo-straddle")
    page.wait_for_selector('#days-progress [role=progressbar][aria-valuenow="100"]', timeout=120_000)
    page.wait_for_selector("#days-summary")
    assert "/ui/days?job=" in page.url
    with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
        saved = _demo_straddles(c)
        assert len(saved) == 1
        sid = saved[0]["strategy_id"]
        assert [e["instrument"]["option_type"] for e in saved[0]["definition"]["entries"]] == ["CE", "PE"]
        meta = c.get(f"/api/v1/backtest/metadata/dashboard/{sid}").json()
        assert meta["status"] == "completed"
        dmy = ["-".join(reversed(minute[k][:10].split("-"))) for k in ("start", "end")]
        assert [meta["daily_summaries"][i]["date"] for i in (0, -1)] == dmy  # every day of the demo data
        assert sum(d["positions"] for d in meta["daily_summaries"]) > 0
        first_job = page.url.split("job=")[1]
    assert page.eval_on_selector("#days-strategy", "el => el.value") == sid
    browser.shot("days-demo-straddle")

    page.click("#days-demo-straddle")
    page.wait_for_function("j => !location.search.includes(j)", arg=first_job, timeout=30_000)
    page.wait_for_selector('#days-progress [role=progressbar][aria-valuenow="100"]', timeout=120_000)
    with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
        assert [s["strategy_id"] for s in _demo_straddles(c)] == [sid]
        c.delete(f"/api/v1/strategies/{sid}")
