"""Failures as data: what went wrong, kept JSON-serialisable for the journal."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Failure"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A recorded exception.

    ``exc_types`` holds the qualified names of the exception's classes along its MRO (most
    derived first), so ``failure.matches(ValueError)`` works without the class being importable.
    ``exception`` is the live exception in the process that saw it, ``None`` after a resume.
    """

    exc_types: tuple[str, ...]
    message: str
    traceback: str = ""
    cause: Failure | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def exc_type(self) -> str:
        return self.exc_types[0] if self.exc_types else "Exception"

    @classmethod
    def from_exception(cls, exc: BaseException, *, _depth: int = 0) -> Failure:
        names = tuple(_qualname(k) for k in type(exc).__mro__ if k is not object)
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, chain=False))
        recorded = getattr(exc, "failure", None)
        if isinstance(recorded, Failure):
            # TaskFailed, StepFailed, RevertFailed: the cause is the failure they record, the
            # same whether the exception behind it was raised in this run or journaled by an
            # earlier one (a resumed workflow must see what the first run saw)
            return cls(names, str(exc), tb, recorded, exc)
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        cause = (
            cls.from_exception(nxt, _depth=_depth + 1) if nxt is not None and _depth < 8 else None
        )
        return cls(names, str(exc), tb, cause, exc)

    def matches(self, *types: type[BaseException] | str) -> bool:
        """True if the recorded exception was an instance of any of ``types``."""
        wanted = {t if isinstance(t, str) else _qualname(t) for t in types}
        short = {n.rsplit(".", 1)[-1] for n in self.exc_types}
        return any(w in self.exc_types or w in short for w in wanted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exc_types": list(self.exc_types),
            "message": self.message,
            "traceback": self.traceback,
            "cause": self.cause.to_dict() if self.cause else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        cause = data.get("cause")
        return cls(
            tuple(str(t) for t in data.get("exc_types", ())),
            str(data.get("message", "")),
            str(data.get("traceback", "")),
            cls.from_dict(cause) if isinstance(cause, dict) else None,
        )

    def __str__(self) -> str:
        return f"{self.exc_type}: {self.message}"


def _qualname(klass: type) -> str:
    mod = klass.__module__
    return klass.__qualname__ if mod == "builtins" else f"{mod}.{klass.__qualname__}"
