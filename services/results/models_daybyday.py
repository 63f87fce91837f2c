"""Models of strategies and day-by-day backtests (issue 3) (share `Base` with services.results.models)."""

from __future__ import annotations
