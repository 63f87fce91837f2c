"""Request bodies of the HTTP API: one pydantic model per body, one module per area.

Field rules come from `domain` (intervals, tickers, sweep limits, strategies, the rule
language); `fields` has the shared field types. Bodies are read by
`services.gateway.body.BodyReader`, which keeps the seeds' leniencies (form or JSON,
JSON under any Content-Type, `"[10, 20]"` lists, numbers as text) in one place.
"""
