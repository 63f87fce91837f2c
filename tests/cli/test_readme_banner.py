"""Issue 16: the README's first screen shows the start banner `make run` prints, word for word
(the data directory aside), so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from libs.settings import Settings
from services.standalone import start_banner

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_banner_is_the_banner(tmp_path):
    text = README.read_text()
    block = re.search(r"prints:\n\n```\n(.*?)```", text, re.S)
    assert block, "the README's banner block"
    settings = Settings(hindsight_mode="standalone", hindsight_data_dir=tmp_path, hindsight_host="127.0.0.1",
                        hindsight_require_auth=False)
    printed = start_banner(settings, "http://127.0.0.1:8000").strip("\n")
    shown = block.group(1).strip("\n").replace("/path/to/.hindsight", str(tmp_path.resolve()))
    assert shown == printed
