"""RunsService on Postgres and SQLite: saving with per-tenant numbers, listing (filters,
paging boundaries, total), reading, comparing, exports, tenant isolation, and the run
every completed sweep leaves behind."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from hindsight.engine.v1 import engine_pb2
from hindsight.results.v1 import results_pb2
from hindsight.runs.v1 import runs_pb2, runs_pb2_grpc

from libs.grpc_util import channel

from .helpers import daily_csv, import_requests, result_row, submit_request

NS_DAY = 86_400 * 10**9


def _metrics(**over) -> engine_pb2.Metrics:
    values = {"total_return_pct": 12.5, "sharpe_ratio": 1.25, "max_drawdown_pct": -7.5, "pnl": 1250.0,
              "final_equity": 11250.0, "total_trades": 4, "winning_trades": 3, "losing_trades": 1,
              "avg_trade_duration": "5.0 days", "score": 1.15625}
    values.update(over)
    return engine_pb2.Metrics(**{k: v for k, v in values.items() if v is not None})


def save_request(tenant: str, ticker: str = "BTC-USD", strategy: str = "sma_crossover", **over) -> runs_pb2.SaveRunRequest:
    spec = engine_pb2.BacktestSpec(ticker=ticker, strategy=strategy, parameters_json='{"fast_period":5,"slow_period":20}',
                                   start_date="2021-01-01", end_date="2021-12-31", interval="1d", cash=10_000.0,
                                   direction="long", fill="next_open")
    run = runs_pb2.Run(
        kind="backtest", ticker=ticker, strategy=strategy, parameters_json=spec.parameters_json,
        start_date=spec.start_date, end_date=spec.end_date, interval="1d", cash=10_000.0, direction="long",
        fill="next_open", metrics=over.pop("metrics", _metrics()), bars=365, replay_spec=spec,
        dataset_id="ds_x", dataset_version=2, execution_time_seconds=0.01,
    )
    for k, v in over.items():
        setattr(run, k, v)
    trades = [engine_pb2.Trade(side="long", entry_ts=i * NS_DAY, exit_ts=(i + 3) * NS_DAY, entry_price=100.0 + i,
                               exit_price=101.0 + i, units=1.5, entry_value=10_000.0, exit_value=10_010.0, pnl=10.0,
                               return_pct=0.1, commission=0.25, exit_reason="signal") for i in range(4)]
    equity = [engine_pb2.EquityPoint(ts=i * NS_DAY, equity=10_000.0 + i / 3, buy_and_hold=10_000.0 - i / 7)
              for i in range(365)]
    return runs_pb2.SaveRunRequest(tenant_id=tenant, run=run, trades=trades, equity=equity)


@pytest.fixture
def runs_stub(backend):
    running, _ = backend
    chan = channel(f"127.0.0.1:{running.handle.port}")
    yield runs_pb2_grpc.RunsServiceStub(chan)


async def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


@pytest.mark.asyncio
async def test_save_read_list_compare_export_and_isolation(backend, runs_stub):
    _, db = backend
    a, _ = db.tenant()
    b, _ = db.tenant()
    stub = runs_stub
    r1 = (await stub.SaveRun(save_request(a))).run
    r2 = (await stub.SaveRun(save_request(a, ticker="eth-usd", strategy="EMA_CROSSOVER",
                                          metrics=_metrics(sharpe_ratio=None, profit_factor=float("inf"))))).run
    r3 = (await stub.SaveRun(save_request(a, replay_of=1))).run
    other = (await stub.SaveRun(save_request(b))).run
    # numbered per tenant
    assert (r1.run_id, r2.run_id, r3.run_id, other.run_id) == (1, 2, 3, 1)
    assert r1.created_at.endswith("Z") and r1.has_series
    assert (r2.ticker, r2.strategy) == ("ETH-USD", "ema_crossover")

    got = (await stub.GetRun(runs_pb2.GetRunRequest(tenant_id=a, run_id=2))).run
    assert not got.metrics.HasField("sharpe_ratio") and not got.metrics.HasField("profit_factor")  # null, not NaN/inf
    assert got.metrics.total_return_pct == 12.5 and got.metrics.losing_trades == 1 and got.has_series
    assert json.loads(got.parameters_json) == {"fast_period": 5, "slow_period": 20}
    assert got.replay_spec.start_date == "2021-01-01" and got.replay_spec.cash == 10_000.0
    assert (got.dataset_id, got.dataset_version, got.bars) == ("ds_x", 2, 365)
    assert (await stub.GetRun(runs_pb2.GetRunRequest(tenant_id=a, run_id=3))).run.replay_of == 1

    # another tenant's numbers are not yours
    for call in (
        stub.GetRun(runs_pb2.GetRunRequest(tenant_id=b, run_id=2)),
        stub.GetRunTrades(runs_pb2.GetRunTradesRequest(tenant_id=b, run_id=3)),
        stub.GetRunEquity(runs_pb2.GetRunEquityRequest(tenant_id=b, run_id=2)),
        stub.CompareRuns(runs_pb2.CompareRunsRequest(tenant_id=b, run_ids=[1, 2])),
        stub.SaveRun(save_request(b, replay_of=3)),
        stub.GetRun(runs_pb2.GetRunRequest(tenant_id="nobody", run_id=1)),
    ):
        assert await _code(call) == grpc.StatusCode.NOT_FOUND
    assert (await stub.GetRun(runs_pb2.GetRunRequest(tenant_id=b, run_id=1))).run.ticker == "BTC-USD"

    async def page(**kw):
        resp = await stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=a, **kw))
        return [r.run_id for r in resp.runs], resp.total

    assert await page() == ([3, 2, 1], 3)  # newest first, default limit 100
    assert await page(limit=2) == ([3, 2], 3)
    assert await page(limit=2, offset=2) == ([1], 3)
    assert await page(limit=1, offset=3) == ([], 3)  # past the end
    assert await page(offset=1000) == ([], 3)
    assert await page(limit=0) == ([], 3)  # count only
    assert await page(limit=1000) == ([3, 2, 1], 3)
    assert await page(ticker="btc-usd") == ([3, 1], 2)
    assert await page(strategy="EMA_crossover") == ([2], 1)
    assert await page(ticker="ETH-USD", strategy="sma_crossover") == ([], 0)
    assert await page(kind="sweep") == ([], 0)
    listed = (await stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=a, limit=1))).runs[0]
    assert not listed.HasField("replay_spec")  # listings stay light
    for bad in ({"limit": 1001}, {"limit": -1}, {"offset": -1}, {"kind": "other"}):
        assert await _code(stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=a, **bad))) == grpc.StatusCode.INVALID_ARGUMENT
    assert (await stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=b))).total == 1

    cmp = await stub.CompareRuns(runs_pb2.CompareRunsRequest(tenant_id=a, run_ids=[3, 1]))
    assert [r.run_id for r in cmp.runs] == [3, 1] and [e.run_id for e in cmp.equity] == [3, 1]
    assert len(cmp.equity[0].points) == 365 and cmp.equity[0].points[5].equity == 10_000.0 + 5 / 3
    err = None
    try:
        await stub.CompareRuns(runs_pb2.CompareRunsRequest(tenant_id=a, run_ids=[1, 99, 98]))
    except grpc.aio.AioRpcError as exc:
        err = exc
    assert err is not None and err.code() == grpc.StatusCode.NOT_FOUND and "99, 98" in err.details()
    for bad in ([], [0], list(range(1, 30))):
        assert await _code(stub.CompareRuns(runs_pb2.CompareRunsRequest(tenant_id=a, run_ids=bad))) == \
            grpc.StatusCode.INVALID_ARGUMENT

    sent = save_request(a)
    trades = (await stub.GetRunTrades(runs_pb2.GetRunTradesRequest(tenant_id=a, run_id=1))).trades
    assert list(trades) == list(sent.trades)  # exact round trip
    points = (await stub.GetRunEquity(runs_pb2.GetRunEquityRequest(tenant_id=a, run_id=1))).points
    assert list(points) == list(sent.equity)
    assert await _code(stub.GetRun(runs_pb2.GetRunRequest(tenant_id=a, run_id=0))) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_save_run_refuses_bad_runs(backend, runs_stub):
    _, db = backend
    a, _ = db.tenant()
    for over, code in (
        ({"kind": "other"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"ticker": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"parameters_json": "{nope"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"cash": -5.0}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"replay_of": 7}, grpc.StatusCode.NOT_FOUND),
    ):
        req = save_request(a)
        for k, v in over.items():
            setattr(req.run, k, v)
        assert await _code(runs_stub.SaveRun(req)) == code, over
    assert await _code(runs_stub.SaveRun(save_request("no-such-tenant"))) == grpc.StatusCode.NOT_FOUND
    # nothing half-saved: the next run is number 1
    assert (await runs_stub.SaveRun(save_request(a))).run.run_id == 1


@pytest.mark.asyncio
async def test_concurrent_saves_get_distinct_numbers(pg, pg_db):
    tenant, _ = pg_db.tenant()
    async with channel(f"127.0.0.1:{pg.handle.port}") as chan:
        stub = runs_pb2_grpc.RunsServiceStub(chan)
        saved = await asyncio.gather(*(stub.SaveRun(save_request(tenant)) for _ in range(24)))
    assert sorted(r.run.run_id for r in saved) == list(range(1, 25))


async def _import(stub, tenant: str, ticker: str, n: int):
    async def reqs():
        for r in import_requests(tenant, ticker, daily_csv(n), chunk=4096):
            yield r

    await stub.ImportDataset(reqs())
    return await stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker=ticker, interval="1d"))


@pytest.mark.asyncio
async def test_a_completed_sweep_is_saved_as_a_run(backend, runs_stub):
    running, db = backend
    stub = running.stub
    tenant, _ = db.tenant()
    v1 = await _import(stub, tenant, "SWP-USD", 40)
    await _import(stub, tenant, "SWP-USD", 60)  # a newer version: the run must name the one the sweep used

    req = submit_request(tenant, ticker="SWP-USD")
    req.sweep.min_trades = 50
    req.sweep.direction = "both"
    req.sweep.commission_pct = 0.1
    req.sweep.initial_cash = 5000
    job = (await stub.SubmitJob(req)).job
    await stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    rows = [result_row(10, 20, 1.0, 60), result_row(10, 25, 2.5, 80), result_row(15, 20, 3.0, 10),
            result_row(15, 25, None, 90)]
    rows[1].win_rate_pct = 62.5  # 50 of 80
    done = await stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, results=rows, execution_time_seconds=0.5, bars=40, dataset_version_id=v1.version_id))

    listing = await runs_stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=tenant, kind="sweep"))
    assert listing.total == 1
    run = (await runs_stub.GetRun(runs_pb2.GetRunRequest(tenant_id=tenant, run_id=listing.runs[0].run_id))).run
    assert (run.kind, run.ticker, run.strategy, run.job_id) == ("sweep", "SWP-USD", "sma_crossover", job.job_id)
    # its best combination: the best score among those with >= min_trades trades (3.0 has 10 trades)
    assert json.loads(run.parameters_json) == {"fast_period": 10, "slow_period": 25}
    assert run.metrics.score == 2.5 and run.metrics.sharpe_ratio == 1.5 and run.metrics.total_trades == 80
    assert run.metrics.winning_trades == 50 and not run.metrics.HasField("losing_trades")
    assert run.metrics.pnl == pytest.approx(5000 * 0.125) and run.metrics.final_equity == pytest.approx(5625.0)
    s = run.sweep
    assert (s.sweep_run_id, s.job_id, s.strategy_type, s.combinations, s.min_trades, s.has_best) == (
        done.sweep_run_id, job.job_id, "SMA", 4, 50, True)
    assert (s.fast_min, s.fast_max, s.slow_min, s.slow_max, s.step) == (10, 20, 20, 30, 5)
    assert (run.start_date, run.end_date, run.interval, run.dataset_version, run.bars) == (
        "2020-01-01", "2020-02-09", "1d", 1, 40)
    assert not run.has_series
    spec = run.replay_spec
    assert (spec.strategy, spec.start_date, spec.end_date, spec.interval, spec.cash, spec.direction,
            spec.commission_pct) == ("sma_crossover", "2020-01-01", "2020-02-09", "1d", 5000.0, "both", 0.1)
    assert json.loads(spec.parameters_json) == {"fast_period": 10, "slow_period": 25}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runs_stub.GetRunTrades(runs_pb2.GetRunTradesRequest(tenant_id=tenant, run_id=run.run_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "replay" in err.value.details()

    # A sweep where nothing qualifies keeps its link but has no best and cannot be replayed;
    # an engine that does not send the version: the dataset's latest one.
    job2 = (await stub.SubmitJob(submit_request(tenant, ticker="SWP-USD"))).job
    await stub.StartJob(results_pb2.StartJobRequest(job_id=job2.job_id))
    await stub.CompleteSweep(results_pb2.CompleteSweepRequest(job_id=job2.job_id, results=[result_row(10, 20, 1.0, 3)]))
    latest = (await runs_stub.ListRuns(runs_pb2.ListRunsRequest(tenant_id=tenant, kind="sweep", limit=1))).runs[0]
    full = (await runs_stub.GetRun(runs_pb2.GetRunRequest(tenant_id=tenant, run_id=latest.run_id))).run
    assert latest.run_id == run.run_id + 1
    assert not full.sweep.has_best and not full.HasField("replay_spec") and full.parameters_json == "{}"
    assert not full.metrics.HasField("sharpe_ratio") and full.metrics.total_trades == 0
    assert (full.end_date, full.dataset_version) == ("2020-02-29", 2)
