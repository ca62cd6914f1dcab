"""Replaces personal data and secrets in text with typed placeholders.

Covered: e-mail addresses, phone numbers (international ``+CC`` forms and the
North American ``(555) 123-4567`` forms), payment card numbers (13 to 19
digits that pass the Luhn check), IPv4 and IPv6 addresses, bearer tokens,
JWTs, well-known API key shapes and ``key=value`` secrets. Patterns are chosen
so that ordinary numbers, dates, times and version strings stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"

_BEARER = r"(?i:(\bbearer\s+))[A-Za-z0-9._~+/=-]{8,}"
_JWT = r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"
_KEY_SHAPES = (
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\bdapi[0-9a-f]{32}(?:-\d+)?\b",
)
_KEY_VALUE = (
    r"(?i:(\b(?:api[_-]?key|apikey|access[_-]?token|secret|password|passwd|token)"
    r"\s*[:=]\s*))['\"]?[^\s'\"]{6,}['\"]?"
)

_IPV4_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![\w.]){_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}(?![\w.]*\w)"
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?<![\w:])(?:(?:{_HEX}:){{7}}{_HEX}"
    rf"|(?:{_HEX}:){{1,6}}:(?:{_HEX}(?::{_HEX}){{0,5}})?"
    rf"|::(?:{_HEX}(?::{_HEX}){{0,6}}))(?![\w:])"
)

_PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)

# Card numbers start with 2 to 6; starting there also spares epoch timestamps.
_CARD = r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?![\d-])"


@dataclass(frozen=True)
class Rule:
    """One kind of data: a pattern, its placeholder, and an optional final check.

    When the pattern has a group, the group's text (say ``password=``) is kept
    in front of the placeholder.
    """

    placeholder: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] | None = None
    # A cheap test that must hold for any match to exist; most chat text
    # fails every one, so most patterns never run.
    gate: Callable[[Facts], bool] | None = None


def luhn_valid(text: str) -> bool:
    """True when the digits of ``text`` pass the Luhn checksum."""
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _ipv6_has_digit(text: str) -> bool:
    """Rejects word pairs like ``abc::def`` that only look like IPv6 addresses."""
    return any(c.isdigit() for c in text) and text.count(":") >= 2


def _phone_has_enough_digits(text: str) -> bool:
    return 7 <= sum(c.isdigit() for c in text) <= 15


_KEY_WORDS = ("key", "token", "secret", "passw")
_KEY_PREFIXES = (
    "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "AKIA",
    "AIza", "dapi",
)  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What the gates look at, computed once per text with C-speed str methods."""

    text: str
    lowered: str
    digits: int

    @classmethod
    def of(cls, text: str) -> Facts:
        digits = sum(text.count(d) for d in "0123456789")
        return cls(text, text.lower(), digits)


def _has_any(words: tuple[str, ...], text: str) -> bool:
    return any(word in text for word in words)


def default_rules() -> list[Rule]:
    """Secrets first (they may contain digits), then the rest, cards before phones."""
    return [
        Rule("[TOKEN]", re.compile(_BEARER), gate=lambda f: "bearer" in f.lowered),
        Rule("[TOKEN]", re.compile(_JWT), gate=lambda f: "eyJ" in f.text),
        Rule(
            "[SECRET]",
            re.compile(_KEY_VALUE),
            gate=lambda f: _has_any(_KEY_WORDS, f.lowered),
        ),
        Rule(
            "[SECRET]",
            re.compile("|".join(_KEY_SHAPES)),
            gate=lambda f: _has_any(_KEY_PREFIXES, f.text),
        ),
        Rule("[EMAIL]", re.compile(_EMAIL), gate=lambda f: "@" in f.text),
        Rule(
            "[IP]",
            re.compile(_IPV4),
            gate=lambda f: f.digits >= 4 and "." in f.text,
        ),
        Rule(
            "[IP]",
            re.compile(_IPV6),
            _ipv6_has_digit,
            gate=lambda f: f.digits >= 1 and ":" in f.text,
        ),
        Rule("[CARD]", re.compile(_CARD), luhn_valid, gate=lambda f: f.digits >= 13),
        Rule(
            "[PHONE]",
            re.compile(_PHONE),
            _phone_has_enough_digits,
            gate=lambda f: f.digits >= 7,
        ),
    ]


class Redactor:
    """Applies the default rules plus any ``(placeholder name, regex)`` extras."""

    def __init__(self, extra_patterns: Iterable[tuple[str, str]] = ()) -> None:
        self.rules = default_rules()
        for name, pattern in extra_patterns:
            self.rules.append(Rule(f"[{name.upper()}]", re.compile(pattern)))

    def redact(self, text: str) -> str:
        """``text`` with every match replaced by its placeholder."""
        facts = Facts.of(text)
        for rule in self.rules:
            if rule.gate is not None and not rule.gate(facts):
                continue
            replaced = rule.pattern.sub(_replacer(rule), facts.text)
            if replaced != facts.text:
                facts = Facts.of(replaced)
        return facts.text


def _replacer(rule: Rule) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if rule.accept is not None and not rule.accept(found):
            return found
        kept = match.group(1) if match.re.groups else None
        return (kept or "") + rule.placeholder

    return replace
