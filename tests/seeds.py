"""Where the seed documents (the public contract) are on this machine.

They live beside the repository (`../shared/seeds`) in a working checkout and
at /work/shared/seeds on the machines this project runs on; HINDSIGHT_SEEDS_DIR
overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seeds_dir() -> Path | None:
    candidates = [os.environ.get("HINDSIGHT_SEEDS_DIR"), ROOT.parent / "shared" / "seeds", "/work/shared/seeds"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def seed_file(prefix: str) -> Path | None:
    """The seed document whose name starts with `prefix` (e.g. "003"), if at hand."""
    d = seeds_dir()
    if d is None:
        return None
    found = sorted(d.glob(f"{prefix}_*.txt"))
    return found[0] if found else None
