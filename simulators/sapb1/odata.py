"""OData query options: `$filter` parser/evaluator, `$select`, `$orderby`, `$top`/`$skip` (contract §7).

`$filter` supports `eq ne gt ge lt le and or not`, parentheses and the functions `startswith`,
`endswith`, `contains`, `substringof` — nothing else, as on the real Service Layer. A filter is
compiled once into a Python predicate over stored records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulators.sapb1.entities import Prop, parse_date
from simulators.sapb1.errors import SLError, bad_request, invalid_property

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
Resolver = Callable[[str], Prop]  # property name -> Prop, raises -1000 when unknown

UNSUPPORTED_OPTIONS = ("$search", "$format", "$levels", "$apply", "$crossjoin")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<datetime>datetime'[^']*')
      | (?P<string>'(?:[^']|'')*')
      | (?P<date>\d{4}-\d{2}-\d{2}(?:T[\d:.]+Z?)?)(?![\w.])
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)(?![\w.])
      | (?P<name>[A-Za-z_][\w/.]*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"startswith", "endswith", "contains", "substringof"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad_request(f"Invalid $filter expression near '{text[pos:pos + 20].strip()}'")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Operand:
    """A property reference or a literal, evaluated against a record."""

    def __init__(self, prop: Prop | None = None, literal: Any = None, is_literal_string: bool = False) -> None:
        self.prop = prop
        self.literal = literal
        self.is_literal_string = is_literal_string


class _Parser:
    def __init__(self, text: str, resolve: Resolver, case_insensitive: bool) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.resolve = resolve
        self.ci = case_insensitive
        self.text = text

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise bad_request("Invalid $filter expression: unexpected end")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        kind, text = self.take()
        if text != value:
            raise bad_request(f"Invalid $filter expression: expected '{value}' near '{text}'")

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise bad_request(f"Invalid $filter expression near '{self.peek()[1]}'")  # type: ignore[index]
        return predicate

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.peek() == ("name", "or"):
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while self.peek() == ("name", "and"):
            self.take()
            right = self.parse_not()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def parse_not(self) -> Predicate:
        if self.peek() == ("name", "not"):
            self.take()
            inner = self.parse_not()
            return lambda r: not inner(r)
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if token and token[0] == "name" and token[1] in _FUNCTIONS:
            call = self.parse_function()
            nxt = self.peek()
            if nxt and nxt[0] == "name" and nxt[1] in _COMPARE:
                op = self.take()[1]
                literal = self.parse_operand()
                want = bool(literal.literal) if literal.prop is None else True
                if op == "eq":
                    return lambda r: call(r) == want
                if op == "ne":
                    return lambda r: call(r) != want
                raise bad_request(f"Invalid $filter expression: '{op}' after a function")
            return call
        left = self.parse_operand()
        kind, op = self.take()
        if op not in _COMPARE:
            raise bad_request(f"Invalid $filter expression: unknown operator '{op}'")
        right = self.parse_operand()
        return self.comparison(left, op, right)

    def parse_function(self) -> Predicate:
        name = self.take()[1]
        self.expect("(")
        first = self.parse_operand()
        self.expect(",")
        second = self.parse_operand()
        self.expect(")")
        if name == "substringof":
            first, second = second, first
        if first.prop is None or second.prop is not None or not isinstance(second.literal, str):
            raise bad_request(f"Invalid $filter expression: {name} needs a property and a string")
        prop_name = first.prop.name
        needle = second.literal.lower() if self.ci else second.literal
        ci = self.ci

        def value_of(r: Record) -> str | None:
            value = r.get(prop_name)
            if not isinstance(value, str):
                return None
            return value.lower() if ci else value

        if name == "startswith":
            return lambda r: (v := value_of(r)) is not None and v.startswith(needle)
        if name == "endswith":
            return lambda r: (v := value_of(r)) is not None and v.endswith(needle)
        return lambda r: (v := value_of(r)) is not None and needle in v

    def parse_operand(self) -> _Operand:
        kind, text = self.take()
        if kind == "string":
            return _Operand(literal=text[1:-1].replace("''", "'"), is_literal_string=True)
        if kind == "datetime":
            return _Operand(literal=parse_date(text[9:-1]) or text[9:-1])
        if kind == "date":
            return _Operand(literal=parse_date(text))
        if kind == "number":
            raw = text.rstrip("mMdDfFlL")
            return _Operand(literal=float(raw) if any(c in raw for c in ".eE") else int(raw))
        if kind == "name":
            if text in ("true", "false"):
                return _Operand(literal=text == "true")
            if text == "null":
                return _Operand(literal=None)
            if text in _FUNCTIONS or text in _COMPARE or text in ("and", "or", "not"):
                raise bad_request(f"Invalid $filter expression near '{text}'")
            if "/" in text:
                head = text.split("/", 1)[0]
                raise bad_request(f"Property '{head}' cannot be navigated in $filter")
            return _Operand(prop=self.resolve(text))
        raise bad_request(f"Invalid $filter expression near '{text}'")

    def normalise(self, prop: Prop, literal: Any) -> Any:
        """Bring a literal to the stored form of `prop` (enum values, dates, numbers)."""
        if literal is None:
            return None
        if prop.kind == "enum" and isinstance(literal, str) and prop.enum:
            return prop.enum.by_value.get(literal, literal)
        if prop.kind == "date" and isinstance(literal, str):
            return parse_date(literal) or literal
        if prop.kind in ("int", "float") and isinstance(literal, str):
            try:
                return float(literal)
            except ValueError:
                raise invalid_property(prop.name, "filter") from None
        return literal

    def comparison(self, left: _Operand, op: str, right: _Operand) -> Predicate:
        if left.prop is None and right.prop is not None:
            left, right = right, left
            op = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(op, op)
        if left.prop is None:
            a, b = left.literal, right.literal
            result = _compare(a, op, b)
            return lambda r: result
        name = left.prop.name
        ci = self.ci and left.prop.kind == "str"
        if right.prop is not None:
            other = right.prop.name
            return lambda r: _compare(_fold(r.get(name), ci), op, _fold(r.get(other), ci))
        value = _fold(self.normalise(left.prop, right.literal), ci)
        if op == "eq":
            if ci:
                return lambda r: _fold(r.get(name), True) == value
            return lambda r: r.get(name) == value
        return lambda r: _compare(_fold(r.get(name), ci), op, value)


def _fold(value: Any, ci: bool) -> Any:
    return value.lower() if ci and isinstance(value, str) else value


def _compare(a: Any, op: str, b: Any) -> bool:
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return a > b
        if op == "ge":
            return a >= b
        if op == "lt":
            return a < b
        return a <= b
    except TypeError:
        return False


def compile_filter(text: str, resolve: Resolver, case_insensitive: bool = False) -> Predicate:
    return _Parser(text, resolve, case_insensitive).parse()


def parse_select(text: str, resolve: Resolver) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise bad_request("Invalid $select option")
    for name in names:
        if name != "*":
            resolve(name)
    return names


def parse_orderby(text: str, resolve: Resolver) -> list[tuple[str, bool]]:
    """[(property, descending)]"""
    order: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise bad_request(f"Invalid $orderby option '{part.strip()}'")
        resolve(words[0])
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


def sort_records(records: list[Record], order: list[tuple[str, bool]]) -> list[Record]:
    for name, descending in reversed(order):
        records.sort(key=lambda r, n=name: _sort_key(r.get(n)), reverse=descending)
    return records


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def parse_count(text: str, option: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise bad_request(f"Invalid value '{text}' for query option '{option}'")
    return int(text)


def check_options(query: dict[str, str]) -> None:
    for name in query:
        if name in UNSUPPORTED_OPTIONS:
            raise SLError(400, -1000, f"Query option '{name}' is not supported")
