"""Just enough of the Dockerfile and .dockerignore grammars to check the files offline."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper-cased: FROM, RUN, COPY, ...
    args: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line where it starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN/HEALTHCHECK CMD, or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", text, re.DOTALL)
            if not m:
                return None
            text = m.group(1)
        text = text.strip()
        if text.startswith("["):
            return json.loads(text)
        return None

    def flags_and_paths(self) -> tuple[dict[str, str], list[str]]:
        """COPY/ADD: (--flags, [sources..., destination])."""
        flags, rest = {}, []
        for tok in self.args.split():
            if tok.startswith("--") and not rest:
                k, _, v = tok[2:].partition("=")
                flags[k] = v
            else:
                rest.append(tok)
        return flags, rest

    def env_pairs(self) -> dict[str, str]:
        """ENV/ARG as {name: value}; a bare ARG has the value ''."""
        text = self.args.strip()
        if self.keyword == "ENV" and "=" not in text.split(None, 1)[0]:
            name, _, value = text.partition(" ")  # legacy `ENV NAME value`
            return {name: value.strip()}
        pairs = {}
        for tok in re.findall(r'(?:[^\s"\']+|"[^"]*"|\'[^\']*\')+', text):
            name, _, value = tok.partition("=")
            pairs[name] = value.strip("\"'")
        return pairs


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages in order; each FROM opens one. Comments and blank lines are dropped,
    continuation lines (trailing backslash) joined, as Docker does."""
    stages: list[Stage] = []
    buf, start = "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        instr = Instruction(keyword.upper(), args.strip(), start)
        buf = ""
        if instr.keyword == "FROM":
            parts = instr.args.split()
            parts = [p for p in parts if not p.startswith("--")]
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], alias))
        elif not stages:
            if instr.keyword != "ARG":
                raise ValueError(f"{path}:{n}: {instr.keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instr)
    assert not buf, f"{path}: ends inside a continued line"
    return stages


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(c)
            i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    """.dockerignore semantics: patterns are relative to the context root; a pattern
    matching a parent directory matches everything under it; `!` re-includes; the
    last matching line wins."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern]] = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pat = line[1:].strip() if include else line
            pat = pat.strip("/")
            self.rules.append((include, _pattern_regex(pat)))

    def excluded(self, rel_path: str) -> bool:
        parts = rel_path.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for include, rx in self.rules:
            if any(rx.match(c) for c in candidates):
                verdict = not include
        return verdict
