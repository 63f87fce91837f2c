"""The README's dashboard table, walked as a newcomer would (issue 16): `make run`, open
http://127.0.0.1:8000/ in a browser that never saw the dashboard (no login on loopback), then
each page of the table from the menu, in the table's order, doing the page's main action as
the table describes it. A screenshot of each: test-output/screenshots/readme-*.png."""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import httpx
import pytest

from tests.stacks import ROOT, start_standalone
from tests.web.conftest import Browser, open_browser

pytestmark = pytest.mark.timeout(120)


def dashboard_table() -> list[tuple[str, str, str]]:
    """(page, path, what it does) of each row of the README's table in "The dashboard"."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## The dashboard")
    section = text[start:text.index("\n## ", start + 1)]
    return re.findall(r"^\| (.+?) `(/ui/[a-z]+)` \| (.+) \|$", section, re.M)


TABLE = dashboard_table()


@pytest.fixture(scope="module")
def newcomer(playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """`make run` as the README has it (loopback, no credentials required) and a fresh browser."""
    stack = start_standalone(tmp_path_factory.mktemp("readme-web-data"), tmp_path_factory.mktemp("readme-web-logs"))
    try:
        with open_browser(playwright, stack.base_url, tmp_path_factory.mktemp("readme-chromium")) as b:
            yield b
    finally:
        stack.stop(signal.SIGINT)


def wait_progress_done(page, bar: str) -> None:
    page.wait_for_selector(f'{bar} [role=progressbar][aria-valuenow="100"]', timeout=60_000)


def sweeps(b: Browser) -> None:
    """"New sweep" form, live progress, heatmap and best results; a row's equity curve."""
    page = b.page
    page.wait_for_selector("#sweep-ticker option[value=DEMO-DAILY]", state="attached")
    page.select_option("#sweep-ticker", "DEMO-DAILY")
    page.select_option("#sweep-strategy", "SMA")
    for name, value in {"fast_min": "10", "fast_max": "20", "slow_min": "20", "slow_max": "30", "step": "5",
                        "min_trades": "10"}.items():
        page.fill(f"input[name={name}]", value)
    page.click("#sweep-start")
    wait_progress_done(page, "#sweep-progress")
    page.wait_for_selector("#sweep-heatmap .main-svg")
    assert len(page.query_selector_all("#sweep-table tbody tr")) == 8
    page.click("#sweep-table tbody tr:first-child")
    page.wait_for_selector("#sweep-equity-chart .main-svg", timeout=30_000)
    names = page.evaluate("() => document.getElementById('sweep-equity-chart').data.map(t => t.name)")
    assert names[-1] == "buy and hold"


def days(b: Browser) -> None:
    """The example strategy created, run day by day into the P&L calendar; a day's positions."""
    page = b.page
    page.wait_for_selector("#strategy-new[open]")  # nothing yet: the example is offered
    page.click("#strategy-create")
    page.wait_for_selector("#strategy-new .ok-box")
    page.click("#days-run")
    wait_progress_done(page, "#days-progress")
    page.wait_for_selector("#days-summary")
    page.click("#pnl-calendar .day.traded")
    page.wait_for_selector("#day-positions .position table.conditions")
    page.wait_for_selector("#day-chart .main-svg")


def runs(b: Browser) -> None:
    """A new synchronous backtest, its page (metrics, curve, trades, CSV), a replay, a comparison."""
    page = b.page
    page.wait_for_selector("#runs-table tbody tr")
    page.click("#backtest-details summary")
    page.wait_for_selector("#bt-ticker option[value=DEMO-DAILY]", state="attached")
    page.select_option("#bt-ticker", "DEMO-DAILY")
    page.select_option("#bt-strategy", "sma_crossover")
    page.click("#bt-run")
    page.wait_for_url(re.compile(r"/ui/runs/\d+$"))
    page.wait_for_selector("#run-equity-chart .main-svg")
    first = page.url.rsplit("/", 1)[1]
    assert page.inner_text("#run-title").startswith(f"Run #{first}: sma_crossover on DEMO-DAILY")
    assert page.query_selector(f'a[href$="/runs/{first}/trades.csv"]') is not None
    b.shot("readme-run")

    page.fill("#replay-parameters", '{"fast_period": 12}')
    page.click("#replay-run")
    page.wait_for_url(re.compile(rf"/ui/runs/(?!{first}$)\d+$"))
    page.wait_for_selector("#run-equity-chart .main-svg")
    replay = page.url.rsplit("/", 1)[1]

    page.click("nav a:text-is('Runs')")
    for run_id in (first, replay):
        page.check(f'#runs-table input[data-run="{run_id}"]')
    page.click("#runs-compare")
    page.wait_for_selector("#compare-chart .main-svg")
    b.shot("readme-runs-compare")
    page.go_back()
    page.wait_for_selector(f'#runs-table input[data-run="{replay}"]')


def jobs(b: Browser) -> None:
    """Every job with its state and progress, a filter, and a running job cancelled."""
    page = b.page
    page.wait_for_function("""() => {  // the sweep and the day-by-day run of the walk so far
        const kinds = [...document.querySelectorAll('#jobs-table tbody tr td:nth-child(2)')].map(t => t.textContent);
        return kinds.includes('trading-sweep') && kinds.includes('day-backtest');
      }""")
    page.select_option("#jobs-status", "completed")
    page.wait_for_function("""() => {
        const states = [...document.querySelectorAll('#jobs-table tbody tr .badge')].map(b => b.textContent);
        return states.length > 0 && states.every(s => s === 'completed');
      }""")
    # A sweep long enough to cancel: 39,600 combinations of minute bars.
    heavy = {"ticker": "DEMO-MINUTE", "fast_range": [2, 100], "slow_range": [101, 500], "step": 1, "min_trades": 10}
    with httpx.Client(base_url=b.base_url, timeout=30) as c:
        job_id = c.post("/api/v1/strategy/sweep", json=heavy).json()["job_id"]
        try:
            page.select_option("#jobs-status", "")
            page.wait_for_selector(f'#jobs-table button[data-cancel="{job_id}"]')
            page.click(f'#jobs-table button[data-cancel="{job_id}"]')
            page.wait_for_function(
                """(id) => [...document.querySelectorAll('#jobs-table tbody tr')]
                     .some(tr => tr.textContent.includes(id) && tr.querySelector('.badge.cancelled'))""", arg=job_id)
        finally:
            c.delete(f"/api/v1/jobs/{job_id}")
    assert "100 %" in page.inner_text("#jobs-table tbody tr:has(.badge.completed)")


def walkforward(b: Browser) -> None:
    """"New walk-forward" form, progress by fold, the folds table, the bars and the stitched equity."""
    page = b.page
    page.wait_for_selector("#wf-ticker option[value=DEMO-DAILY]", state="attached")
    page.select_option("#wf-ticker", "DEMO-DAILY")
    page.click("#wf-start")  # the form's defaults: train 500, test 250, step 250 bars
    wait_progress_done(page, "#wf-progress")
    page.wait_for_selector("#wf-folds tbody tr")
    assert len(page.query_selector_all("#wf-folds tbody tr")) == 6
    page.wait_for_selector("#wf-bars .main-svg")
    page.wait_for_selector("#wf-equity .main-svg")


def datasets(b: Browser) -> None:
    """A CSV uploaded with a progress bar, its price chart, then deleted."""
    page = b.page
    page.wait_for_selector("#datasets-table tbody tr")
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(120):
        p = round(100 + 5 * math.sin(i / 9), 2)
        lines.append(f"{date(2024, 1, 1) + timedelta(days=i)},{p},{p + 1},{p - 1},{p + 0.25},1000")
    page.set_input_files("#upload-file", files=[
        {"name": "mine.csv", "mimeType": "text/csv", "buffer": ("\n".join(lines) + "\n").encode()}])
    page.fill("#upload-ticker", "MINE")
    page.select_option("#upload-interval", "1d")
    page.click("#upload-submit")
    assert "Imported MINE 1d" in page.wait_for_selector("#upload-msg .ok-box").inner_text()
    page.wait_for_selector('#upload-progress [aria-valuenow="100"]', state="attached")
    page.wait_for_selector("#dataset-chart .main-svg")
    b.shot("readme-datasets")
    page.once("dialog", lambda d: d.accept())
    page.click("#datasets-table tbody tr:has-text('MINE') button[data-delete]")
    page.wait_for_selector("#datasets-table tbody tr:has-text('MINE')", state="detached")


ACTIONS: dict[str, Callable[[Browser], None]] = {
    "/ui/sweeps": sweeps, "/ui/walkforward": walkforward, "/ui/days": days, "/ui/runs": runs, "/ui/jobs": jobs, "/ui/datasets": datasets,
}


def test_the_readme_table_is_the_menu(newcomer: Browser) -> None:
    page = newcomer.page
    newcomer.goto("/")
    page.wait_for_url(re.compile(r"/ui/(sweeps)?$"))  # no login page on loopback
    page.wait_for_selector("#session:has-text('no login needed')")
    menu = page.eval_on_selector_all("nav a[data-link]", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
    assert [(name, path) for name, path, _ in TABLE] == [tuple(m) for m in menu]
    assert [path for _, path, _ in TABLE] == list(ACTIONS)  # a page added to the table gets a walk here


@pytest.mark.parametrize("name, path", [(name, path) for name, path, _ in TABLE])
def test_each_page_of_the_table(newcomer: Browser, name: str, path: str) -> None:
    page = newcomer.page
    page.click(f"nav a:text-is('{name}')")
    page.wait_for_url(re.compile(rf"{re.escape(path)}(\?.*)?$"))
    ACTIONS[path](newcomer)
    newcomer.shot(f"readme-{path.rsplit('/', 1)[1]}")


def test_nothing_went_wrong_on_the_way(newcomer: Browser) -> None:
    assert newcomer.foreign_requests() == []
    assert [e for e in newcomer.errors if e.startswith("pageerror") or "Content Security Policy" in e] == []
