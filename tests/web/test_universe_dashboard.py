"""Issue 11 in the dashboard, in headless Chromium against the real standalone stack: a
universe sweep from the sweep form, its tickers table sortable by best score, a failed
ticker with the seed's message, and a click on a ticker opening that ticker's heatmap."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import WEB_KEY, Browser

pytestmark = pytest.mark.timeout(120)


def api(browser: Browser) -> httpx.Client:
    return httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30)


def logged_in(browser: Browser) -> None:
    """On the sweeps page, logging in first when this browser has no session yet."""
    browser.log_in()
    browser.goto("/ui/sweeps")
    browser.page.wait_for_selector("#sweep-form")


def column(page, key: str) -> list[str]:
    keys = page.eval_on_selector_all("#sweep-tickers-table thead th", "ths => ths.map(t => t.dataset.key)")
    i = keys.index(key) + 1
    return page.eval_on_selector_all(f"#sweep-tickers-table tbody tr td:nth-child({i})",
                                     "tds => tds.map(t => t.textContent)")


def test_universe_sweep_tickers_table_and_a_tickers_heatmap(browser: Browser) -> None:
    with api(browser) as c:
        r = c.put("/api/v1/universes/web-demo", json={"tickers": ["DEMO-DAILY", "DEMO-MINUTE", "NO-DATA-WEB"]})
        assert r.status_code in (200, 201), r.text
    logged_in(browser)
    page = browser.page
    page.wait_for_selector("#sweep-universe option[value=web-demo]", state="attached")
    page.select_option("#sweep-universe", "web-demo")
    for name, value in {"fast_min": "10", "fast_max": "20", "slow_min": "20", "slow_max": "30", "step": "5",
                        "min_trades": "10"}.items():
        page.fill(f"input[name={name}]", value)
    assert page.inner_text("#sweep-combos") == "8 combinations (fast < slow) per ticker"
    page.click("#sweep-start")
    page.wait_for_selector('#sweep-progress [role=progressbar][aria-valuenow="100"]', timeout=60_000)
    page.wait_for_selector("#sweep-tickers-table tbody tr")
    job_id = page.inner_text("#sweep-job-id")
    with api(browser) as c:
        view = c.get(f"/api/v1/sweeps/{job_id}/tickers").json()
    assert view["status"] == "completed" and view["universe"] == "web-demo"
    scored = sorted((t for t in view["tickers"] if t["best_score"] is not None), key=lambda t: -t["best_score"])
    expected = [t["ticker"] for t in scored] + [t["ticker"] for t in view["tickers"] if t["best_score"] is None]
    assert column(page, "ticker") == expected  # best score first, tickers without one last
    assert "Insufficient historical data for ticker NO-DATA-WEB" in page.inner_text("#sweep-tickers-table")
    page.click("#sweep-tickers-table th[data-key=best_score]")
    assert column(page, "ticker")[: len(scored)] == [t["ticker"] for t in reversed(scored)]

    # A click on a ticker opens its heatmap, with every one of its qualifying combinations.
    top = scored[0]["ticker"]
    page.click(f"#sweep-tickers-table tbody tr:has(td:text-is('{top}'))")
    page.wait_for_selector("#sweep-ticker-results #sweep-heatmap .main-svg")
    assert f"Results for {top}" in page.inner_text("#sweep-ticker-results")
    with api(browser) as c:
        best = c.get(f"/api/v1/sweeps/{view['sweep_run_id']}/best", params={"ticker": top, "limit": 1000}).json()
    z = page.evaluate("() => document.getElementById('sweep-heatmap').data[0].z")
    assert sum(v is not None for r in z for v in r) == best["returned"] > 0
    assert page.inner_text("#sweep-overfitting dd[data-stat=trials]") == "8"  # its own grid's statistics
    assert not [e for e in browser.errors if "pageerror" in e], browser.errors
    browser.shot("sweeps-universe")
