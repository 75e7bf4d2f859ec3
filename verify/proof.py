"""A symbolic proof as a record: the claim, whether it holds, and its steps (one line each).

Every function of :mod:`verify.proofs` and :mod:`verify.index_notation` returns one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Proof"]


@dataclass
class Proof:
    """A claim, whether it holds, and the derivation (one line per step)."""
    claim: str
    holds: bool = True
    steps: list = field(default_factory=list)

    def step(self, text: str, ok: bool = True) -> bool:
        """Record a step; a failed step makes the whole proof fail."""
        self.steps.append(text if ok else f"FAILED: {text}")
        self.holds = self.holds and bool(ok)
        return bool(ok)

    def __bool__(self):
        return self.holds

    @property
    def statement(self) -> str:
        """The claim, for reports (``verify.claims`` reads ``statement``)."""
        return self.claim

    def __str__(self):
        lines = [f"Claim: {self.claim}"]
        lines += [f"  {k}. {s}" for k, s in enumerate(self.steps, 1)]
        lines.append("  => proved." if self.holds else "  => NOT proved.")
        return "\n".join(lines)


