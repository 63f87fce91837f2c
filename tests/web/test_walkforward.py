"""The dashboard's walk-forward page in headless Chromium against a real standalone stack:
the API's 400 shown on the form, a walk-forward started from the form and followed to 100 %,
then the folds table, the in- vs out-of-sample bars and the stitched equity against
buy-and-hold, each checked against GET /api/v1/walkforward/{id}."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import VIEWPORT, WEB_KEY, Browser

pytestmark = pytest.mark.timeout(120)


def _logged_in(browser: Browser) -> None:
    browser.log_in()
    browser.goto("/ui/walkforward")
    browser.page.wait_for_selector("#wf-form")


def test_walkforward_from_the_form(browser: Browser) -> None:
    page = browser.page
    _logged_in(browser)
    page.wait_for_selector("#wf-ticker option[value=DEMO-DAILY]", state="attached")
    page.select_option("#wf-ticker", "DEMO-DAILY")
    assert "active" in page.get_attribute("#nav a[data-section=walkforward]", "class")

    page.fill("#wf-train", "1900")  # with a 250-bar test window: longer than the 2,000 bars
    page.click("#wf-start")
    box = page.wait_for_selector("#wf-form-msg .error-box")
    assert "longer than the data" in box.inner_text()

    page.fill("#wf-train", "500")
    page.fill("#wf-test", "250")
    page.fill("#wf-step", "250")
    page.click("#wf-start")
    page.wait_for_selector('#wf-progress [role=progressbar][aria-valuenow="100"]', timeout=60_000)
    job_id = page.url.split("job=")[1]
    page.wait_for_selector("#wf-folds tbody tr")
    page.wait_for_selector("#wf-equity .main-svg")
    with httpx.Client(base_url=browser.base_url, headers={"X-API-Key": WEB_KEY}, timeout=30) as c:
        wf = c.get(f"/api/v1/walkforward/{job_id}").json()
    assert wf["status"] == "completed" and len(wf["folds"]) == 6

    rows = page.query_selector_all("#wf-folds tbody tr")
    assert len(rows) == 6
    first = [td.inner_text() for td in rows[0].query_selector_all("td")]
    f0 = wf["folds"][0]
    assert first[0] == "1" and first[1] == f"{f0['test_start_time'][:10]} → {f0['test_end_time'][:10]}"
    if f0["parameters"]:
        assert first[2:4] == [str(f0["parameters"]["fast_period"]), str(f0["parameters"]["slow_period"])]
    bars = page.evaluate("() => document.getElementById('wf-bars').data.map(t => [t.name, t.y])")
    assert [b[0] for b in bars] == ["in sample", "out of sample"]
    assert bars[1][1] == [f["out_of_sample"]["total_return_pct"] if f["out_of_sample"] else None for f in wf["folds"]]
    lines = page.evaluate("() => document.getElementById('wf-equity').data.map(t => [t.name, t.y.length, t.y.at(-1)])")
    points = wf["stitched"]["equity"]
    assert lines == [["walk-forward (out of sample)", len(points), points[-1]["equity"]],
                     ["buy and hold", len(points), points[-1]["buy_and_hold"]]]
    efficiency = wf["walk_forward_efficiency"]
    shown = page.inner_text("#wf-summary dd[data-stat=efficiency]")
    assert shown == ("—" if efficiency is None else f"{efficiency:,.3f}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= VIEWPORT["width"]
    # Every column of the folds table readable at laptop width.
    assert page.eval_on_selector("#wf-folds", "t => t.parentElement.scrollWidth - t.parentElement.clientWidth") == 0
    browser.shot("walkforward")

    # The Jobs page describes the job and opens it on this page.
    browser.goto("/ui/jobs")
    row = page.wait_for_selector(f"tr:has-text('{job_id[:24]}')")
    assert "walk-forward SMA DEMO-DAILY train 500 test 250 step 250" in row.inner_text()
    row.query_selector(f"a[href='/ui/walkforward?job={job_id}']").click()
    page.wait_for_selector("#wf-folds tbody tr")
    assert len(page.query_selector_all("#wf-folds tbody tr")) == 6
    assert [e for e in browser.errors if "Failed to load resource" not in e] == []
    assert browser.foreign_requests() == []
