"""Hindsight's domain: what a backtest means, independent of how it is served.

- `market`: bar intervals, ticker syntax, calendars and annualisation;
- `sessions`: trading days and local wall-clock time;
- `backtest_spec`: the built-in strategies and their parameters;
- `sweep`: the sweep grid and the limits of a sweep request;
- `rules`: the rule language (`expr`: parser and AST) and rule strategies (`strategy`).

Plain Python, NumPy and pandas. Nothing here imports gRPC, HTTP, SQL, the broker or
`services.*` (import-linter holds it so); every service and the CLI import it.
"""
