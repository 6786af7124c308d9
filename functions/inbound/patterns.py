"""Patterns from operators and brand plugins, run so that no input can make them slow.

Every pattern that is not a fixed literal of our own code (INBOUND_CAMERA_PATTERNS, brand plugins' camera-id,
serial and status patterns) goes through this module. It uses the `regex` module, whose matching functions
take a ``timeout``: a search that runs longer is stopped and answers *no match*, never an exception, so a
catastrophic pattern (``(a+)+$``) or a pattern that is quadratic on some input costs at most ``timeout_s``.

    from functions.inbound.patterns import safe_compile

    rx = safe_compile(r"\\bSPYPOINT\\b.*?\\bfrom\\s+(?P<camera>\\S+)", regex.IGNORECASE)
    m = rx.search(email.subject, defects=email.defects)   # regex.Match | None
    if rx.timed_out: ...                                   # the last call on this object timed out

API (small on purpose):
- ``safe_compile(pattern, flags=0, *, timeout_s=DEFAULT_TIMEOUT_S, name=None) -> SafePattern``; raises
  ``ValueError`` for an invalid or over-long pattern (so a bad setting fails at start).
- ``SafePattern.search(text, defects=None) -> regex.Match | None`` and
  ``SafePattern.finditer(text, defects=None, limit=100) -> list[regex.Match]``: on timeout they return
  None / the matches found so far, set ``timed_out``, count it in ``timeouts``, log a warning and append a
  defect ``"pattern_timeout: <name> after <t> s on <n> characters"`` to ``defects`` when given (the
  inbound email's defect list, recorded on the email). After MAX_TIMEOUTS_PER_EMAIL timeouts in that list,
  further searches answer no match at once (defect ``pattern_budget_spent``, once): an email's patterns
  cost at most about MAX_TIMEOUTS_PER_EMAIL x timeout_s.
- ``search(pattern, text, timeout_s=DEFAULT_TIMEOUT_S, defects=None)``: the same, compiling (cached) on
  the way.

Inputs are cut before patterns run (parse_sendgrid.py: MAX_SUBJECT_CHARS / MAX_BODY_CHARS), so a linear
pattern finishes in microseconds; the timeout is the guard for the others (docs/inbound.md, "Bounds").
Flags are the `regex` module's (``regex.IGNORECASE`` etc., equal to the ``re`` ones); patterns are compiled
in version 0 (``re``-compatible) unless they say ``(?V1)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache

import regex

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 0.02  # per search; a linear pattern on a cut subject/body needs well under 1 ms
MAX_PATTERN_CHARS = 2000
PATTERN_TIMEOUT = "pattern_timeout"  # the defect code
# Per email: after this many timeouts (counted in the ``defects`` list the callers pass, the email's), the
# remaining searches on that email answer no match at once, so that one email costs at most about
# MAX_TIMEOUTS_PER_EMAIL x timeout_s in patterns however many brand patterns there are.
MAX_TIMEOUTS_PER_EMAIL = 5
PATTERN_BUDGET = "pattern_budget_spent"  # the defect recorded (once) when that happens


@dataclass(eq=False)
class SafePattern:
    """A compiled pattern whose searches stop after ``timeout_s`` (then: no match, and a defect)."""

    pattern: str
    compiled: regex.Pattern
    timeout_s: float = DEFAULT_TIMEOUT_S
    name: str | None = None
    timed_out: bool = False  # the last call timed out
    timeouts: int = field(default=0)  # calls that timed out, in all

    @property
    def groupindex(self):
        return self.compiled.groupindex

    def _timeout(self, text: str, started: float, defects: list[str] | None) -> None:
        self.timed_out = True
        self.timeouts += 1
        label = self.name or self.pattern[:60]
        elapsed = time.perf_counter() - started
        detail = f"{PATTERN_TIMEOUT}: {label} after {elapsed:.3f} s on {len(text)} characters"
        log.warning("pattern timed out: %s", detail, extra={"pattern": label, "chars": len(text)})
        if defects is not None:
            defects.append(detail)

    def _budget_spent(self, defects: list[str] | None) -> bool:
        if defects is None:
            return False
        spent = sum(1 for d in defects if d.startswith(PATTERN_TIMEOUT)) >= MAX_TIMEOUTS_PER_EMAIL
        if spent:
            self.timed_out = True
            if not any(d.startswith(PATTERN_BUDGET) for d in defects):
                defects.append(
                    f"{PATTERN_BUDGET}: {MAX_TIMEOUTS_PER_EMAIL} pattern timeouts; the rest skipped"
                )
        return spent

    def search(self, text: str, defects: list[str] | None = None) -> regex.Match | None:
        """The first match, or None (also when the search timed out: see ``timed_out``)."""
        self.timed_out = False
        if self._budget_spent(defects):
            return None
        started = time.perf_counter()
        try:
            return self.compiled.search(text, timeout=self.timeout_s)
        except TimeoutError:
            self._timeout(text, started, defects)
            return None

    def finditer(self, text: str, defects: list[str] | None = None, limit: int = 100) -> list[regex.Match]:
        """Up to ``limit`` matches; the timeout covers the whole scan (matches found before it are kept)."""
        self.timed_out = False
        if self._budget_spent(defects):
            return []
        started = time.perf_counter()
        out: list[regex.Match] = []
        try:
            for m in self.compiled.finditer(text, timeout=self.timeout_s):
                out.append(m)
                if len(out) >= limit:
                    break
        except TimeoutError:
            self._timeout(text, started, defects)
        return out


def safe_compile(
    pattern: str, flags: int = 0, *, timeout_s: float = DEFAULT_TIMEOUT_S, name: str | None = None
) -> SafePattern:
    """``pattern`` compiled with the `regex` module; ValueError when it is invalid or over-long."""
    if not isinstance(pattern, str):
        raise ValueError("a pattern is a string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern longer than {MAX_PATTERN_CHARS} characters")
    if not 0 < timeout_s <= 5:
        raise ValueError("timeout_s must be in (0, 5]")
    try:
        rx = regex.compile(pattern, flags)
    except (regex.error, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid pattern {pattern[:80]!r}: {exc}") from None
    return SafePattern(pattern, rx, timeout_s, name)


@lru_cache(maxsize=256)
def _cached(pattern: str, flags: int, timeout_s: float) -> SafePattern:
    return safe_compile(pattern, flags, timeout_s=timeout_s)


def search(
    pattern: str,
    text: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    defects: list[str] | None = None,
    flags: int = 0,
) -> regex.Match | None:
    """``safe_compile(pattern, flags).search(text, defects)`` with the compiled pattern cached."""
    return _cached(pattern, flags, timeout_s).search(text, defects)
