"""Models of webhook/email deliveries and tenant notification settings (issue 5) (share `Base` with services.results.models)."""

from __future__ import annotations
