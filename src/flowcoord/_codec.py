"""JSON encoding of journal values, with hooks for user types. Never pickle, never eval."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import EncodingError

__all__ = ["Codec"]

Encoder = Callable[[Any], Any]
Decoder = Callable[[dict[str, Any]], Any]


class Codec:
    """Turns values into JSON text and back.

    ``default`` is called for objects ``json`` cannot encode and must return something it can
    (or raise ``TypeError``); ``object_hook`` sees every decoded dict. Subclass or pass hooks to
    carry dataclasses, datetimes and the like through the journal.
    """

    __slots__ = ("_decoder", "_encoder")

    def __init__(self, *, default: Encoder | None = None, object_hook: Decoder | None = None):
        self._encoder = json.JSONEncoder(
            default=default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        self._decoder = json.JSONDecoder(object_hook=object_hook)

    def encode(self, value: Any, *, what: str | Callable[[], str] = "value") -> str:
        """``value`` as JSON text; :class:`EncodingError` naming ``what`` (a string, or a
        function making it, called only then) if it cannot be encoded."""
        try:
            return self._encoder.encode(value)
        except (TypeError, ValueError, RecursionError) as exc:
            named = what if isinstance(what, str) else what()
            raise EncodingError(
                f"{named} cannot be encoded as JSON: {exc}",
                hint="return JSON-compatible data, or give the engine a Codec with a default= hook",
            ) from exc

    def decode(self, text: str) -> Any:
        return self._decoder.decode(text)
