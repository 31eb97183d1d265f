"""A small evaluator for the subset of the Cloud Logging query language (and of Cloud
Monitoring's filter syntax) that terraform/modules/monitoring/filters.tf uses, so a test
can run every alert filter on the log entries the handlers really write.

Supported (anything else raises ``FilterError``, so a filter that grows past the subset
fails loudly instead of being misread):

- comparisons ``PATH OP VALUE`` with OP ``=``, ``!=``, ``:`` (has: substring), ``<``,
  ``<=``, ``>``, ``>=``; ``severity`` compares by LogSeverity order (DEBUG < INFO <
  NOTICE < WARNING < ERROR < CRITICAL < ALERT < EMERGENCY);
- PATH: dotted field names (``resource.labels.service_name``, ``jsonPayload.action``);
  Monitoring's singular ``resource.label.x`` / ``metric.label.x`` mean the ``labels`` maps;
- VALUE: a quoted string, a bare word, a parenthesised value expression
  ``("a" OR "b")`` (the comparison holds for any of them), or Monitoring's
  ``starts_with("prefix")``;
- ``AND``, ``OR``, ``NOT`` and juxtaposition (newlines or spaces: AND). As the Logging query
  language documents, OR binds tighter than AND (``a OR b AND c`` is ``(a OR b) AND c``).
A missing field never equals anything (and is never "not equal" either).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT",
              "EMERGENCY"]  # fmt: skip
TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|>=|<=|=|:|<|>)|(?P<paren>[()])'
    r"|(?P<word>[A-Za-z0-9_.\-/%*]+))"
)


class FilterError(ValueError):
    """The filter uses syntax outside the supported subset."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"cannot read the filter at {text[pos:pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value))
    return tokens


Predicate = Callable[[dict], bool]
Matcher = Callable[[Any], bool]


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        self.i += 1
        return token

    def _is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    # AND (explicit or by juxtaposition) is the loosest operator.
    def conjunction(self, stop: str | None = None) -> Predicate:
        parts = [self.disjunction()]
        while (token := self.peek()) is not None and (token.kind, token.text) != ("paren", stop):
            if self._is_word("AND"):
                self.take()
            parts.append(self.disjunction())
        return lambda entry: all(p(entry) for p in parts)

    def disjunction(self) -> Predicate:
        parts = [self.negation()]
        while self._is_word("OR"):
            self.take()
            parts.append(self.negation())
        return lambda entry: any(p(entry) for p in parts)

    def negation(self) -> Predicate:
        if self._is_word("NOT"):
            self.take()
            inner = self.negation()
            return lambda entry: not inner(entry)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.conjunction(stop=")")
            self._expect(")")
            return inner
        if token.kind != "word":
            raise FilterError(f"expected a field, got {token.text!r}")
        op = self.take()
        if op.kind != "op":
            raise FilterError(f"expected a comparison after {token.text}, got {op.text!r}")
        matcher = self.value(op.text, token.text == "severity")
        path = token.text
        return lambda entry: _compare(entry, path, matcher)

    def _expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise FilterError(f"expected {text!r}, got {token.text!r}")

    def value(self, op: str, severity: bool) -> Matcher:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            options = [self.value(op, severity)]
            while not (self.peek() and self.peek().text == ")"):
                if self._is_word("OR"):
                    self.take()
                    options.append(self.value(op, severity))
                else:
                    raise FilterError("only OR is supported inside a value expression")
            self._expect(")")
            return lambda actual: any(m(actual) for m in options)
        if token.kind == "word" and token.text == "starts_with":
            self._expect("(")
            prefix = self.take()
            self._expect(")")
            if op != "=":
                raise FilterError("starts_with() only with =")
            return lambda actual: isinstance(actual, str) and actual.startswith(prefix.text)
        if token.kind not in ("string", "word"):
            raise FilterError(f"expected a value, got {token.text!r}")
        return _matcher(op, token.text, severity)


def _rank(value: Any) -> int:
    if str(value) not in SEVERITIES:
        raise FilterError(f"unknown severity {value!r}")
    return SEVERITIES.index(str(value))


def _matcher(op: str, expected: str, severity: bool) -> Matcher:
    if severity:
        order = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
                 "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
                 ">=": lambda a, b: a >= b}  # fmt: skip
        if op not in order:
            raise FilterError(f"severity does not support {op}")
        return lambda actual: order[op](_rank(actual), _rank(expected))
    if op == "=":
        return lambda actual: _text(actual) == expected
    if op == "!=":
        return lambda actual: _text(actual) != expected
    if op == ":":
        return lambda actual: expected.lower() in _text(actual).lower()
    raise FilterError(f"{op} is only supported on severity")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _field(entry: dict, path: str) -> tuple[bool, Any]:
    path = re.sub(r"^(resource|metric)\.label\.", r"\1.labels.", path)
    node: Any = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _compare(entry: dict, path: str, matcher: Matcher) -> bool:
    found, value = _field(entry, path)
    return found and matcher(value)


def compile_filter(text: str) -> Predicate:
    parser = _Parser(tokenize(text))
    predicate = parser.conjunction()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek().text!r}")
    return predicate


def matches(text: str, entry: dict) -> bool:
    """Whether the filter ``text`` selects ``entry`` (a LogEntry or time series as a dict)."""
    return compile_filter(text)(entry)
