"""Issue 14 item 4 in headless Chromium: the run page's Monte Carlo card runs
`POST /api/v1/runs/{id}/montecarlo` with the method, resamples and seed chosen, and the
percentiles it shows are the API's (exact values in each cell's data-value, and the text
as the page formats them); both histograms have drawn every path. Screenshot:
run-montecarlo.png."""

from __future__ import annotations

import pytest

from tests.web.conftest import SCREENSHOTS, Browser
from tests.web.test_report import api, logged_in

pytestmark = pytest.mark.timeout(180)

CELLS = """() => [...document.querySelectorAll('#run-mc-table td[data-figure]')].map((td) =>
  [td.dataset.figure, td.dataset.key, td.dataset.value === undefined ? null : Number(td.dataset.value), td.innerText])"""
COUNTS = """(id) => document.getElementById(id).data[0].y.reduce((a, b) => a + b, 0)"""


def shown(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f} %"


def check_cells(page, answer: dict) -> None:
    cells = page.evaluate(CELLS)
    assert len(cells) == 12, cells
    for figure, key, value, text in cells:
        want = answer["run"][figure] if key == "run" else answer[figure]["percentiles"][key]
        assert value == want, (figure, key, value, want)
        assert text == shown(want), (figure, key, text, want)


def run_it(page, runs: int, **fields: str) -> None:
    for name, value in fields.items():
        if name == "method":
            page.select_option("#run-mc-method", value)
        else:
            page.fill(f"#run-mc-{name}", value)
    page.click("#run-mc-run")
    page.wait_for_function(f"() => document.getElementById('run-mc-result').dataset.runs === '{runs}'", timeout=60_000)


def test_monte_carlo_on_the_run_page_shows_the_apis_numbers(browser: Browser) -> None:
    logged_in(browser)
    page = browser.page
    with api(browser) as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover",
                                       "parameters": {"fast_period": 10, "slow_period": 30}}).json()
        by_trades = c.post(f"/api/v1/runs/{bt['id']}/montecarlo",
                           json={"method": "trades", "resamples": 2000, "seed": 42}).json()
        by_blocks = c.post(f"/api/v1/runs/{bt['id']}/montecarlo",
                           json={"method": "block_bootstrap", "resamples": 500, "seed": 9, "block_days": 15}).json()
    browser.goto(f"/ui/runs/{bt['id']}")
    page.wait_for_selector("#run-mc-form")
    assert not page.is_visible("#run-mc-block")  # the block length is for block_bootstrap only

    run_it(page, 1, method="trades", resamples="2000", seed="42")
    check_cells(page, by_trades)
    for chart in ("run-mc-return-chart", "run-mc-drawdown-chart"):
        page.wait_for_selector(f"#{chart} .main-svg")
        assert page.evaluate(COUNTS, chart) == 2000
    assert "2,000 paths" in page.inner_text("#run-mc-summary")
    card = page.query_selector("#run-mc")
    card.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card.screenshot(path=str(SCREENSHOTS / "run-montecarlo.png"))

    run_it(page, 2, method="block_bootstrap", resamples="500", seed="9", block="15")
    check_cells(page, by_blocks)
    assert page.evaluate(COUNTS, "run-mc-return-chart") == 500
    assert "15-day blocks" in page.inner_text("#run-mc-summary")

    # A bad request shows the API's message, and the last result stays.
    page.fill("#run-mc-block", "5000")
    page.click("#run-mc-run")
    page.wait_for_selector("#run-mc-msg .error-box")
    assert "block_days" in page.inner_text("#run-mc-msg")
    check_cells(page, by_blocks)
