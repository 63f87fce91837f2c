"""Models of saved runs (issue 4) (share `Base` with services.results.models)."""

from __future__ import annotations
