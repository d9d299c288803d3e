"""What the command's modules share: exit codes, environment names."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_ENV_JOURNAL = "FLOWCOORD_JOURNAL"
_ENV_TOKEN = "FLOWCOORD_TOKEN"


class _Interrupted(Exception):
    """The user pressed Ctrl-C; the message says how to carry on."""
