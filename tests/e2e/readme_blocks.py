"""How the README's shell blocks run and what their `# → ` lines promise: the one rule that
tests/e2e/test_readme.py holds the whole README to.

- A ```bash block is a shell block. The blocks run in README order in one bash, under
  `set -euo pipefail`, so what one block sets (variables, the directory, the activated
  virtualenv) is there for the next, as in a newcomer's terminal, and every command must exit 0
  (curl is written with `-f`, so an HTTP error fails too). Other blocks (```text, ```python,
  untagged ones such as the layout) are not run.
- A block is cut into steps at its `# → ` lines: each group of them shows what the commands
  since the group before print on stdout. A step that prints something must show it.
- What a group shows is JSON when its first line starts with `{` or `[`: one document per
  `# → ` line (`#    ` lines continue it). An object with `...` among its members may have more
  members; one without has exactly the members shown. A list ending in `...` may have more
  elements. In a string, `…` stands for any text; a number written with d decimals matches the
  answer rounded to d decimals.
- Otherwise it is text, line for line (trailing spaces and trailing empty lines aside): `…` in a
  line stands for any text, a line of `…` alone for any number of lines, `# →` alone for an
  empty line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import Any

SHOWN = "# → "
CONTINUED = "#    "
ANY = "…"
MORE = "\x00more"  # what `...` becomes in a shown JSON document: "members or elements not shown"
_MORE_JSON = '"\\u0000more"'
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_MARK = re.compile(r"\x1e(\d+|end) ([\d.]+)\n")


@dataclass(frozen=True)
class Step:
    code: str
    shown: tuple[str, ...]
    line: int  # README line of its first line


@dataclass(frozen=True)
class Block:
    lang: str
    section: str  # the `## ` heading it sits under
    line: int  # README line of its first line
    body: str

    def steps(self, body: str | None = None) -> list[Step]:
        """The block (or `body`, the block with substitutions made) cut at its `# → ` groups."""
        out: list[Step] = []
        code: list[str] = []
        shown: list[str] = []
        first = self.line
        for n, line in enumerate((self.body if body is None else body).splitlines()):
            if line.startswith(SHOWN) or line == SHOWN.rstrip():
                shown.append(line[len(SHOWN):])
            elif line.startswith(CONTINUED) and shown:
                shown[-1] += " " + line[1:].strip()
            else:
                if shown:
                    out.append(Step("\n".join(code), tuple(shown), first))
                    code, shown, first = [], [], self.line + n
                code.append(line)
        if code or shown:
            out.append(Step("\n".join(code), tuple(shown), first))
        return out


def fenced(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks = []
    for m in _FENCE.finditer(text):
        headings = re.findall(r"^## .*$", text[:m.start()], re.M)
        blocks.append(Block(m.group(1), headings[-1] if headings else "", text.count("\n", 0, m.start(2)) + 1,
                            m.group(2)))
    return blocks


def shell_blocks(text: str) -> list[Block]:
    return [b for b in fenced(text) if b.lang == "bash"]


# ---- what a step shows


def mismatch(stdout: str, shown: tuple[str, ...]) -> str | None:
    """Why `stdout` is not what `shown` says (None: it is)."""
    if not shown:
        return None if not stdout.strip() else "it prints, but the README shows nothing"
    if shown[0].startswith(("{", "[")):
        try:
            answers = _documents(stdout)
        except json.JSONDecodeError as e:
            return f"not JSON: {e}"
        if len(answers) != len(shown):
            return f"{len(answers)} JSON document(s) printed, {len(shown)} shown"
        for answer, text in zip(answers, shown):
            try:
                expected = json.loads(_mark_more(text), parse_float=Decimal)
            except json.JSONDecodeError as e:
                return f"the README's JSON does not parse: {e}: {text}"
            if not _matches(answer, expected):
                return f"the answer is not what the README shows: {text}"
        return None
    lines = [line.rstrip() for line in stdout.rstrip("\n").split("\n")] if stdout.strip("\n") else []
    return None if _lines_match(tuple(lines), shown) else "the lines printed are not the lines shown"


def _documents(text: str) -> list[Any]:
    decoder, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return docs
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)


def _mark_more(text: str) -> str:
    """`...` as an object member or list element becomes the MORE marker; strings are left alone."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if text.startswith("...", i) and stack:
            out.append(f"{_MORE_JSON}: null" if stack[-1] == "{" else _MORE_JSON)
            i += 3
            continue
        if c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
        out.append(c)
        i += 1
    return "".join(out)


def _matches(actual: Any, shown: Any) -> bool:
    if isinstance(shown, dict):
        keys = [k for k in shown if k != MORE]
        if not isinstance(actual, dict) or (MORE not in shown and set(actual) != set(keys)):
            return False
        return all(k in actual and _matches(actual[k], shown[k]) for k in keys)
    if isinstance(shown, list):
        more = bool(shown) and shown[-1] == MORE
        items = shown[:-1] if more else shown
        if not isinstance(actual, list) or len(actual) < len(items) or (not more and len(actual) != len(items)):
            return False
        return all(_matches(a, s) for a, s in zip(actual, items))
    if isinstance(shown, str):
        return isinstance(actual, str) and _text_matches(actual, shown)
    if isinstance(shown, bool) or shown is None:
        return actual is shown
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    if isinstance(shown, Decimal):  # written with d decimals: the answer rounded to d decimals
        exponent = Decimal(1).scaleb(shown.as_tuple().exponent)  # type: ignore[arg-type]
        return Decimal(repr(actual)).quantize(exponent, rounding=ROUND_HALF_EVEN) == shown
    return actual == shown


def _text_matches(text: str, pattern: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split(ANY)), text, re.S) is not None


def _lines_match(lines: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    @cache
    def match(i: int, j: int) -> bool:
        if j == len(patterns):
            return i == len(lines)
        if patterns[j] == ANY:
            return match(i, j + 1) or (i < len(lines) and match(i + 1, j))
        return i < len(lines) and _text_matches(lines[i], patterns[j]) and match(i + 1, j + 1)

    return match(0, 0)


# ---- running them


@dataclass
class Ran:
    """One step's run: what it printed, and its exit status if it was the one that stopped the shell."""

    block: Block
    step: Step
    code: str  # as run (substitutions made)
    stdout: str = ""
    stderr: str = ""
    failed: int | None = None
    seconds: float = 0.0

    def where(self) -> str:
        return f"README.md line {self.step.line} ({self.block.section})"

    def report(self, why: str) -> str:
        return (f"{self.where()}: {why}\n--- ran\n{self.code}\n--- shown\n" + "\n".join(self.step.shown)
                + f"\n--- stdout\n{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-4000:]}")


def run_in_one_shell(steps: list[Ran], cwd: Path, env: dict[str, str], timeout: float) -> list[Ran]:
    """Run every step in order in one bash; returns the steps that ran (the last may have failed)."""
    script = ["set -euo pipefail"]
    for i, ran in enumerate(steps):  # a mark before each step: its number and the time
        script += [f"printf '\\036{i} %s\\n' $EPOCHREALTIME; printf '\\036{i} 0\\n' >&2", ran.code]
    script.append("printf '\\036end %s\\n' $EPOCHREALTIME")
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(timed out after {timeout:.0f} s)"
    outs, errs = _split(out), _split(err)
    ran = [steps[int(k)] for k in outs if k != "end"]
    for i, r in enumerate(ran):
        (r.stdout, started), r.stderr = outs[str(i)], errs.get(str(i), ("", 0.0))[0]
        r.seconds = outs.get(str(i + 1), outs.get("end", ("", started)))[1] - started
    if "end" not in outs and ran:
        ran[-1].failed = proc.returncode if proc.returncode else -1
    return ran


def _split(text: str) -> dict[str, tuple[str, float]]:
    """What was printed after each mark, and the mark's time."""
    parts = _MARK.split(text)
    return {key: (printed, float(at)) for key, at, printed in zip(parts[1::3], parts[2::3], parts[3::3])}
