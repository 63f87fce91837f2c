"""The notification email on its own (no SMTP): what a person reading it can click."""

from __future__ import annotations

from hindsight.jobs.v1 import jobs_pb2

from services.notifier.mail import JobSummary, compose


def _parts(msg) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}


def _email(job: JobSummary, payload: dict) -> dict[str, str]:
    msg = compose("evt-1", payload["event_type"], payload, job, to="q@example.com", sender="h@localhost",
                  public_url="https://hindsight.example/")
    return _parts(msg)


def test_links_open_the_job_in_the_dashboard_beside_the_api():
    sweep = JobSummary(job_id="sweep_1", status="completed", kind=jobs_pb2.JOB_KIND_SWEEP, sweep_run_id="run_1",
                       ticker="BTC-USD")
    days = JobSummary(job_id="bt_1", status="failed", kind=jobs_pb2.JOB_KIND_DAY_BY_DAY,
                      error_message="boom")
    other = JobSummary(job_id="job_1", status="completed")
    cases = [
        (sweep, {"event_type": "sweep.completed", "status": "completed"}, "https://hindsight.example/ui/sweeps?job=sweep_1"),
        (days, {"event_type": "backtest.failed", "status": "failed"}, "https://hindsight.example/ui/days?job=bt_1"),
        (other, {"event_type": "backtest.completed", "status": "completed"}, "https://hindsight.example/ui/jobs"),
    ]
    for job, payload, dashboard in cases:
        parts = _email(job, payload)
        text, html = parts["text/plain"], parts["text/html"]
        assert f"Dashboard: {dashboard}" in text, text
        assert f"<a href='{dashboard}'>Dashboard</a>" in html, html
        # The API links stay.
        assert f"https://hindsight.example/api/v1/jobs/{job.job_id}" in text


def test_a_completed_sweep_email_tells_its_dsr_and_pbo_in_plain_words():
    sweep = JobSummary(job_id="sweep_1", status="completed", kind=jobs_pb2.JOB_KIND_SWEEP, sweep_run_id="run_1")
    payload = {"event_type": "sweep.completed", "status": "completed",
               "result_data": {"sweep_run_id": "run_1", "deflated_sharpe_ratio": 0.31234, "pbo": 0.625}}
    parts = _email(sweep, payload)
    text, html = parts["text/plain"], parts["text/html"]
    assert "deflated Sharpe ratio 0.312, probability of backtest overfitting 0.625" in text
    assert "Probably overfit" in text and "31%" in text and "62%" in text
    assert "<h3>Overfitting</h3>" in html and "Probably overfit" in html
    # without statistics (not computed): said, not invented
    payload["result_data"].update(deflated_sharpe_ratio=None, pbo=None)
    assert "Not enough data for the overfitting statistics" in _email(sweep, payload)["text/plain"]
    # a job whose callback has none at all: no section
    assert "Overfitting" not in _email(sweep, {"event_type": "sweep.completed", "status": "completed"})["text/plain"]


def test_a_walkforward_email_links_its_page_and_tells_its_efficiency():
    job = JobSummary(job_id="walkforward_1", status="completed", kind=jobs_pb2.JOB_KIND_WALK_FORWARD, ticker="BTC-USD")
    payload = {"event_type": "walkforward.completed", "status": "completed",
               "result_data": {"folds": 6, "walk_forward_efficiency": 0.69612, "completed_at": "2025-01-01T00:00:00Z"}}
    parts = _email(job, payload)
    assert "Dashboard: https://hindsight.example/ui/walkforward?job=walkforward_1" in parts["text/plain"]
    assert "Walk-forward efficiency: 0.696 (6 folds)" in parts["text/plain"]
    assert "Walk-forward efficiency: <b>0.696</b> (6 folds)" in parts["text/html"]
    undefined = _email(job, {**payload, "result_data": {"folds": 2, "walk_forward_efficiency": None}})
    assert "Walk-forward efficiency: - (2 folds)" in undefined["text/plain"]
    # A failed one says its error, not an efficiency.
    failed = _email(JobSummary(job_id="walkforward_2", status="failed", kind=jobs_pb2.JOB_KIND_WALK_FORWARD),
                    {"event_type": "walkforward.failed", "status": "failed", "error_message": "boom"})
    assert "Error:  boom" in failed["text/plain"] and "efficiency" not in failed["text/plain"]
