"""`hindsight`: the command-line client of the Hindsight HTTP API (see cli/main.py)."""
