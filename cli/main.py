"""`hindsight`: sweeps, backtests, runs, jobs, datasets, rule strategies and day-by-day
backtests from a terminal or a script.

Every command takes `--json` (print the API's JSON, nothing else, on stdout) and reads
the API URL and key from `--url`/`--api-key` or HINDSIGHT_URL/HINDSIGHT_API_KEY.
Progress bars (SSE job progress, uploads) are drawn only when stdout is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from cli.client import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    ProgressReader,
)
from cli.render import ProgressBar, fmt_num, kv, table
from domain.backtest_spec import DIRECTIONS, FILLS
from domain.bar_formats import FORMATS
from domain.market import INTERVALS
from domain.walkforward import OBJECTIVE_DEFAULT, OBJECTIVES

DEFAULT_URL = "http://127.0.0.1:8000"

EXIT_CODES = """\
exit codes:
  0    success
  1    the job ended failed or cancelled (sweep, jobs watch, days run)
  2    usage error (bad arguments)
  3    the API is unreachable, timed out, or answered 5xx
  4    the API refused the request (4xx: invalid parameters, not found, conflict)
  5    authentication failed (401/403): check --api-key / HINDSIGHT_API_KEY
  130  interrupted (Ctrl-C)
  141  stdout was closed early (e.g. piped into head), as for any command stopped by SIGPIPE
with --json, errors are a JSON object on stderr: {"error": {"code", "message", "details"}, "exit_code": N}
"""

BEST_COLUMNS = [
    ("fast", "fast_period", 0),
    ("slow", "slow_period", 0),
    ("score", "score", 3),
    ("sharpe", "sharpe_ratio", 2),
    ("sortino", "sortino_ratio", 2),
    ("return %", "total_return_pct", 1),
    ("cagr %", "annualized_return", 1),
    ("max dd %", "max_drawdown_pct", 1),
    ("win %", "win_rate_pct", 1),
    ("pf", "profit_factor", 2),
    ("trades", "total_trades", 0),
    ("avg duration", "avg_trade_duration", 0),
]
RUN_COLUMNS = [
    ("id", "id", 0),
    ("kind", "kind", 0),
    ("ticker", "ticker", 0),
    ("strategy", "strategy", 0),
    ("interval", "interval", 0),
    ("period", lambda r: f"{r.get('start_date') or '...'} -> {r.get('end_date') or '...'}", 0),
    ("return %", "return_pct", 2),
    ("pnl", "pnl", 2),
    ("sharpe", "sharpe_ratio", 2),
    ("trades", "total_trades", 0),
    ("created", "created_at", 0),
]
JOB_COLUMNS = [
    ("job", "job_id", 0),
    ("kind", "kind", 0),
    ("status", "status", 0),
    ("progress %", lambda j: j["progress"]["percent"], 0),
    ("created", "created_at", 0),
    ("error", "error_message", 0),
]
DATASET_COLUMNS = [
    ("id", "dataset_id", 0),
    ("ticker", "ticker", 0),
    ("interval", "interval", 0),
    # An option chain's rows are its bars; its calendar column says what it is.
    ("bars", lambda d: d.get("bars", d.get("rows")), 0),
    ("start", "start", 0),
    ("end", "end", 0),
    ("calendar", lambda d: d.get("calendar") or f"{d.get('kind')} on {d.get('underlying')}", 0),
    ("version", "version", 0),
]
STRATEGY_COLUMNS = [
    ("id", "strategy_id", 0),
    ("name", "name", 0),
    ("dataset", lambda s: " ".join(str(v) for v in ((s.get("definition") or {}).get("dataset") or {}).values()), 0),
    ("entries", lambda s: len((s.get("definition") or {}).get("entries") or []), 0),
    ("exits", lambda s: len((s.get("definition") or {}).get("exits") or []), 0),
    ("updated", "updated_at", 0),
]
DAY_COLUMNS = [
    ("date", "date", 0),
    ("positions", "positions", 0),
    ("pnl", "pnl", 2),
    ("data", lambda d: "yes" if d.get("has_data") else "-", 0),
    ("file KB", "file_size_kb", 1),
]
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The results partition of a day-by-day run when --user is not given: the dashboard's
# default too, so a run started from either shows in the other.
DEFAULT_DAYS_USER = "dashboard"


class UsageError(Exception):
    """A command-line value that cannot be used (exit 2)."""


def print_error(json_mode: bool, code: str, message: str, exit_code: int, details: dict[str, Any] | None = None) -> None:
    """An error on stderr: a line for a person, or with --json the API's error shape and the exit code."""
    if json_mode:
        json.dump({"error": {"code": code, "message": message, "details": details or {}}, "exit_code": exit_code},
                  sys.stderr)
        sys.stderr.write("\n")
    else:
        print(f"hindsight: {message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are JSON on stderr when --json is on the command line."""

    json_errors = False  # set by main() from the raw arguments, before parsing

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            print_error(True, "usage", f"{self.prog}: {message}", EXIT_USAGE, {"usage": self.format_usage().strip()})
            sys.exit(EXIT_USAGE)
        super().error(message)


# ---------------------------------------------------------------- argument types


def int_range(text: str) -> list[int]:
    """`10:20` (or `10-20`, `10,20`) -> [10, 20]."""
    for sep in (":", ",", "-"):
        if sep in text:
            lo, _, hi = text.partition(sep)
            try:
                return [int(lo), int(hi)]
            except ValueError:
                break
    raise argparse.ArgumentTypeError(f"expected a range MIN:MAX, e.g. 10:20 (got {text!r})")


def number_range(text: str) -> list[float]:
    """`20:35` -> [20.0, 35.0] (an RSI threshold's range)."""
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return [float(lo), float(hi)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range MIN:MAX, e.g. 20:35 (got {text!r})") from None


def iso_day(text: str) -> str:
    """`2024-01-31` as is; anything else is a usage error."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD (got {text!r})") from None


def key_value(text: str) -> tuple[str, Any]:
    """`fast_period=10` -> ("fast_period", 10); values are read as JSON when they parse."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (got {text!r})")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


# ---------------------------------------------------------------- output helpers


class Output:
    """Where results go: JSON only with --json, tables and progress otherwise."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.tty = sys.stdout.isatty()

    def emit_json(self, value: Any) -> None:
        json.dump(value, sys.stdout, indent=2)
        sys.stdout.write("\n")

    def progress(self, label: str = "") -> ProgressBar | None:
        return ProgressBar(sys.stdout, label) if self.tty and not self.json else None

    def note(self, text: str) -> None:
        """Information for a person: stderr, so stdout stays the result."""
        if not self.json:
            print(text, file=sys.stderr)


def follow(api: Api, out: Output, job_id: str) -> dict[str, Any]:
    """Follow a job's SSE stream (a progress bar on a terminal); the terminal event."""
    bar = out.progress()
    final: dict[str, Any] = {}
    try:
        for event in api.job_events(job_id):
            if event.get("done") or event.get("error"):
                final = event
                break
            if bar is not None and isinstance(event.get("percent"), (int, float)):
                bar.update(event["percent"], str(event.get("message") or ""))
    finally:
        if bar is not None:
            if final.get("done"):
                bar.update(100, "Completed")
            bar.close()
    return final


# ---------------------------------------------------------------- commands


def cmd_health(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.get("/health")
    if out.json:
        out.emit_json(body)
    else:
        kv([("status", body.get("status")), ("version", body.get("version")), ("url", api.base_url)])
    return EXIT_OK


def submit_and_follow(
    api: Api, out: Output, path: str, body: dict[str, Any], *, no_wait: bool, what: str, result_key: str,
    describe: Any,
) -> int | tuple[dict[str, Any], dict[str, Any], float]:
    """POST a job and, unless `no_wait`, follow its stream to the end.

    Returns (submitted, final event, start time) when the job completed; otherwise the
    exit code, after printing the job (--no-wait) or the failure (as JSON under --json
    with `result_key` null).
    """
    submitted = api.post(path, {k: v for k, v in body.items() if v is not None})
    job_id = submitted["job_id"]
    out.note(describe(submitted))
    if no_wait:
        if out.json:
            out.emit_json({"job": submitted})
        else:
            print(job_id)
        return EXIT_OK
    started = time.monotonic()
    final = follow(api, out, job_id)
    if not final.get("done") or final.get("status") != "completed":
        message = final.get("message") or final.get("status") or "the job did not complete"
        if out.json:
            out.emit_json({"job": submitted, "result": final, result_key: None})
        else:
            print(f"{what} failed: {message}", file=sys.stderr)
            hint = api.get(f"/api/v1/jobs/{job_id}").get("hint")
            if hint:
                print(f"hint: {hint}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return submitted, final, started


TICKER_COLUMNS = [
    ("ticker", "ticker", 0),
    ("status", "status", 0),
    ("best score", "best_score", 3),
    ("fast", lambda t: (t.get("best") or {}).get("fast_period"), 0),
    ("slow", lambda t: (t.get("best") or {}).get("slow_period"), 0),
    ("return %", lambda t: (t.get("best") or {}).get("total_return_pct"), 1),
    ("buy&hold %", "buy_and_hold_return_pct", 1),
    ("error", lambda t: t.get("error_message") or "", 0),
]


def _sweep_target(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep's ticker, or its tickers (--tickers A,B,C) or universe (--universe NAME)."""
    tickers, universe = getattr(args, "tickers", None), getattr(args, "universe", None)
    given = [x for x in (args.ticker, tickers, universe) if x is not None]
    if len(given) != 1:
        raise UsageError("give a TICKER, --tickers A,B,C or --universe NAME (one of them)")
    if tickers is not None:
        return {"tickers": [t.strip() for t in tickers.split(",") if t.strip()]}
    if universe is not None:
        return {"universe": universe}
    return {"ticker": args.ticker}


def sweep_body(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep request of the sweep options (`sweep`, with RSI's and a universe; `walkforward`)."""
    needed = ("period", "oversold", "overbought") if args.strategy == "RSI" else ("fast", "slow")
    missing = [f"--{name}" for name in needed if getattr(args, name, None) is None]
    if missing:
        raise UsageError(f"--strategy {args.strategy} needs {' and '.join(missing)}")
    return {
        **_sweep_target(args),
        "strategy_type": args.strategy.upper(),
        "fast_range": args.fast,
        "slow_range": args.slow,
        "period_range": getattr(args, "period", None),
        "oversold_range": getattr(args, "oversold", None),
        "overbought_range": getattr(args, "overbought", None),
        "threshold_step": getattr(args, "threshold_step", None),
        "step": args.step,
        "min_trades": args.min_trades,
        "interval": args.interval,
        "direction": args.direction,
        "fill": args.fill,
        "commission_pct": args.commission,
        "slippage_pct": args.slippage,
        "initial_cash": args.cash,
        "webhook_url": args.webhook,
    }


def cmd_sweep(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = sweep_body(args)
    target = {k: body[k] for k in ("ticker", "tickers", "universe") if k in body}
    got = submit_and_follow(
        api, out, "/api/v1/strategy/sweep", body, no_wait=args.no_wait, what="sweep", result_key="best",
        describe=lambda job: f"sweep job {job['job_id']}: {job['parameters']['combinations']} combinations queued",
    )
    if isinstance(got, int):
        return got
    submitted, final, started = got
    job_id = submitted["job_id"]
    run_id = final.get("sweep_run_id") or api.get(f"/api/v1/jobs/{job_id}").get("sweep_run_id")
    best = api.get(f"/api/v1/sweeps/{run_id}/best", ticker=args.ticker, limit=args.limit)
    tickers = api.get(f"/api/v1/sweeps/{run_id}/tickers") if "ticker" not in target else None
    if out.json:
        out.emit_json({"job": submitted, "result": final, "best": best,
                       **({"tickers": tickers["tickers"]} if tickers is not None else {})})
        return EXIT_OK
    out.note(f"completed in {time.monotonic() - started:.1f} s; sweep run {run_id}")
    if tickers is not None:
        print("Tickers, best first:")
        rows = sorted(tickers["tickers"], key=lambda t: (t.get("best_score") is None, -(t.get("best_score") or 0.0)))
        table(rows, TICKER_COLUMNS)
        print(f"Best {best['returned']} of {best['total_results']} combinations across every ticker, by score:")
        table(best["results"], [("ticker", "ticker", 0), *BEST_COLUMNS])
        return EXIT_OK
    left_out = best.get("excluded_below_min_trades", 0)
    print(f"Best {best['returned']} of {best['total_results']} combinations by score"
          + (f" ({left_out} below {best.get('min_trades')} trades left out):" if left_out else ":"))
    if args.strategy == "RSI":
        shown = [(n, (lambda r, n=n: (r.get("parameters") or {}).get(n)), 1) for n in ("period", "oversold", "overbought")]
        table(best["results"], [*shown, *BEST_COLUMNS[2:]])
    else:
        table(best["results"], BEST_COLUMNS)
    return EXIT_OK


FOLD_COLUMNS = [
    ("fold", "fold", 0),
    ("test from", "test_start_time", 0),
    ("test to", "test_end_time", 0),
    ("fast", "fast_period", 0),
    ("slow", "slow_period", 0),
    ("IS return %", "is_return", 1),
    ("OOS return %", "oos_return", 1),
    ("IS cagr %", "is_cagr", 1),
    ("OOS cagr %", "oos_cagr", 1),
    ("OOS sharpe", "oos_sharpe", 2),
    ("OOS trades", "oos_trades", 0),
]


def fold_rows(wf: dict[str, Any]) -> list[dict[str, Any]]:
    """The folds table's rows (a fold that chose nothing shows blanks)."""
    rows = []
    for f in wf["folds"]:
        params, ins, oos = f.get("parameters") or {}, f.get("in_sample") or {}, f.get("out_of_sample") or {}
        rows.append({
            "fold": f["fold"] + 1, "test_start_time": f["test_start_time"], "test_end_time": f["test_end_time"],
            "fast_period": params.get("fast_period"), "slow_period": params.get("slow_period"),
            "is_return": ins.get("total_return_pct"), "oos_return": oos.get("total_return_pct"),
            "is_cagr": ins.get("annualized_return"), "oos_cagr": oos.get("annualized_return"),
            "oos_sharpe": oos.get("sharpe_ratio"), "oos_trades": oos.get("total_trades"),
        })
    return rows


def cmd_walkforward(api: Api, out: Output, args: argparse.Namespace) -> int:
    sweep = {k: v for k, v in sweep_body(args).items() if v is not None and k != "webhook_url"}
    body: dict[str, Any] = {
        "sweep": sweep,
        "train_bars": args.train,
        "test_bars": args.test,
        "step_bars": args.step_bars if args.step_bars is not None else args.test,
        "anchored": args.anchored,
        "objective": args.objective,
        "webhook_url": args.webhook,
    }
    got = submit_and_follow(
        api, out, "/api/v1/walkforward", body, no_wait=args.no_wait, what="walk-forward", result_key="walkforward",
        describe=lambda job: f"walk-forward job {job['job_id']}: {job['folds']} folds of {job['combinations']} "
                             "combinations queued",
    )
    if isinstance(got, int):
        return got
    submitted, final, started = got
    wf = api.get(f"/api/v1/walkforward/{submitted['job_id']}")
    if out.json:
        out.emit_json({"job": submitted, "result": final, "walkforward": wf})
        return EXIT_OK
    out.note(f"completed in {time.monotonic() - started:.1f} s")
    print(f"{len(wf['folds'])} folds, chosen on {wf['objective']} (train {wf['train_bars']}, test {wf['test_bars']}, "
          f"step {wf['step_bars']} bars{', anchored' if wf['anchored'] else ''}):")
    table(fold_rows(wf), FOLD_COLUMNS)
    stitched = (wf.get("stitched") or {}).get("metrics") or {}
    kv([
        ("stitched OOS return %", fmt_num(stitched.get("total_return_pct"), 2)),
        ("stitched OOS cagr %", fmt_num(stitched.get("annualized_return"), 2)),
        ("stitched OOS sharpe", fmt_num(stitched.get("sharpe_ratio"), 2)),
        ("stitched OOS max dd %", fmt_num(stitched.get("max_drawdown_pct"), 2)),
        ("walk-forward efficiency", fmt_num(wf.get("walk_forward_efficiency"), 3)),
    ])
    return EXIT_OK


def cmd_backtest(api: Api, out: Output, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "ticker": args.ticker,
        "strategy": args.strategy,
        "parameters": dict(args.param or []),
        "start_date": args.start,
        "end_date": args.end,
        "interval": args.interval,
        "cash": args.cash,
        "commission_pct": args.commission,
        "slippage_pct": args.slippage,
        "direction": args.direction,
        "fill": args.fill,
    }
    if args.strategy_id:
        body.pop("strategy")
        body["strategy_id"] = args.strategy_id
    result = api.post("/api/v1/runs/backtest", {k: v for k, v in body.items() if v is not None})
    if out.json:
        out.emit_json(result)
        return EXIT_OK
    print_run(result)
    print(f"trades: {len(result.get('trades') or [])}  equity points: {len(result.get('equity_curve') or [])}")
    return EXIT_OK


def print_run(run: dict[str, Any]) -> None:
    m = run.get("metrics") or {}
    print(f"run {run['id']}: {run.get('strategy')} on {run.get('ticker')} {run.get('interval')} "
          f"{run.get('start_date')} -> {run.get('end_date')} ({run.get('kind')})")
    params = run.get("parameters") or {}
    if params:
        print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, (dict, list))))
    kv([
        ("total return %", m.get("total_return_pct")),
        ("buy & hold %", m.get("buy_and_hold_return_pct")),
        ("cagr %", m.get("annualized_return")),
        ("sharpe", m.get("sharpe_ratio")),
        ("sortino", m.get("sortino_ratio")),
        ("max drawdown %", m.get("max_drawdown_pct")),
        ("win rate %", m.get("win_rate_pct")),
        ("profit factor", m.get("profit_factor")),
        ("trades", m.get("total_trades")),
        ("pnl", m.get("pnl")),
    ])


def cmd_runs(api: Api, out: Output, args: argparse.Namespace) -> int:
    action = args.runs_action or "list"
    if action == "list":
        body = api.get("/api/v1/runs", ticker=args.ticker, strategy=args.strategy, kind=args.kind, limit=args.limit,
                       offset=args.offset)
        if out.json:
            out.emit_json(body)
        else:
            table(body["runs"], RUN_COLUMNS)
            shown = len(body["runs"])
            print(f"{body['offset'] + 1 if shown else 0}-{body['offset'] + shown} of {body['total']} runs")
        return EXIT_OK
    if action == "show":
        run = api.get(f"/api/v1/runs/{args.run_id}")
        out.emit_json(run) if out.json else print_run(run)
        return EXIT_OK
    if action == "replay":
        body: dict[str, Any] = {"start_date": args.start, "end_date": args.end, "interval": args.interval,
                                "cash": args.cash, "commission_pct": args.commission, "slippage_pct": args.slippage}
        if args.param:
            body["parameters"] = dict(args.param)
        run = api.post(f"/api/v1/runs/{args.run_id}/replay", {k: v for k, v in body.items() if v is not None})
        out.emit_json(run) if out.json else print_run(run)
        return EXIT_OK
    if action == "report":
        return runs_report(api, out, args)
    if action == "montecarlo":
        return runs_montecarlo(api, out, args)
    # compare
    body = api.get("/api/v1/runs/compare", ids=",".join(str(i) for i in args.run_ids))
    if out.json:
        out.emit_json(body)
        return EXIT_OK
    heads = [f"#{i}" for i in body["ids"]]
    rows = [{"name": name, **dict(zip(heads, values))} for name, values in body["metrics"].items()]
    rows += [{"name": name, **dict(zip(heads, values))} for name, values in body["parameters"].items()
             if not any(isinstance(v, (dict, list)) for v in values)]
    table(rows, [("", "name", 0), *((h, h, 3) for h in heads)])
    return EXIT_OK


def runs_report(api: Api, out: Output, args: argparse.Namespace) -> int:
    """`runs report ID -o FILE`: the report as one HTML file (opens offline, to share); without
    -o, the report's tables on the terminal (or its JSON with --json)."""
    path = f"/api/v1/runs/{args.run_id}/report"
    if args.output:
        target = Path(args.output)
        if target.is_dir():
            raise UsageError(f"{target} is a directory: give a file name, e.g. -o run_{args.run_id}.html")
        body = api.get_bytes(f"{path}.html", timeout=300.0, window=args.window)
        try:
            target.write_bytes(body)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
        if out.json:
            out.emit_json({"run_id": args.run_id, "file": str(target.resolve()), "bytes": len(body)})
        else:
            print(f"wrote {target} ({len(body) / 1e6:.1f} MB): the report of run {args.run_id}, one file that opens "
                  "offline in any current browser")
        return EXIT_OK
    report = api.get(path, window=args.window)
    if out.json:
        out.emit_json(report)
        return EXIT_OK
    print_run(report["run"])
    if report["calendar"] == "daily":
        print("\ndaily P&L")
        table(report["daily_pnl"] or [], [("date", "date", 0), ("pnl", "pnl", 2), ("return %", "return_pct", 2)])
    else:
        print("\nmonthly returns %")
        years: dict[int, dict[str, Any]] = {}
        for m in report["monthly_returns"]:
            years.setdefault(m["year"], {"year": m["year"]})[MONTHS[m["month"] - 1]] = m["return_pct"]
        for y in report["yearly_returns"]:
            years.setdefault(y["year"], {"year": y["year"]})["year %"] = y["return_pct"]
        # The year as a label ("2019"), not a number with a thousands separator.
        table(list(years.values()), [("year", lambda r: str(r["year"]), 0), *((name, name, 1) for name in MONTHS),
                                     ("year %", "year %", 1)])
    print("\nworst drawdowns")
    table(report["drawdowns"], [("start", "start", 0), ("trough", "trough", 0),
                                ("recovery", lambda d: d["recovery"] or "not recovered", 0),
                                ("depth %", "depth_pct", 2), ("days", "length_days", 1)])
    exp = report["exposure"]
    shown = "not counted (replay the run)" if report["exposure_pct"] is None else (
        f"{fmt_num(report['exposure_pct'], 1)} % of bars ({fmt_num(exp['long_pct'], 1)} % long, "
        f"{fmt_num(exp['short_pct'], 1)} % short)")
    points = report["rolling_sharpe"]["points"]
    last = points[-1][1] if points else None
    kv([("exposure", shown), (f"rolling Sharpe ({report['rolling_sharpe']['window']} days), last", last),
        ("trades", report["trades_total"]), ("days", report["days"])])
    for note in report["notes"]:
        print(f"note: {note}")
    return EXIT_OK


def runs_montecarlo(api: Api, out: Output, args: argparse.Namespace) -> int:
    """`runs montecarlo ID`: the percentiles of total return and max drawdown over resampled
    paths of the run (seeded: the same arguments give the same answer)."""
    body = {"resamples": args.resamples, "seed": args.seed, "method": args.method, "block_days": args.block_days}
    mc = api.post(f"/api/v1/runs/{args.run_id}/montecarlo", {k: v for k, v in body.items() if v is not None})
    if out.json:
        out.emit_json(mc)
        return EXIT_OK
    block = f", blocks of {mc['block_days']} days" if mc.get("block_days") else ""
    print(f"Monte Carlo of run {mc['run_id']}: {mc['resamples']} paths of {mc['path_length']} steps "
          f"({mc['method']}{block}), seed {mc['seed']}")
    rows = []
    for label, key in (("total return %", "total_return_pct"), ("max drawdown %", "max_drawdown_pct")):
        dist = mc[key]
        rows.append({"": label, **{f"p{q}": dist["percentiles"][f"p{q}"] for q in (5, 25, 50, 75, 95)},
                     "mean": dist["mean"], "run": mc["run"][key]})
    table(rows, [("", "", 0), *((f"p{q}", f"p{q}", 2) for q in (5, 25, 50, 75, 95)), ("mean", "mean", 2),
                 ("this run", "run", 2)])
    for note in mc.get("notes") or []:
        print(f"note: {note}")
    return EXIT_OK


def cmd_jobs(api: Api, out: Output, args: argparse.Namespace) -> int:
    action = args.jobs_action or "list"
    if action == "list":
        body = api.get("/api/v1/jobs", status=args.status, limit=args.limit, offset=args.offset)
        if out.json:
            out.emit_json(body)
        else:
            table(body["jobs"], JOB_COLUMNS)
            print(f"{len(body['jobs'])} of {body['total']} jobs")
        return EXIT_OK
    if action == "show":
        job = api.get(f"/api/v1/jobs/{args.job_id}")
        if out.json:
            out.emit_json(job)
        else:
            kv([(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in job.items()])
        return EXIT_OK
    if action == "cancel":
        job = api.delete(f"/api/v1/jobs/{args.job_id}")
        out.emit_json(job) if out.json else print(f"{job['job_id']}: {job['status']}")
        return EXIT_OK
    # watch
    final = follow(api, out, args.job_id)
    ok = bool(final.get("done")) and final.get("status") == "completed"
    if out.json:
        out.emit_json(final)
    else:
        print(f"{args.job_id}: {'completed' if ok else final.get('message') or final.get('status')}")
    return EXIT_OK if ok else EXIT_JOB_FAILED


def cmd_datasets(api: Api, out: Output, args: argparse.Namespace) -> int:
    action = args.datasets_action or "list"
    if action == "list":
        body = api.get("/api/v1/datasets")
        out.emit_json(body) if out.json else table(body["datasets"], DATASET_COLUMNS)
        return EXIT_OK
    if action == "delete":
        body = api.delete(f"/api/v1/datasets/{args.dataset_id}")
        n = body["versions_deleted"]
        out.emit_json(body) if out.json else print(f"deleted {args.dataset_id} ({n} version{'' if n == 1 else 's'})")
        return EXIT_OK
    # import
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    size = path.stat().st_size
    fields = {"ticker": args.ticker, "interval": args.interval, "calendar": args.calendar}
    for name in ("timezone", "format", "columns"):
        if getattr(args, name):
            fields[name] = getattr(args, name)
    bar = out.progress("upload ")
    started = time.monotonic()
    with path.open("rb") as fh:
        reader: Any = fh
        if bar is not None:
            reader = ProgressReader(fh, size, lambda done, total: bar.update(100 * done / total if total else 100,
                                                                             f"{done / 1e6:.1f} / {total / 1e6:.1f} MB"))
        try:
            # Generous deadline: the gateway parses and stores the whole file before answering.
            ds = api.upload("/api/v1/datasets", reader, path.name, fields, timeout=max(120.0, size / 1e6 * 4))
        finally:
            if bar is not None:
                bar.close()
    if out.json:
        out.emit_json(ds)
    else:
        print(f"imported {ds['ticker']} {ds['interval']}: {fmt_num(ds['bars'])} bars, {ds['start']} -> {ds['end']}, "
              f"version {ds['version']} ({ds['dataset_id']}) in {time.monotonic() - started:.1f} s")
        print(import_summary(ds))
    return EXIT_OK


def import_summary(ds: dict[str, Any]) -> str:
    """What the import read: `format: …`, each field's column, the columns dropped, the notes."""
    used = ", ".join(f"{name}={column}" for name, column in ds.get("columns", {}).items())
    lines = [f"format {ds.get('format', 'generic')}: {used}"]
    if ds.get("dropped"):
        lines.append(f"dropped: {', '.join(ds['dropped'])}")
    lines += ds.get("notes", [])
    return "\n".join(lines)


def read_definition(name: str) -> dict[str, Any]:
    """A strategy definition from a JSON file (`-`: stdin). The output of
    `hindsight --json strategies show ID` works too: its `definition` is taken."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {name}: {exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{name}: a strategy definition is a JSON object")
    if isinstance(body.get("definition"), dict) and "strategy_id" in body:
        body = body["definition"]
    return body


def print_strategy(s: dict[str, Any]) -> None:
    kv([("id", s["strategy_id"]), ("name", s.get("name")), ("created", s.get("created_at")),
        ("updated", s.get("updated_at"))])
    print("definition:")
    print(json.dumps(s.get("definition"), indent=2))


def cmd_strategies(api: Api, out: Output, args: argparse.Namespace) -> int:
    action = args.strategies_action or "list"
    if action == "list":
        body = api.get("/api/v1/strategies", limit=args.limit, offset=args.offset)
        if out.json:
            out.emit_json(body)
        else:
            table(body["strategies"], STRATEGY_COLUMNS)
            print(f"{len(body['strategies'])} of {body['total']} strategies")
        return EXIT_OK
    if action == "builtin":
        body = api.get("/api/v1/strategies/builtin")
        if out.json:
            out.emit_json(body)
        else:
            for b in body["strategies"]:
                also = ", ".join(b["aliases"])
                print(f"{b['name']}" + (f"  (also: {also})" if also else ""))
                print(f"  {b['description']}")
                for p in b["parameters"]:
                    kind = "int" if p["type"] == "integer" else "number"
                    print(f"  {p['name']:<14} {kind:<6} default {p['default']:g}  range {p['min']:g}..{p['max']:g}")
        return EXIT_OK
    if action == "show":
        s = api.get(f"/api/v1/strategies/{args.strategy_id}")
        out.emit_json(s) if out.json else print_strategy(s)
        return EXIT_OK
    if action == "delete":
        body = api.delete(f"/api/v1/strategies/{args.strategy_id}")
        out.emit_json(body) if out.json else print(f"deleted strategy {body['strategy_id']}")
        return EXIT_OK
    if action == "sweep":
        return strategies_sweep(api, out, args)
    definition = read_definition(args.file)
    if action == "create":
        s = api.post("/api/v1/strategies", definition)
        verb = "created"
    else:  # update: PUT replaces it (or creates it under that UUID: 201)
        status, s = api.put(f"/api/v1/strategies/{args.strategy_id}", definition)
        verb = "created" if status == 201 else "updated"
    if out.json:
        out.emit_json(s)
    else:
        print(f"{verb} strategy {s['strategy_id']}: {s['name']}")
    return EXIT_OK


def sweep_range(text: str) -> tuple[str, list[float]]:
    """`rsi_len=10:20:2` -> ("rsi_len", [10, 20, 2]): a parameter's range START:STOP:STEP."""
    name, sep, value = text.partition("=")
    parts = value.split(":")
    try:
        if not sep or not name or len(parts) != 3:
            raise ValueError
        numbers = [json.loads(p) for p in parts]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=START:STOP:STEP, e.g. rsi_len=10:20:2 (got {text!r})") from None
    return name.strip(), numbers


def strategies_sweep(api: Api, out: Output, args: argparse.Namespace) -> int:
    """`strategies sweep ID -p rsi_len=10:20:2 ...`: sweep a rule strategy's declared parameters,
    each combination day by day, follow the job, print the best combinations."""
    body: dict[str, Any] = {
        "parameters": dict(args.param), "start_date": args.start, "end_date": args.end,
        "min_trades": args.min_trades, "initial_capital": args.capital, "commission_percentage": args.commission,
        "slippage_percentage": args.slippage, "webhook_url": args.webhook,
    }
    got = submit_and_follow(
        api, out, f"/api/v1/strategies/{args.strategy_id}/sweep", body, no_wait=args.no_wait, what="sweep",
        result_key="best",
        describe=lambda job: f"sweep job {job['job_id']}: {job['combinations']} combinations queued",
    )
    if isinstance(got, int):
        return got
    submitted, final, started = got
    run_id = final.get("sweep_run_id") or api.get(f"/api/v1/jobs/{submitted['job_id']}").get("sweep_run_id")
    best = api.get(f"/api/v1/sweeps/{run_id}/best", limit=args.limit)
    if out.json:
        out.emit_json({"job": submitted, "result": final, "best": best})
        return EXIT_OK
    out.note(f"completed in {time.monotonic() - started:.1f} s; sweep run {run_id}")
    left_out = best.get("excluded_below_min_trades", 0)
    print(f"Best {best['returned']} of {best['total_results']} combinations by score"
          + (f" ({left_out} below {best.get('min_trades')} trades left out):" if left_out else ":"))
    names = list(dict(args.param))
    table(best["results"], [*((n, (lambda r, n=n: (r.get("parameters") or {}).get(n)), 2) for n in names),
                            *BEST_COLUMNS[2:]])
    stats = best.get("overfitting") or {}
    if stats:
        kv([("deflated Sharpe ratio", stats.get("deflated_sharpe_ratio")), ("PBO", stats.get("pbo")),
            ("reading", stats.get("reading") or stats.get("reason"))])
    return EXIT_OK


def print_days_summary(meta: dict[str, Any], user: str) -> None:
    print(f"{meta.get('strategy_name')} ({meta['strategy_id']}) for user {user}: {meta['start_date']} -> "
          f"{meta['end_date']}, {meta['total_days']} days, {meta['status']} (job {meta['job_id']})")
    o = meta.get("overall_summary") or {}
    kv([
        ("positions", o.get("total_positions")),
        ("pnl", o.get("total_pnl")),
        ("win rate %", o.get("win_rate")),
        ("winning trades", o.get("total_winning_trades")),
        ("losing trades", o.get("total_losing_trades")),
    ])


def cmd_days(api: Api, out: Output, args: argparse.Namespace) -> int:
    user = args.user
    meta_path = f"/api/v1/backtest/metadata/{user}/{args.strategy_id}"
    if args.days_action == "show":
        meta = api.get(meta_path)
        if out.json:
            out.emit_json(meta)
            return EXIT_OK
        print_days_summary(meta, user)
        print()
        table(meta.get("daily_summaries") or [], DAY_COLUMNS)
        return EXIT_OK
    # run
    if args.end < args.start:
        raise UsageError(f"--end {args.end} is before --start {args.start}")
    body: dict[str, Any] = {
        "user_id": user,
        "strategy_id": args.strategy_id,
        "start_date": args.start,
        "end_date": args.end,
        "initial_capital": args.capital,
        "slippage_percentage": args.slippage,
        "commission_percentage": args.commission,
        "webhook_url": args.webhook,
    }
    got = submit_and_follow(
        api, out, "/api/v1/backtest/run", body, no_wait=args.no_wait, what="day-by-day backtest",
        result_key="metadata", describe=lambda job: f"day-by-day job {job['job_id']} queued for user {user}",
    )
    if isinstance(got, int):
        return got
    submitted, final, started = got
    meta = api.get(meta_path)
    if out.json:
        out.emit_json({"job": submitted, "result": final, "metadata": meta})
        return EXIT_OK
    out.note(f"completed in {time.monotonic() - started:.1f} s; each day: hindsight days show {args.strategy_id}"
             + (f" --user {user}" if user != DEFAULT_DAYS_USER else ""))
    print_days_summary(meta, user)
    return EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"API base URL (env HINDSIGHT_URL, default {DEFAULT_URL})")
    common.add_argument("--api-key", default=argparse.SUPPRESS,
                        help="API key (env HINDSIGHT_API_KEY; none: standalone on loopback acts as the dev tenant)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the API's JSON on stdout and nothing else")

    p = Parser(  # its subcommands' parsers are Parsers too (argparse makes them of the parent's class)
        prog="hindsight", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hindsight from the terminal: sweeps, backtests, saved runs, jobs, datasets, rule strategies "
                    "and day-by-day backtests.",
        epilog=EXIT_CODES)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

    command("health", "check that the API answers")

    def sweep_options(s: argparse.ArgumentParser, rsi: bool = False, universe: bool = False) -> None:
        """The options of a sweep request; `rsi`: with rsi_reversion's, `universe`: with --tickers and
        --universe (the sweep command)."""
        if universe:
            s.add_argument("ticker", nargs="?", help="the ticker to sweep (or --tickers / --universe)")
            s.add_argument("--tickers", metavar="A,B,C",
                           help="sweep each of these tickers (a universe sweep, sharded per ticker)")
            s.add_argument("--universe", metavar="NAME", help="sweep every ticker of this saved universe")
        else:
            s.add_argument("ticker")
        if rsi:
            s.add_argument("--strategy", default="SMA", type=str.upper, choices=["SMA", "EMA", "MACD", "RSI"],
                           help="RSI: rsi_reversion, swept over --period, --oversold and --overbought")
        else:
            s.add_argument("--strategy", default="SMA", type=str.upper, choices=["SMA", "EMA", "MACD"])
        s.add_argument("--fast", type=int_range, metavar="MIN:MAX", help="fast period range, e.g. 10:20 (crossovers)")
        s.add_argument("--slow", type=int_range, metavar="MIN:MAX", help="slow period range, e.g. 20:30 (crossovers)")
        if rsi:
            s.add_argument("--period", type=int_range, metavar="MIN:MAX", help="RSI: the period's range, on --step")
            s.add_argument("--oversold", type=number_range, metavar="MIN:MAX",
                           help="RSI: the oversold threshold's range")
            s.add_argument("--overbought", type=number_range, metavar="MIN:MAX",
                           help="RSI: the overbought threshold's range")
            s.add_argument("--threshold-step", dest="threshold_step", type=float,
                           help="RSI: the thresholds' step (5)")
        s.add_argument("--step", type=int, default=5)
        s.add_argument("--min-trades", type=int, default=None,
                       help="combos with fewer trades are left out (10-1000; default: the API's, 50)")
        s.add_argument("--interval", choices=INTERVALS, help="default: the finest dataset")
        s.add_argument("--direction", choices=DIRECTIONS)
        s.add_argument("--fill", choices=FILLS)
        s.add_argument("--commission", type=float, help="percent per side")
        s.add_argument("--slippage", type=float, help="percent per side")
        s.add_argument("--cash", type=float)
        s.add_argument("--webhook", help="URL called when the job ends")
        s.add_argument("--no-wait", action="store_true", help="submit and print the job id")

    s = command("sweep", "run a parameter sweep, follow its progress, print the best combinations")
    sweep_options(s, rsi=True, universe=True)
    s.add_argument("--limit", type=int, default=10, help="rows of the best-results table (1-1000)")

    wf = command("walkforward", "walk-forward optimization of a sweep: follow its folds, print the folds table, "
                                "the stitched out-of-sample metrics and the walk-forward efficiency")
    sweep_options(wf)
    wf.add_argument("--train", type=int, required=True, metavar="BARS", help="bars of a training window")
    wf.add_argument("--test", type=int, required=True, metavar="BARS", help="bars of a test window")
    wf.add_argument("--step-bars", type=int, metavar="BARS", help="bars between two folds (default: --test)")
    wf.add_argument("--anchored", action="store_true", help="every training window starts at the first bar")
    wf.add_argument("--objective", choices=OBJECTIVES, default=OBJECTIVE_DEFAULT,
                    help="what the training sweep maximises")

    b = command("backtest", "run one backtest synchronously (saved as a run) and print its metrics")
    b.add_argument("ticker")
    b.add_argument("--strategy", default="sma_crossover",
                   help="sma_crossover, ema_crossover, macd_crossover, rsi_reversion, buy_and_hold")
    b.add_argument("--strategy-id", help="a saved rule strategy instead of a built-in")
    b.add_argument("--param", "-p", type=key_value, action="append", metavar="NAME=VALUE",
                   help="strategy parameter, repeatable (e.g. -p fast_period=10 -p slow_period=30)")
    b.add_argument("--start", help="YYYY-MM-DD")
    b.add_argument("--end", help="YYYY-MM-DD")
    b.add_argument("--interval", choices=INTERVALS)
    b.add_argument("--cash", type=float)
    b.add_argument("--commission", type=float, help="percent per side")
    b.add_argument("--slippage", type=float, help="percent per side")
    b.add_argument("--direction", choices=DIRECTIONS)
    b.add_argument("--fill", choices=FILLS)

    r = command("runs", "saved runs: list (default), show, replay, report, montecarlo, compare")
    r.add_argument("--ticker")
    r.add_argument("--strategy")
    r.add_argument("--kind", choices=["backtest", "sweep", "day_by_day"])
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--offset", type=int, default=0)
    rs = r.add_subparsers(dest="runs_action", metavar="ACTION")
    rs.add_parser("list", parents=[common], help="list runs, newest first")
    show = rs.add_parser("show", parents=[common], help="one run")
    show.add_argument("run_id", type=int)
    rp = rs.add_parser("replay", parents=[common], help="run a saved run again, with overrides")
    rp.add_argument("run_id", type=int)
    rp.add_argument("--param", "-p", type=key_value, action="append", metavar="NAME=VALUE")
    rp.add_argument("--start")
    rp.add_argument("--end")
    rp.add_argument("--interval", choices=INTERVALS)
    rp.add_argument("--cash", type=float)
    rp.add_argument("--commission", type=float)
    rp.add_argument("--slippage", type=float)
    rep = rs.add_parser("report", parents=[common], help="a run's report: -o FILE saves it as one HTML file "
                        "(opens offline); without -o, its tables")
    rep.add_argument("run_id", type=int)
    rep.add_argument("-o", "--output", metavar="FILE", help="write the report as one self-contained HTML file")
    rep.add_argument("--window", type=int, help="days in each rolling-Sharpe window (default: half a year)")
    mcp = rs.add_parser("montecarlo", parents=[common], help="a run's Monte Carlo: percentiles of total return and "
                        "max drawdown over resampled paths (seeded)")
    mcp.add_argument("run_id", type=int)
    mcp.add_argument("--resamples", type=int, help="paths drawn (default 1000)")
    mcp.add_argument("--seed", type=int, help="the same seed gives the same answer (default 0)")
    mcp.add_argument("--method", choices=["trades", "block_bootstrap"], help="default trades")
    mcp.add_argument("--block-days", dest="block_days", type=int, help="block_bootstrap: days in a block")
    cp = rs.add_parser("compare", parents=[common], help="runs side by side")
    cp.add_argument("run_ids", type=int, nargs="+")

    j = command("jobs", "jobs: list (default), show, cancel, watch")
    j.add_argument("--status", choices=["queued", "running", "completed", "failed", "cancelled"])
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--offset", type=int, default=0)
    js = j.add_subparsers(dest="jobs_action", metavar="ACTION")
    js.add_parser("list", parents=[common], help="list jobs, newest first")
    for name, text in (("show", "one job"), ("cancel", "cancel a queued or running job"),
                       ("watch", "follow a job's progress to its end")):
        js.add_parser(name, parents=[common], help=text).add_argument("job_id")

    d = command("datasets", "datasets: list (default), import, delete")
    ds = d.add_subparsers(dest="datasets_action", metavar="ACTION")
    ds.add_parser("list", parents=[common], help="datasets (latest version of each)")
    imp = ds.add_parser("import", parents=[common], help="import a CSV: generic (timestamp,open,high,low,close,volume), "
                        "yahoo, binance or metatrader (--format), or any header by --columns")
    imp.add_argument("file")
    imp.add_argument("--ticker", required=True)
    imp.add_argument("--interval", required=True, choices=INTERVALS)
    imp.add_argument("--calendar", default="continuous", choices=["continuous", "sessions"])
    imp.add_argument("--timezone", help="IANA zone of naive timestamps (default UTC)")
    imp.add_argument("--format", choices=FORMATS, help="the file's format (default generic: "
                     "timestamp,open,high,low,close,volume; TradingView's chart export too)")
    imp.add_argument("--columns", metavar="FIELD:COLUMN,...",
                     help="a generic file's columns by name, e.g. timestamp:Day,close:Last")
    ds.add_parser("delete", parents=[common], help="delete a dataset with all its versions").add_argument("dataset_id")

    st = command("strategies", "rule strategies (for day-by-day backtests): list (default), show, create, update, "
                               "delete, sweep (of its parameters); builtin: the built-in strategies")
    st.add_argument("--limit", type=int, default=100)
    st.add_argument("--offset", type=int, default=0)
    sts = st.add_subparsers(dest="strategies_action", metavar="ACTION")
    sts.add_parser("list", parents=[common], help="strategies, newest first")
    sts.add_parser("builtin", parents=[common], help="the built-in strategies: parameters, defaults, ranges, aliases")
    sts.add_parser("show", parents=[common], help="one strategy with its definition").add_argument("strategy_id")
    file_help = "a JSON definition (see /docs, strategies), '-' for stdin; `--json strategies show` output works too"
    sts.add_parser("create", parents=[common], help="create a strategy from a JSON file").add_argument(
        "file", help=file_help)
    up = sts.add_parser("update", parents=[common], help="replace a strategy's definition with a JSON file")
    up.add_argument("strategy_id")
    up.add_argument("file", help=file_help)
    sts.add_parser("delete", parents=[common], help="delete a strategy").add_argument("strategy_id")
    sw = sts.add_parser("sweep", parents=[common], help="sweep a strategy's declared parameters (each combination "
                        "day by day), follow it, print the best combinations")
    sw.add_argument("strategy_id")
    sw.add_argument("--param", "-p", type=sweep_range, action="append", required=True, metavar="NAME=START:STOP:STEP",
                    help="a declared parameter's range, inclusive (repeat for each parameter the strategy uses)")
    sw.add_argument("--start", type=iso_day, required=True, metavar="YYYY-MM-DD")
    sw.add_argument("--end", type=iso_day, required=True, metavar="YYYY-MM-DD")
    sw.add_argument("--min-trades", dest="min_trades", type=int, help="fewer trades: left out of best (default 10)")
    sw.add_argument("--capital", type=float, help="initial capital (default 100000)")
    sw.add_argument("--commission", type=float, help="percent")
    sw.add_argument("--slippage", type=float, help="percent")
    sw.add_argument("--webhook", help="URL called when the job ends")
    sw.add_argument("--limit", type=int, default=10, help="rows of best shown")
    sw.add_argument("--no-wait", action="store_true", help="submit and print the job id")

    dy = command("days", "day-by-day backtests of a rule strategy: run, show")
    dys = dy.add_subparsers(dest="days_action", metavar="ACTION")
    dys.required = True
    user_help = f"results partition (default {DEFAULT_DAYS_USER}, the dashboard's default)"
    dr = dys.add_parser("run", parents=[common],
                        help="run a strategy day by day, follow its progress, print the overall summary")
    dr.add_argument("strategy_id")
    dr.add_argument("--start", type=iso_day, required=True, metavar="YYYY-MM-DD")
    dr.add_argument("--end", type=iso_day, required=True, metavar="YYYY-MM-DD")
    dr.add_argument("--user", default=DEFAULT_DAYS_USER, help=user_help)
    dr.add_argument("--capital", type=float, help="initial capital (default 100000)")
    dr.add_argument("--commission", type=float, help="percent")
    dr.add_argument("--slippage", type=float, help="percent")
    dr.add_argument("--webhook", help="URL called when the job ends")
    dr.add_argument("--no-wait", action="store_true", help="submit and print the job id")
    dsh = dys.add_parser("show", parents=[common], help="the latest run's overall summary and each day")
    dsh.add_argument("strategy_id")
    dsh.add_argument("--user", default=DEFAULT_DAYS_USER, help=user_help)
    return p


COMMANDS = {
    "health": cmd_health,
    "sweep": cmd_sweep,
    "walkforward": cmd_walkforward,
    "backtest": cmd_backtest,
    "runs": cmd_runs,
    "jobs": cmd_jobs,
    "datasets": cmd_datasets,
    "strategies": cmd_strategies,
    "days": cmd_days,
}


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else list(argv)
    Parser.json_errors = "--json" in raw
    parser = build_parser()
    args = parser.parse_args(raw)  # exits 2 on a usage error
    json_mode = bool(getattr(args, "json", False))
    url = getattr(args, "url", None) or os.environ.get("HINDSIGHT_URL") or DEFAULT_URL
    key = getattr(args, "api_key", None) or os.environ.get("HINDSIGHT_API_KEY") or None
    out = Output(json_mode)
    api = Api(url, key)
    try:
        code = COMMANDS[args.command](api, out, args)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except UsageError as exc:
        print_error(json_mode, "usage", str(exc), EXIT_USAGE)
        return EXIT_USAGE
    except BrokenPipeError:
        # `hindsight --json runs | head -1`: stop quietly, as a command stopped by SIGPIPE does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except CliError as exc:
        if json_mode:
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            json.dump({"error": error or {"code": "cli_error", "message": exc.message, "details": {}},
                       "exit_code": exc.code}, sys.stderr)
            sys.stderr.write("\n")
        else:
            print(f"hindsight: {exc.message}", file=sys.stderr)
            for line in exc.details:
                print(f"  - {line}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        if json_mode:
            print_error(True, "interrupted", "interrupted", EXIT_INTERRUPTED)
        else:
            print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        api.close()


if __name__ == "__main__":
    sys.exit(main())
