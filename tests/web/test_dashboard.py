"""The dashboard end to end in headless Chromium against a real standalone stack:
log in, run a sweep from the form and watch it reach 100 %, read the heatmap and the
results table, open a combination's equity curve, run a day-by-day backtest and open
a day from the P&L calendar, use the runs, jobs and datasets pages, and check that no
page ever asks anything of anyone but the gateway. Screenshots go to
test-output/screenshots/. The tests share one browser page and run in file order."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import date, timedelta

import httpx
import pytest

from tests.web.conftest import SCREENSHOTS, VIEWPORT, WEB_KEY, Browser

pytestmark = pytest.mark.timeout(120)


def api(browser: Browser) -> httpx.Client:
    return httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30)


def wait_progress_done(page, bar: str) -> None:
    page.wait_for_selector(f'{bar} [role=progressbar][aria-valuenow="100"]', timeout=60_000)
    assert page.inner_text(f"{bar} .label").strip() == "100 %"


def hidden_width(page, selector: str) -> int:
    """How many pixels of an element's content are scrolled out of sight sideways."""
    return page.eval_on_selector(selector, "e => e.scrollWidth - e.clientWidth")


def numbers(texts: list[str]) -> list[float]:
    return [float(t.replace(",", "")) for t in texts if t.strip() not in ("—", "")]


def test_login_page_guards_the_dashboard(browser: Browser) -> None:
    page = browser.page
    browser.goto("/")  # a browser at / is sent to the dashboard, which asks for a key
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.fill("#api-key", "not-a-key")
    page.click("#login-submit")
    refused = page.inner_text("#login-form .error-box")
    assert "invalid API key" in refused
    assert "Log in with an API key" not in refused  # issue 16: one message, not two stacked
    page.fill("#api-key", WEB_KEY)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r"/ui/$"))
    page.wait_for_selector("#sweep-form")
    assert "tenant dev" in page.inner_text("#session")
    browser.shot("login-then-sweeps")


def test_sweep_form_shows_api_errors(browser: Browser) -> None:
    page = browser.page
    page.wait_for_selector("#sweep-ticker option[value=DEMO-DAILY]", state="attached")
    page.fill("input[name=fast_min]", "22")  # fast min above slow min: the API refuses it
    page.fill("input[name=fast_max]", "24")
    page.click("#sweep-start")
    box = page.wait_for_selector("#sweep-form-msg .error-box")
    assert "invalid sweep parameters" in box.inner_text()
    assert "Fast range min must be less than slow range min" in box.inner_text()
    page.fill("input[name=fast_min]", "10")
    page.fill("input[name=fast_max]", "20")


def test_sweep_from_the_form(browser: Browser) -> None:
    page = browser.page
    # Issue 16: the form starts from the API's min_trades default (seed 001: 50), as the CLI does.
    assert page.input_value("input[name=min_trades]") == "50"
    page.select_option("#sweep-ticker", "DEMO-DAILY")
    page.select_option("#sweep-strategy", "SMA")
    for name, value in {"fast_min": "10", "fast_max": "20", "slow_min": "20", "slow_max": "30", "step": "5",
                        "min_trades": "10"}.items():
        page.fill(f"input[name={name}]", value)
    assert page.inner_text("#sweep-combos").startswith("8 combinations")
    page.click("#sweep-start")
    wait_progress_done(page, "#sweep-progress")
    job_id = page.inner_text("#sweep-job-id")
    assert f"job={job_id}" in page.url
    # Issue 16: "Queued 8 combinations." goes once the sweep has ended.
    page.wait_for_function("() => document.getElementById('sweep-form-msg').textContent === ''")

    page.wait_for_selector("#sweep-heatmap .main-svg")
    page.wait_for_selector("#sweep-table tbody tr")
    with api(browser) as c:
        run_id = c.get(f"/api/v1/jobs/{job_id}").json()["sweep_run_id"]
        best = c.get(f"/api/v1/sweeps/{run_id}/best", params={"limit": 1000}).json()
    rows = page.query_selector_all("#sweep-table tbody tr")
    assert len(rows) == best["returned"] > 0
    assert hidden_width(page, "#sweep-table") == 0  # every column readable at laptop width
    # The heatmap holds every combination of the results at its (fast, slow) cell.
    z = page.evaluate("() => document.getElementById('sweep-heatmap').data[0].z")
    assert sum(v is not None for r in z for v in r) == best["returned"]

    # Beside the heatmap: the grid's overfitting statistics, a plain-language reading and the
    # histogram of the logits of every CSCV split.
    o = best["overfitting"]
    page.wait_for_selector("#sweep-logits .main-svg")
    assert page.inner_text("#sweep-overfitting-reading") == o["reading"]
    assert page.inner_text("#sweep-overfitting dd[data-stat=dsr]") == f"{o['deflated_sharpe_ratio']:.3f}"
    assert page.inner_text("#sweep-overfitting dd[data-stat=pbo]") == f"{o['pbo']:.3f}"
    assert page.inner_text("#sweep-overfitting dd[data-stat=trials]") == "8"
    drawn = page.evaluate("() => document.getElementById('sweep-logits').data.map(t => t.x.length)")
    assert sum(drawn) == len(o["logits"]) == 12_870
    heat_box, panel_box = (page.query_selector(s).bounding_box() for s in ("#sweep-heatmap", "#sweep-overfitting"))
    assert panel_box["x"] >= heat_box["x"] + heat_box["width"] - 1  # beside it, at laptop width
    assert hidden_width(page, "#sweep-overfitting") == 0
    browser.shot("sweeps-overfitting")

    # Sorted by score, descending; a click on a header sorts by that column, again reverses it.
    def col(key: str) -> list[str]:
        return page.eval_on_selector_all(
            f"#sweep-table tbody tr td:nth-child({list_index(page, key)})", "tds => tds.map(t => t.textContent)")

    scores = numbers(col("score"))
    assert scores == sorted(scores, reverse=True)
    page.click("#sweep-table th[data-key=sharpe_ratio]")
    sharpe = numbers(col("sharpe_ratio"))
    assert sharpe == sorted(sharpe, reverse=True)
    page.click("#sweep-table th[data-key=sharpe_ratio]")
    assert numbers(col("sharpe_ratio")) == sorted(sharpe)

    # A click on a heatmap cell opens that combination's equity curve against buy-and-hold.
    top = best["results"][0]
    x, y = page.evaluate(
        """([fast, slow]) => {
             const gd = document.getElementById('sweep-heatmap');
             const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
             // Category axes: a cell's linear position is its index among the categories.
             const i = gd.data[0].x.indexOf(slow), j = gd.data[0].y.indexOf(fast);
             return [r.left + xa._offset + xa.l2p(i), r.top + ya._offset + ya.l2p(j)];
           }""",
        [top["fast_period"], top["slow_period"]],
    )
    with api(browser) as c:
        runs_before = c.get("/runs", params={"limit": 0}).json()["total"]
    page.mouse.click(x, y)
    page.wait_for_selector("#sweep-equity-chart .main-svg", timeout=30_000)
    card = page.inner_text("#sweep-equity")
    assert f"SMA {top['fast_period']}/{top['slow_period']} on DEMO-DAILY" in card and "Preview (not saved)" in card
    names = page.evaluate("() => document.getElementById('sweep-equity-chart').data.map(t => t.name)")
    assert names == [f"SMA {top['fast_period']}/{top['slow_period']}", "buy and hold"]
    # Issue 16: a click saves nothing; the clicked cell and its row stay marked.
    with api(browser) as c:
        assert c.get("/runs", params={"limit": 0}).json()["total"] == runs_before
    shape = page.evaluate("() => document.getElementById('sweep-heatmap').layout.shapes")
    cell = page.evaluate("([f, s]) => { const d = document.getElementById('sweep-heatmap').data[0];"
                         " return [d.x.indexOf(s), d.y.indexOf(f)]; }", [top["fast_period"], top["slow_period"]])
    assert len(shape) == 1 and (shape[0]["x0"] + 0.5, shape[0]["y0"] + 0.5) == tuple(cell)
    selected = page.eval_on_selector_all("#sweep-table tbody tr.selected", "trs => trs.map(t => t.textContent)")
    assert len(selected) == 1 and selected[0].startswith(f"{top['fast_period']}{top['slow_period']}")
    browser.shot("sweeps-results")
    # "Save as run" saves it, once.
    page.click("#sweep-save-run")
    page.wait_for_selector("#sweep-saved a")
    assert page.inner_text("#sweep-saved").startswith("Saved as run #")
    with api(browser) as c:
        assert c.get("/runs", params={"limit": 0}).json()["total"] == runs_before + 1


def list_index(page, key: str) -> int:
    keys = page.eval_on_selector_all("#sweep-table thead th", "ths => ths.map(t => t.dataset.key)")
    return keys.index(key) + 1


def test_day_by_day_backtest_and_a_day(browser: Browser) -> None:
    page = browser.page
    page.click("nav a[data-section=days]")
    page.wait_for_selector("#days-form")
    page.wait_for_selector("#strategy-new[open]")  # no strategy yet: the example is offered
    page.click("#strategy-create")
    page.wait_for_selector("#strategy-new .ok-box")
    assert page.input_value("#days-start") == "2024-01-01" and page.input_value("#days-end") == "2024-02-23"
    page.click("#days-run")
    wait_progress_done(page, "#days-progress")
    page.wait_for_selector("#days-summary")  # the metadata after the end
    job_id = page.inner_text("#days-job-id")
    strategy_id = page.input_value("#days-strategy")
    with api(browser) as c:
        meta = c.get(f"/api/v1/backtest/metadata/dashboard/{strategy_id}").json()
    assert meta["job_id"] == job_id and meta["status"] == "completed"
    # The day counter is fed by the stream's day_completed events as the days finish.
    assert page.inner_text("#days-count") == f"{meta['total_days']} / {meta['total_days']} days"
    traded = [d for d in meta["daily_summaries"] if d["positions"] > 0 and d["pnl"] != 0]
    cells = page.query_selector_all("#pnl-calendar .day.traded")
    assert len(cells) == len(traded) > 0
    # Coloured by sign: green for a profit, red for a loss.
    for d in traded[:10]:
        iso = f"{d['date'][6:]}-{d['date'][3:5]}-{d['date'][:2]}"
        bg = page.get_attribute(f'#pnl-calendar .day[data-date="{iso}"]', "style") or ""
        assert ("22, 163, 74" in bg) if d["pnl"] > 0 else ("220, 38, 38" in bg), (d, bg)
    browser.shot("days-calendar")

    day = traded[0]
    iso = f"{day['date'][6:]}-{day['date'][3:5]}-{day['date'][:2]}"
    page.click(f'#pnl-calendar .day[data-date="{iso}"]')
    page.wait_for_selector("#day-positions .position")
    assert len(page.query_selector_all("#day-positions .position")) == day["positions"]
    first = page.query_selector("#day-positions .position")
    headers = first.eval_on_selector_all("table.conditions thead th", "ths => ths.map(t => t.textContent)")
    assert headers[:7] == ["Condition", "LHS", "LHS value", "Op", "RHS", "RHS value", "Result"]
    entry_result = first.eval_on_selector("table.conditions tbody td:last-child span", "s => s.textContent")
    assert entry_result == "true"  # the entry fired, so its conditions held
    assert first.query_selector("table.candles tbody tr") is not None
    page.wait_for_selector("#day-chart .main-svg")
    browser.shot("days-day-detail")
    # Issue 16: stop and target levels read as prices, not floats' full expansions.
    previews = page.eval_on_selector_all("#day-positions .position h3 code", "cs => cs.map(c => c.textContent)")
    for text in previews:
        for level in re.findall(r"(?:stop_loss|target) \(([^)]*)\)", text):
            assert re.fullmatch(r"-?\d+\.\d{2}", level), previews

    # Issue 16: opening Day by day again shows the last run, and Jobs names its strategy.
    page.click("nav a[data-section=jobs]")
    page.wait_for_selector("#jobs-table tbody tr")
    page.click("nav a[data-section=days]")
    page.wait_for_selector("#days-job-id")
    assert page.inner_text("#days-job-id") == job_id
    page.wait_for_selector("#days-summary")
    page.click("nav a[data-section=jobs]")
    row = page.wait_for_selector(f'#jobs-table tbody tr:has-text("{job_id}")')
    with api(browser) as c:
        name = c.get(f"/api/v1/strategies/{strategy_id}").json()["name"]
    page.wait_for_function("([id, name]) => [...document.querySelectorAll('#jobs-table tbody tr')]"
                           ".some(tr => tr.textContent.includes(id) && tr.textContent.includes(name))", arg=[job_id, name])
    assert "100 %" in row.inner_text()  # a finished job shows its progress too


def test_strategy_session_in_words(browser: Browser) -> None:
    """Issue 16: a strategy with only `square_off` set reads as such, never "undefined"."""
    page = browser.page
    with api(browser) as c:
        base = c.get("/api/v1/strategies").json()["strategies"][0]["definition"]
        made = c.post("/api/v1/strategies", json={**base, "name": "Square-off only",
                                                  "session": {"square_off": "15:15"}}).json()
    try:
        browser.goto(f"/ui/days?strategy={made['strategy_id']}")
        page.wait_for_selector(f'#days-strategy option[value="{made["strategy_id"]}"]', state="attached")
        info = page.inner_text("#days-strategy-info")
        assert "whole day · square off 15:15" in info and "undefined" not in info, info
    finally:
        with api(browser) as c:
            c.delete(f"/api/v1/strategies/{made['strategy_id']}")


def test_edit_and_delete_a_strategy(browser: Browser) -> None:
    page = browser.page
    with api(browser) as c:
        original = c.get("/api/v1/strategies").json()["strategies"][0]["definition"]
        made = c.post("/api/v1/strategies", json={**original, "name": "To be renamed"}).json()
    sid = made["strategy_id"]
    browser.goto(f"/ui/days?strategy={sid}")
    page.wait_for_selector(f'#days-strategy option[value="{sid}"]', state="attached")
    assert page.input_value("#days-strategy") == sid

    # Edit loads the definition into the editor; an invalid one is refused with a readable message.
    page.click("#strategy-edit")
    page.wait_for_selector("#strategy-new[open] #strategy-save")
    assert page.inner_text("#strategy-editor-title") == 'Edit "To be renamed" (JSON)'
    definition = json.loads(page.input_value("#strategy-json"))
    assert definition["name"] == "To be renamed" and definition["entries"] == made["definition"]["entries"]
    broken = {**definition, "entries": [{**definition["entries"][0], "condition": "RSI(14) <"}]}
    page.fill("#strategy-json", json.dumps(broken))
    page.click("#strategy-save")
    err = page.wait_for_selector("#strategy-new .error-box").inner_text()
    assert "invalid strategy" in err and "condition" in err
    page.fill("#strategy-json", "{not json")
    page.click("#strategy-save")
    page.wait_for_selector("#strategy-new .error-box:has-text('Not valid JSON')")

    page.fill("#strategy-json", json.dumps({**definition, "name": "Renamed in the page"}, indent=2))
    page.click("#strategy-save")
    page.wait_for_selector("#strategy-new .ok-box:has-text('Saved \"Renamed in the page\"')")
    with api(browser) as c:
        saved = c.get(f"/api/v1/strategies/{sid}").json()
        assert saved["name"] == "Renamed in the page" and saved["definition"]["entries"] == made["definition"]["entries"]
        assert c.get("/api/v1/strategies").json()["total"] == 2  # replaced, not created
    assert page.input_value("#days-strategy") == sid
    assert "Renamed in the page" in page.inner_text(f'#days-strategy option[value="{sid}"]')
    browser.shot("days-strategy-edit")

    # Delete asks first: dismissed, nothing happens; accepted, the strategy is gone.
    page.once("dialog", lambda d: d.dismiss())
    page.click("#strategy-delete")
    with api(browser) as c:
        assert c.get(f"/api/v1/strategies/{sid}").status_code == 200
    messages: list[str] = []

    def accept(d) -> None:
        messages.append(d.message)
        d.accept()

    page.once("dialog", accept)
    page.click("#strategy-delete")
    page.wait_for_selector("#strategy-msg .ok-box:has-text('Deleted \"Renamed in the page\"')")
    assert messages and "Renamed in the page" in messages[0]
    with api(browser) as c:
        assert c.get(f"/api/v1/strategies/{sid}").status_code == 404
        assert c.get("/api/v1/strategies").json()["total"] == 1
    assert page.query_selector(f'#days-strategy option[value="{sid}"]') is None
    # The strategy being edited went with it: the editor is back to creating.
    assert page.inner_text("#strategy-editor-title") == "New strategy (JSON)"
    assert page.is_hidden("#strategy-save")


def test_runs_table_detail_replay_and_compare(browser: Browser) -> None:
    page = browser.page
    page.click("nav a[data-section=runs]")
    page.wait_for_selector("#runs-table tbody tr td a")
    kinds = page.eval_on_selector_all("#runs-table tbody tr td:nth-child(3)", "tds => tds.map(t => t.textContent)")
    assert {"backtest", "sweep", "day_by_day"} <= set(kinds)
    page.select_option("#runs-filters select[name=kind]", "backtest")
    page.click("#runs-filters button[type=submit]")
    page.wait_for_function("() => [...document.querySelectorAll('#runs-table tbody tr td:nth-child(3)')].every(t => t.textContent === 'backtest')")
    assert "kind=backtest" in page.url
    assert re.match(r"1 run", page.inner_text("#runs-total"))
    browser.shot("runs")
    first_id = page.inner_text("#runs-table tbody tr td:nth-child(2) a").lstrip("#")
    page.click("#runs-table tbody tr td:nth-child(2) a")
    page.wait_for_selector("#run-equity-chart .main-svg")
    assert page.inner_text("#run-title").startswith(f"Run #{first_id}: sma_crossover on DEMO-DAILY")
    browser.shot("run-detail")

    page.fill("#replay-parameters", '{"fast_period": 12}')
    page.click("#replay-run")
    page.wait_for_url(re.compile(rf"/ui/runs/(?!{first_id}$)\d+$"))
    page.wait_for_selector("#run-equity-chart .main-svg")
    assert f"replay of #{first_id}" in page.inner_text("main")
    replay_id = page.url.rsplit("/", 1)[1]
    assert "12" in page.inner_text("dl.kv")

    # Paging: one run a page, newest first.
    browser.goto("/ui/runs?kind=backtest&limit=1")
    page.wait_for_selector(f'#runs-table input[data-run="{replay_id}"]')
    assert page.inner_text("#runs-range") == "1–1 of 2" and page.is_disabled("#runs-prev")
    page.check(f'#runs-table input[data-run="{replay_id}"]')
    page.click("#runs-next")
    page.wait_for_selector(f'#runs-table input[data-run="{first_id}"]')
    assert page.inner_text("#runs-range") == "2–2 of 2" and page.is_disabled("#runs-next")
    assert "offset=1" in page.url
    page.check(f'#runs-table input[data-run="{first_id}"]')  # the selection survives paging
    page.click("#runs-compare")
    page.wait_for_selector("#compare-chart .main-svg")
    series = page.evaluate("() => document.getElementById('compare-chart').data.length")
    assert series == 2
    assert "fast_period" in page.inner_text("#compare-table")
    browser.shot("runs-compare")


def test_jobs_list_and_cancel(browser: Browser) -> None:
    page = browser.page
    heavy = {"ticker": "DEMO-MINUTE", "fast_range": [2, 100], "slow_range": [101, 500], "step": 1, "min_trades": 10}
    with api(browser) as c:
        ids = [c.post("/api/v1/strategy/sweep", json=heavy).json()["job_id"] for _ in range(3)]
        try:
            browser.goto("/ui/jobs")
            page.wait_for_selector(f'#jobs-table button[data-cancel="{ids[-1]}"]')
            page.click(f'#jobs-table button[data-cancel="{ids[-1]}"]')
            page.wait_for_function(
                """(id) => [...document.querySelectorAll('#jobs-table tbody tr')]
                     .some(tr => tr.textContent.includes(id) && tr.querySelector('.badge.cancelled'))""",
                arg=ids[-1])
            assert c.get(f"/api/v1/jobs/{ids[-1]}").json()["status"] == "cancelled"
            assert page.query_selector_all("#jobs-table .badge.completed")  # the earlier sweep and backtest
            browser.shot("jobs")
        finally:
            for job_id in ids:
                c.delete(f"/api/v1/jobs/{job_id}")


def test_failed_job_shows_what_to_do(browser: Browser) -> None:
    """Issue 16: a sweep of a ticker without bars says how to import them, on the Jobs page."""
    page = browser.page
    with api(browser) as c:
        job_id = c.post("/api/v1/strategy/sweep", json={"ticker": "NODATA-X", "fast_range": [10, 20],
                                                        "slow_range": [20, 30], "step": 5}).json()["job_id"]
        for _ in range(100):
            if c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "failed":
                break
            time.sleep(0.1)
    browser.goto("/ui/jobs")
    hint = page.wait_for_selector(".job-hint")
    assert "hindsight datasets import FILE --ticker NODATA-X" in hint.inner_text()


def test_datasets_upload_and_chart(browser: Browser) -> None:
    page = browser.page
    page.click("nav a[data-section=datasets]")
    page.wait_for_selector("#datasets-table tbody tr td strong")
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(400):
        p = round(50 + 8 * math.sin(i / 25) + i * 0.04, 4)
        lines.append(f"{date(2021, 1, 1) + timedelta(days=i)},{p},{p + 1},{p - 1},{p + 0.5},100")
    csv = ("\n".join(lines) + "\n").encode()
    page.set_input_files("#upload-file", files=[{"name": "web.csv", "mimeType": "text/csv", "buffer": csv}])
    page.fill("#upload-ticker", "WEB-TEST")
    page.select_option("#upload-interval", "1d")
    page.click("#upload-submit")
    ok = page.wait_for_selector("#upload-msg .ok-box")
    assert "Imported WEB-TEST 1d (generic)" in ok.inner_text()
    page.wait_for_selector('#upload-progress [aria-valuenow="100"]', state="attached")
    page.wait_for_selector("#dataset-chart .main-svg")
    assert "WEB-TEST" in page.inner_text("#datasets-table")
    browser.shot("datasets")

    # A bad file: the API's message, readable, with the field it is about.
    page.set_input_files("#upload-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"when,price\nx,1\n"}])
    page.click("#upload-submit")
    err = page.wait_for_selector("#upload-msg .error-box")
    assert err.inner_text().strip() and "{" not in err.inner_text()

    # Issue 16: the form takes the exports people have — a Yahoo Finance file, its null row dropped.
    yahoo = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for i in range(30):
        day = date(2023, 3, 1) + timedelta(days=i)
        p = 100 + i
        yahoo.append(f"{day},null,null,null,null,null,null" if i == 5 else f"{day},{p},{p + 2},{p - 2},{p + 1},{p + 0.9},1000")
    page.set_input_files("#upload-file", files=[{"name": "yahoo.csv", "mimeType": "text/csv",
                                                 "buffer": ("\n".join(yahoo) + "\n").encode()}])
    page.fill("#upload-ticker", "WEB-YAHOO")
    page.select_option("#upload-format", "yahoo")
    page.click("#upload-submit")
    ok = page.wait_for_selector("#upload-msg .ok-box:has-text('WEB-YAHOO')")
    assert "Imported WEB-YAHOO 1d (yahoo): 29 bars" in ok.inner_text() and "1 row dropped" in ok.inner_text()


def test_charts_offer_no_way_off_the_gateway(browser: Browser) -> None:
    # plotly.js's modebar has a "Share chart..." button by default that opens Plotly Cloud
    # and posts the chart's data there: no chart of the dashboard may offer it.
    page = browser.page
    browser.goto("/ui/datasets")
    page.click("#datasets-table tbody tr:has-text('DEMO-DAILY')")
    page.wait_for_selector("#dataset-chart .main-svg")
    chart = page.evaluate("""() => {
        const gd = document.getElementById('dataset-chart');
        return {titles: [...gd.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title') || ''),
                cloud: gd._context.showSendToCloud, server: gd._context.plotlyServerURL};
      }""")
    assert "Download plot as a PNG" in chart["titles"]
    assert not [t for t in chart["titles"] if "share" in t.lower() or "cloud" in t.lower()], chart["titles"]
    assert chart["cloud"] is False and chart["server"] == ""


@pytest.mark.parametrize("path", ["/ui/sweeps", "/ui/walkforward", "/ui/days", "/ui/runs", "/ui/jobs", "/ui/datasets"])
def test_pages_fit_a_laptop_screen(browser: Browser, path: str) -> None:
    page = browser.page
    browser.goto(path)
    page.wait_for_load_state("networkidle")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"{path} is {width}px wide"
    # Tables scroll inside their card only when they must: at laptop width none hides a column.
    hidden = page.eval_on_selector_all(
        "main .table-wrap", "ws => ws.map(w => [w.id || w.parentElement.id, w.scrollWidth - w.clientWidth])")
    assert [h for h in hidden if h[1] > 0] == [], f"{path}: columns scrolled out of sight {hidden}"


def test_no_page_talks_to_anyone_but_the_gateway(browser: Browser) -> None:
    assert any(u.endswith("/ui/vendor/plotly.min.js") for u in browser.requests)
    assert any("/api/v1/jobs/" in u and u.endswith("/stream") for u in browser.requests)
    assert browser.foreign_requests() == []
    crashes = [e for e in browser.errors if e.startswith("pageerror") or "Content Security Policy" in e]
    assert crashes == []
    # Nothing else on the console either (the API errors the tests provoke log "Failed to load resource").
    assert [e for e in browser.errors if "Failed to load resource" not in e] == []
    shots = {p.name for p in SCREENSHOTS.glob("*.png")}
    assert {"login-then-sweeps.png", "sweeps-results.png", "days-calendar.png", "days-day-detail.png", "runs.png",
            "run-detail.png", "runs-compare.png", "jobs.png", "datasets.png"} <= shots
