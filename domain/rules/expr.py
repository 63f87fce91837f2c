"""The condition language: a tokenizer and a recursive-descent parser to an AST.

Grammar (keywords and indicator names are case-insensitive)::

    expr     := or_expr
    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | compare
    compare  := sum (OP sum)?          OP: > >= < <= == != crosses_above crosses_below
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := "-" unary | postfix
    postfix  := atom ("." NAME)?        e.g. MACD(12, 26, 9).signal, BBANDS(20, 2).upper
    atom     := NUMBER | TIME | SERIES | "time" | INDICATOR ["(" args ")"] | "(" expr ")"

- SERIES: open, high, low, close, volume. `time` is the bar's local time of day
  (its label, the bar's start) and compares only with a time literal (`09:30`).
- Indicators: SMA, EMA, RSI, MACD (+ MACD_LINE / MACD_SIGNAL / MACD_HIST),
  BBANDS (alias BOLLINGER, BB; + BB_UPPER / BB_MIDDLE / BB_LOWER), ATR, VWAP.
  A leading series argument picks the source (default close): `SMA(close, 20)`,
  `SMA(20)`, `RSI(14)`, `EMA(high, 10)`, `BBANDS(20, 2).lower`, `ATR(14)`, `VWAP`.
- The whole condition must be boolean; `and`/`or`/`not` take booleans,
  comparisons take numbers (or time with a time literal).

Every error is an `ExpressionError` carrying the 0-based character position
of the offending token, so the API can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

SERIES = ("open", "high", "low", "close", "volume")
COMPARE_OPS = (">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below")
MAX_PERIOD = 10_000
MAX_LENGTH = 2_000
# Nesting limit: open '(' / 'not' / unary '-' while parsing, and the depth of the parsed
# tree (an operator chain `1+1+...+1` is as deep as it is long). Far beyond what a person
# writes; it keeps the recursive parser and evaluator inside Python's recursion limit.
MAX_DEPTH = 50
TOO_DEEP = f"the condition nests too deeply (at most {MAX_DEPTH} levels of parentheses, 'not', '-' or operators)"


class ExpressionError(ValueError):
    """A condition that does not parse or does not type-check, at `position` (0-based)."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position
        self.text = text

    @property
    def column(self) -> int:
        return self.position + 1


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # NUMBER TIME NAME OP LPAREN RPAREN COMMA DOT END
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<time>\d{1,2}:\d{2}(?!\d))
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>>=|<=|==|!=|>|<|=|\+|-|\*|/)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos, text)
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "op" and value == "=":
                value = "=="
            tokens.append(Token(kind.upper(), value, pos))
        pos = m.end()
    tokens.append(Token("END", "", len(text)))
    return tokens


# ---------------------------------------------------------------- AST


@dataclass(eq=False)
class Node:
    pos: int
    end: int

    @property
    def kind(self) -> str:  # number, time or bool
        raise NotImplementedError


_N = TypeVar("_N", bound=Node)


@dataclass(eq=False)
class Num(Node):
    value: float

    @property
    def kind(self) -> str:
        return "number"


@dataclass(eq=False)
class TimeLit(Node):
    minutes: int
    text: str

    @property
    def kind(self) -> str:
        return "time"


@dataclass(eq=False)
class TimeOfDay(Node):
    @property
    def kind(self) -> str:
        return "time"


@dataclass(eq=False)
class Series(Node):
    name: str

    @property
    def kind(self) -> str:
        return "number"


@dataclass(eq=False)
class Indicator(Node):
    """A resolved indicator: `name` is canonical (SMA EMA RSI MACD BBANDS ATR VWAP),
    `output` the series of a multi-output one (line signal hist / upper middle lower)."""

    name: str
    source: str
    params: tuple[float, ...]
    output: str = ""

    @property
    def kind(self) -> str:
        return "number"

    @property
    def key(self) -> tuple[str, str, tuple[float, ...]]:
        return (self.name, self.source, self.params)


@dataclass(eq=False)
class Neg(Node):
    operand: Node

    @property
    def kind(self) -> str:
        return "number"


@dataclass(eq=False)
class Arith(Node):
    op: str
    left: Node
    right: Node

    @property
    def kind(self) -> str:
        return "number"


@dataclass(eq=False)
class Compare(Node):
    op: str
    left: Node
    right: Node
    # 0-based index of this comparison in the condition (diagnostics order).
    index: int = 0

    @property
    def kind(self) -> str:
        return "bool"


@dataclass(eq=False)
class BoolOp(Node):
    op: str  # and / or
    items: list[Node] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "bool"


@dataclass(eq=False)
class Not(Node):
    operand: Node

    @property
    def kind(self) -> str:
        return "bool"


# ---------------------------------------------------------------- indicators

# name -> (canonical, default output)
_INDICATOR_ALIASES = {
    "SMA": ("SMA", ""),
    "EMA": ("EMA", ""),
    "RSI": ("RSI", ""),
    "MACD": ("MACD", "line"),
    "MACD_LINE": ("MACD", "line"),
    "MACD_SIGNAL": ("MACD", "signal"),
    "MACD_HIST": ("MACD", "hist"),
    "BBANDS": ("BBANDS", "middle"),
    "BOLLINGER": ("BBANDS", "middle"),
    "BB": ("BBANDS", "middle"),
    "BB_UPPER": ("BBANDS", "upper"),
    "BB_MIDDLE": ("BBANDS", "middle"),
    "BB_LOWER": ("BBANDS", "lower"),
    "ATR": ("ATR", ""),
    "VWAP": ("VWAP", ""),
}
_OUTPUTS = {"MACD": ("line", "signal", "hist"), "BBANDS": ("upper", "middle", "lower")}
# canonical -> (parameter names, defaults (None: required), integer flags)
_PARAMS: dict[str, tuple[tuple[str, ...], tuple[float | None, ...], tuple[bool, ...]]] = {
    "SMA": (("period",), (None,), (True,)),
    "EMA": (("period",), (None,), (True,)),
    "RSI": (("period",), (14,), (True,)),
    "MACD": (("fast", "slow", "signal"), (12, 26, 9), (True, True, True)),
    "BBANDS": (("period", "stddev"), (20, 2.0), (True, False)),
    "ATR": (("period",), (14,), (True,)),
    "VWAP": ((), (), ()),
}
_TAKES_SOURCE = frozenset({"SMA", "EMA", "RSI", "BBANDS", "MACD"})
INDICATOR_NAMES = tuple(sorted(_INDICATOR_ALIASES))


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.compares: list[Compare] = []
        self.nesting = 0  # open '(' / 'not' / unary '-'
        self.depths: dict[Node, int] = {}  # depth of each operator node built so far

    def _nest(self) -> None:
        """Called on the token that opens a recursion ('(', 'not', '-')."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(TOO_DEEP)

    def _built(self, node: _N, op_pos: int, *children: Node) -> _N:
        """`node` (an operator over `children`) if it is not too deep; the error points at its operator."""
        depth = 1 + max((self.depths.get(c, 0) for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ExpressionError(TOO_DEEP, op_pos, self.text)
        self.depths[node] = depth
        return node

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, pos: int | None = None) -> ExpressionError:
        return ExpressionError(message, self.tok.pos if pos is None else pos, self.text)

    def advance(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "NAME" and self.tok.text.lower() == word

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            found = "the end of the condition" if self.tok.kind == "END" else repr(self.tok.text)
            raise self.error(f"expected {what}, found {found}")
        return self.advance()

    # grammar

    def parse(self) -> Node:
        if not self.text.strip():
            raise ExpressionError("empty condition", 0, self.text)
        node = self.or_expr()
        if self.tok.kind != "END":
            raise self.error(f"unexpected {self.tok.text!r}")
        return node

    def or_expr(self) -> Node:
        first = self.and_expr()
        items = [first]
        first_op = -1
        while self.is_word("or"):
            op_pos = self.advance().pos
            first_op = op_pos if first_op < 0 else first_op
            items.append(self.and_expr())
            self._bool_operands(items, "or", op_pos)
        return items[0] if len(items) == 1 else self._built(BoolOp(first.pos, items[-1].end, "or", items), first_op, *items)

    def and_expr(self) -> Node:
        first = self.not_expr()
        items = [first]
        first_op = -1
        while self.is_word("and"):
            op_pos = self.advance().pos
            first_op = op_pos if first_op < 0 else first_op
            items.append(self.not_expr())
            self._bool_operands(items, "and", op_pos)
        return items[0] if len(items) == 1 else self._built(BoolOp(first.pos, items[-1].end, "and", items), first_op, *items)

    def _bool_operands(self, items: list[Node], op: str, op_pos: int) -> None:
        for item in items[-2:]:
            if item.kind != "bool":
                raise ExpressionError(f"'{op}' needs conditions on both sides, not a {item.kind}", item.pos, self.text)

    def not_expr(self) -> Node:
        if self.is_word("not"):
            self._nest()
            start = self.advance().pos
            operand = self.not_expr()
            self.nesting -= 1
            if operand.kind != "bool":
                raise ExpressionError(f"'not' needs a condition, not a {operand.kind}", operand.pos, self.text)
            return self._built(Not(start, operand.end, operand), start, operand)
        return self.compare()

    def compare(self) -> Node:
        left = self.sum()
        op_tok = self.tok
        op = None
        if op_tok.kind == "OP" and op_tok.text in COMPARE_OPS:
            op = op_tok.text
        elif op_tok.kind == "NAME" and op_tok.text.lower() in ("crosses_above", "crosses_below"):
            op = op_tok.text.lower()
        if op is None:
            return left
        self.advance()
        right = self.sum()
        if (self.tok.kind == "OP" and self.tok.text in COMPARE_OPS) or (
            self.tok.kind == "NAME" and self.tok.text.lower() in ("crosses_above", "crosses_below")
        ):
            raise self.error("comparisons cannot be chained; join them with 'and'")
        for side in (left, right):
            if side.kind == "bool":
                raise ExpressionError(f"'{op}' compares values, not conditions", side.pos, self.text)
        if (left.kind == "time") != (right.kind == "time"):
            bad = right if left.kind == "time" else left
            raise ExpressionError("time compares only with a time of day such as 09:30", bad.pos, self.text)
        if left.kind == "time" and op in ("crosses_above", "crosses_below"):
            raise ExpressionError(f"'{op}' does not apply to time", op_tok.pos, self.text)
        if isinstance(left, (Num, TimeLit)) and isinstance(right, (Num, TimeLit)):
            raise ExpressionError("a comparison needs a series or indicator on one side", left.pos, self.text)
        node = self._built(Compare(left.pos, right.end, op, left, right, index=len(self.compares)), op_tok.pos, left, right)
        self.compares.append(node)
        return node

    def sum(self) -> Node:
        left = self.product()
        while self.tok.kind == "OP" and self.tok.text in ("+", "-"):
            op_tok = self.advance()
            right = self.product()
            left = self._arith(op_tok, left, right)
        return left

    def product(self) -> Node:
        left = self.unary()
        while self.tok.kind == "OP" and self.tok.text in ("*", "/"):
            op_tok = self.advance()
            right = self.unary()
            left = self._arith(op_tok, left, right)
        return left

    def _arith(self, op_tok: Token, left: Node, right: Node) -> Node:
        op = op_tok.text
        for side in (left, right):
            if side.kind != "number":
                raise ExpressionError(f"'{op}' needs numbers, not a {side.kind}", side.pos, self.text)
        return self._built(Arith(left.pos, right.end, op, left, right), op_tok.pos, left, right)

    def unary(self) -> Node:
        if self.tok.kind == "OP" and self.tok.text == "-":
            self._nest()
            start = self.advance().pos
            operand = self.unary()
            self.nesting -= 1
            if operand.kind != "number":
                raise ExpressionError("'-' needs a number", operand.pos, self.text)
            if isinstance(operand, Num):
                return Num(start, operand.end, -operand.value)
            return self._built(Neg(start, operand.end, operand), start, operand)
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        if self.tok.kind == "DOT":
            dot = self.advance()
            name_tok = self.expect("NAME", "an output name after '.'")
            if not isinstance(node, Indicator) or node.name not in _OUTPUTS:
                raise ExpressionError("only MACD and BBANDS have outputs to pick with '.'", dot.pos, self.text)
            out = name_tok.text.lower()
            if out not in _OUTPUTS[node.name]:
                raise ExpressionError(
                    f"{node.name} has no output {name_tok.text!r} (outputs: {', '.join(_OUTPUTS[node.name])})",
                    name_tok.pos,
                    self.text,
                )
            node.output = out
            node.end = name_tok.pos + len(name_tok.text)
        return node

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "NUMBER":
            self.advance()
            return Num(t.pos, t.pos + len(t.text), float(t.text))
        if t.kind == "TIME":
            self.advance()
            hh, mm = (int(p) for p in t.text.split(":"))
            if hh > 23 or mm > 59:
                raise ExpressionError(f"{t.text!r} is not a time of day (HH:MM, 00:00-23:59)", t.pos, self.text)
            return TimeLit(t.pos, t.pos + len(t.text), hh * 60 + mm, f"{hh:02d}:{mm:02d}")
        if t.kind == "LPAREN":
            self._nest()
            self.advance()
            node = self.or_expr()
            close = self.expect("RPAREN", "')'")
            self.nesting -= 1
            node.pos, node.end = t.pos, close.pos + 1
            return node
        if t.kind == "NAME":
            return self.name()
        if t.kind == "END":
            raise self.error("the condition ends too early: expected a value")
        raise self.error(f"unexpected {t.text!r}")

    def name(self) -> Node:
        t = self.advance()
        low = t.text.lower()
        end = t.pos + len(t.text)
        if low in ("and", "or", "not", "crosses_above", "crosses_below"):
            raise ExpressionError(f"expected a value, found {t.text!r}", t.pos, self.text)
        if low in SERIES:
            return Series(t.pos, end, low)
        if low == "time":
            return TimeOfDay(t.pos, end)
        upper = t.text.upper()
        if upper not in _INDICATOR_ALIASES:
            raise ExpressionError(
                f"unknown indicator or series {t.text!r} (indicators: SMA, EMA, RSI, MACD, BBANDS, ATR, VWAP; "
                f"series: {', '.join(SERIES)}, time)",
                t.pos,
                self.text,
            )
        canonical, output = _INDICATOR_ALIASES[upper]
        args: list[Series | Num] = []
        arg_pos: list[int] = []
        if self.tok.kind == "LPAREN":
            self.advance()
            if self.tok.kind != "RPAREN":
                while True:
                    arg_pos.append(self.tok.pos)
                    args.append(self._argument())
                    if self.tok.kind == "COMMA":
                        self.advance()
                        continue
                    break
            close = self.expect("RPAREN", "',' or ')'")
            end = close.pos + 1
        return self._indicator(t, canonical, output, args, arg_pos, end)

    def _argument(self) -> Series | Num:
        t = self.tok
        if t.kind == "NAME" and t.text.lower() in SERIES:
            self.advance()
            return Series(t.pos, t.pos + len(t.text), t.text.lower())
        neg = False
        if t.kind == "OP" and t.text == "-":
            neg = True
            self.advance()
        if self.tok.kind != "NUMBER":
            raise self.error("indicator arguments are a source series (open, high, low, close, volume) or numbers")
        num = self.advance()
        value = -float(num.text) if neg else float(num.text)
        return Num(t.pos, num.pos + len(num.text), value)

    def _indicator(self, t: Token, name: str, output: str, args: list[Series | Num], arg_pos: list[int], end: int) -> Indicator:
        source = "close"
        if args and isinstance(args[0], Series):
            if name not in _TAKES_SOURCE:
                raise ExpressionError(f"{name} takes no source series", arg_pos[0], self.text)
            source = args[0].name
            args, arg_pos = args[1:], arg_pos[1:]
        names, defaults, integers = _PARAMS[name]
        if len(args) > len(names):
            raise ExpressionError(
                f"{t.text} takes at most {len(names)} number(s) ({', '.join(names) or 'none'})",
                arg_pos[len(names)],
                self.text,
            )
        params: list[float] = []
        for i, pname in enumerate(names):
            if i < len(args):
                a = args[i]
                if isinstance(a, Series):
                    raise ExpressionError(f"{t.text}: {pname} must be a number", arg_pos[i], self.text)
                value = a.value
                pos = arg_pos[i]
            else:
                if defaults[i] is None:
                    raise ExpressionError(f"{t.text} needs a {pname}, e.g. {t.text}(close, 20)", end - 1, self.text)
                value = float(defaults[i])  # type: ignore[arg-type]
                pos = end - 1
            if integers[i]:
                if value != int(value) or not 1 <= value <= MAX_PERIOD:
                    raise ExpressionError(f"{t.text}: {pname} must be a whole number from 1 to {MAX_PERIOD}", pos, self.text)
                value = float(int(value))
            elif not 0 < value <= 100:
                raise ExpressionError(f"{t.text}: {pname} must be above 0 (and at most 100)", pos, self.text)
            params.append(value)
        if name == "MACD" and params[0] >= params[1]:
            raise ExpressionError(f"{t.text}: the fast period must be below the slow one", arg_pos[0] if arg_pos else t.pos, self.text)
        return Indicator(t.pos, end, name, source, tuple(params), output)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text, AST and comparisons (in text order)."""

    text: str
    root: Node
    compares: tuple[Compare, ...]

    def indicators(self) -> list[Indicator]:
        out: list[Indicator] = []

        def walk(n: Node) -> None:
            if isinstance(n, Indicator):
                out.append(n)
            for child in _children(n):
                walk(child)

        walk(self.root)
        return out


def _children(n: Node) -> list[Node]:
    if isinstance(n, (Neg, Not)):
        return [n.operand]
    if isinstance(n, (Arith, Compare)):
        return [n.left, n.right]
    if isinstance(n, BoolOp):
        return list(n.items)
    return []


def parse_condition(text: str) -> Condition:
    """Parse and type-check a condition; raises ExpressionError with the position."""
    if not isinstance(text, str):
        raise ExpressionError("a condition must be text", 0, "")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"a condition is at most {MAX_LENGTH} characters", MAX_LENGTH, text)
    p = _Parser(text)
    root = p.parse()
    if root.kind != "bool":
        raise ExpressionError(
            "a condition must compare something (e.g. RSI(14) > 70), not be a bare value", root.pos, text
        )
    return Condition(text, root, tuple(p.compares))


def source_text(text: str, node: Node) -> str:
    """The text of `node` as written in the condition."""
    return text[node.pos : node.end].strip()


def lookback(ind: Indicator) -> int:
    """Bars an indicator needs before its first value (for warm-up checks)."""
    p = ind.params
    if ind.name in ("SMA", "EMA", "BBANDS"):
        return int(p[0]) - 1
    if ind.name in ("RSI", "ATR"):
        return int(p[0])
    if ind.name == "MACD":
        return int(p[1]) + int(p[2]) - 2
    return 0

