"""The Monte Carlo of a run (`POST /runs/{id}/montecarlo`): its JSON shape, and the
simulation fed from the run's series as results keeps them (`RunsService.GetRunSeries`,
the report's source). The definitions are domain.montecarlo's, shown in /docs from its
docstring."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from hindsight.runs.v1 import runs_pb2
from pydantic import Field

from domain import montecarlo as mc
from services.gateway.presenters.common import ResponseModel

_DEFINITIONS_AT = "Definitions\n-----------\n"
# The definitions and limits as /docs shows them: domain.montecarlo's own docstring.
MONTECARLO_DEFINITIONS_DOC = (mc.__doc__ or "").split(_DEFINITIONS_AT, 1)[-1].strip()


class MonteCarloPercentiles(ResponseModel):
    p5: float | None
    p25: float | None
    p50: float | None = Field(description="the median")
    p75: float | None
    p95: float | None


class MonteCarloHistogram(ResponseModel):
    edges: list[float] = Field(description="41 bin edges, lowest to highest value")
    counts: list[int] = Field(description="paths in each of the 40 bins")


class MonteCarloDistribution(ResponseModel):
    """One figure over every resampled path, in percent."""

    percentiles: MonteCarloPercentiles = Field(description="numpy.percentile's default (linear) method")
    mean: float | None
    min: float | None
    max: float | None
    histogram: MonteCarloHistogram


class MonteCarloRunPath(ResponseModel):
    """The same figures on the run's own sequence (its trades in order, or its day-end equity)."""

    total_return_pct: float | None
    max_drawdown_pct: float | None


class MonteCarloLinks(ResponseModel):
    run: str
    report: str


class MonteCarlo(ResponseModel):
    """A run's Monte Carlo: computed on request, not stored; the same request gives the same answer."""

    run_id: int
    method: Literal["trades", "block_bootstrap"]
    resamples: int
    seed: int
    block_days: int | None = Field(description="block_bootstrap: the block length used; null for trades")
    path_length: int = Field(description="steps of each path: the run's trades, or its days")
    total_return_pct: MonteCarloDistribution
    max_drawdown_pct: MonteCarloDistribution = Field(description="<= 0; trades: from trade to trade")
    run: MonteCarloRunPath
    notes: list[str]
    links: MonteCarloLinks


def _notes(resp: runs_pb2.GetRunSeriesResponse, method: str) -> list[str]:
    run = resp.run
    notes = []
    if method == "block_bootstrap" and resp.day_ends_source == "curve" and run.kind != "day_by_day" \
            and run.bars > len(resp.points):
        notes.append("This run was saved before its day-end equity was kept: the daily returns use the last stored "
                     "point of each day. Replay the run for exact figures.")
    return notes


def montecarlo_view(resp: runs_pb2.GetRunSeriesResponse, method: str, resamples: int, seed: int,
                    block_days: int | None, prefix: str = "") -> dict[str, Any]:
    """The Monte Carlo of a run from its series (CPU work: call it off the event loop).
    Raises domain.montecarlo.MonteCarloInvalid."""
    run = resp.run
    equity = np.fromiter((d.equity for d in resp.day_ends), dtype=np.float64, count=len(resp.day_ends))
    figures = mc.simulate(method=method, cash=run.cash, trade_returns_pct=[t.return_pct for t in resp.trades],
                          day_equity=equity, resamples=resamples, seed=seed, block_days=block_days)
    base = f"{prefix}/runs/{run.run_id}"
    return {"run_id": run.run_id, **figures, "notes": _notes(resp, method),
            "links": {"run": base, "report": f"{base}/report"}}
