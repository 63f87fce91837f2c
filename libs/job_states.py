"""Job states: the `hindsight.jobs.v1.JobState` values and their names in the API and the database.

A state's name is its enum value's name without the `JOB_STATE_` prefix, in lower case
(`JOB_STATE_QUEUED` is "queued"); `JOB_STATE_UNSPECIFIED` has none.
"""

from __future__ import annotations

from hindsight.jobs.v1 import jobs_pb2

_PREFIX = "JOB_STATE_"

STATE_NAMES: dict[int, str] = {
    value.number: value.name.removeprefix(_PREFIX).lower()
    for value in jobs_pb2.JobState.DESCRIPTOR.values
    if value.number != jobs_pb2.JOB_STATE_UNSPECIFIED
}
STATE_BY_NAME: dict[str, int] = {name: state for state, name in STATE_NAMES.items()}
