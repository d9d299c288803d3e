"""The one rule for flow ids, checked at every entry point before anything is written."""

from __future__ import annotations

import re

from .errors import ConfigurationError

__all__ = ["FLOW_ID_RULE", "check_flow_id", "is_flow_id"]

#: What a flow id may be, said for people.
FLOW_ID_RULE = "1-128 letters, digits and . _ : @ - (starting with a letter or digit)"
_FLOW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def is_flow_id(value: object) -> bool:
    """Whether ``value`` is a valid flow id (see :data:`FLOW_ID_RULE`)."""
    return isinstance(value, str) and _FLOW_ID.fullmatch(value) is not None


def check_flow_id(value: object, *, what: str = "flow id") -> str:
    """``value`` if it is a valid flow id; :class:`~flowcoord.ConfigurationError` if not."""
    if not is_flow_id(value):
        shown = (
            repr(value)
            if not isinstance(value, str) or len(value) <= 60
            else (f"{value[:40]!r}... ({len(value)} characters)")
        )
        raise ConfigurationError(f"invalid {what} {shown}", hint=f"a flow id is {FLOW_ID_RULE}")
    assert isinstance(value, str)
    return value
