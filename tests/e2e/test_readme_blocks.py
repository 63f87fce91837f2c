"""The rule of the README's shell blocks (tests/e2e/readme_blocks.py) says no to what it should:
a wrong field, a missing or extra member, a number off in its last shown decimal, a line more,
a command that fails. No servers: seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.readme_blocks import Block, Ran, fenced, mismatch, run_in_one_shell, shell_blocks

MARKDOWN = '''# Title

```
make run
```

## First

```bash
A=1
echo "{\\"a\\": $A, \\"b\\": [1, 2, 3]}"
# → {"a": 1,
#    ...}
echo done
```

## Second

```text
not run
```

```bash
echo $A
# → 1
```
'''


def test_blocks_and_steps() -> None:
    assert [(b.lang, b.section) for b in fenced(MARKDOWN)] == [
        ("", ""), ("bash", "## First"), ("text", "## Second"), ("bash", "## Second")]
    first, second = shell_blocks(MARKDOWN)
    assert first.line == 10 and MARKDOWN.splitlines()[first.line - 1] == "A=1"
    steps = first.steps()
    assert [s.code for s in steps] == ['A=1\necho "{\\"a\\": $A, \\"b\\": [1, 2, 3]}"', "echo done"]
    assert steps[0].shown == ('{"a": 1, ...}',) and steps[1].shown == ()
    assert (steps[0].line, steps[1].line) == (10, 14)
    assert second.steps()[0].shown == ("1",)


@pytest.mark.parametrize("shown, ok", [
    ('{"a": 1, ...}', True),
    ('{..., "b": [1, 2, 3]}', True),
    ('{"a": 1, "b": [1, ...]}', True),
    ('{"a": 1, "b": [...]}', True),
    ('{"a": 1, "b": [1, 2, 3]}', True),
    ('{"a": 1}', False),  # no `...`: exactly these members
    ('{"a": 1, "c": 1, ...}', False),
    ('{"a": 2, ...}', False),
    ('{"a": 1, "b": [1, 2], ...}', False),  # no `...` in the list: exactly these elements
    ('{"b": [2, ...], ...}', False),
    ('{"a": "1", ...}', False),
])
def test_json_shown(shown: str, ok: bool) -> None:
    assert (mismatch('{"a": 1, "b": [1, 2, 3]}', (shown,)) is None) is ok


def test_json_numbers_strings_and_documents() -> None:
    answer = '{"x": 11.348970720370865, "n": 40, "f": 10000.0, "id": "sweep_20261205_demodaily_8d1842", "t": true}'
    assert mismatch(answer, ('{"x": 11.35, "n": 40, "f": 10000, "id": "sweep_…_demodaily_…", "t": true}',)) is None
    assert mismatch(answer, ('{"x": 11.349, ...}',)) is None
    assert mismatch(answer, ('{"x": 11.34, ...}',)) is not None  # off in its last decimal
    assert mismatch(answer, ('{"x": 11, ...}',)) is not None  # an integer shown is the number itself
    assert mismatch(answer, ('{"id": "run_…", ...}',)) is not None
    assert mismatch(answer, ('{"t": 1, ...}',)) is not None
    assert mismatch('{"a": 1}{"a": 2}', ('{"a": 1}', '{"a": 2}')) is None
    assert mismatch('{"a": 1}{"a": 2}', ('{"a": 1}',)) is not None
    assert mismatch("not json", ('{"a": 1}',)) is not None


def test_text_shown() -> None:
    out = "id: 1\ndata: {\"percent\": 0}\n\nid: 2\ndata: {\"done\": true}   \n\n"
    assert mismatch(out, ("id: 1", "data: {…}", "…", 'data: {"done": true}')) is None
    assert mismatch(out, ("id: …", "…")) is None
    assert mismatch(out, ("…",)) is None
    assert mismatch(out, ("id: 1", "data: {…}", "", "id: 2", "data: {…}")) is None  # `# →` alone: an empty line
    assert mismatch(out, ("id: 1", "data: {…}")) is not None  # lines more than shown
    assert mismatch(out, ("id: 2", "…")) is not None
    assert mismatch("", ()) is None
    assert mismatch("printed\n", ()) == "it prints, but the README shows nothing"
    assert mismatch("", ("something",)) is not None


def test_one_shell_carries_state_and_stops_at_a_failure(tmp_path: Path) -> None:
    block = Block("bash", "## S", 1, "")
    codes = ["X=5; cd sub", "echo $X; pwd", "false; echo never", "echo after"]
    (tmp_path / "sub").mkdir()
    steps = [Ran(block, block.steps("echo")[0], code) for code in codes]
    ran = run_in_one_shell(steps, tmp_path, {"PATH": "/usr/bin:/bin"}, timeout=30)
    assert [r.code for r in ran] == codes[:3]
    assert ran[1].stdout == f"5\n{tmp_path / 'sub'}\n" and ran[1].failed is None
    assert ran[2].failed == 1 and ran[2].stdout == ""
    assert all(r.seconds >= 0 for r in ran)
