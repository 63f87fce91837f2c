"""Response shapes of the HTTP API: one module per area, each with the pydantic models
that describe its JSON (the OpenAPI response schemas) and the functions that build it
from results' protobuf messages. The JSON field names are the public API (the seeds'
own and ours beside them): never rename one.

A response model declares exactly the fields its presenter writes, in the order written
(`ResponseModel` forbids others, so a field added to a presenter and not to its model fails
every test of that endpoint instead of vanishing from the JSON); a part whose fields vary
(a pipeline job's metrics) says so with `extra="allow"`.
"""
