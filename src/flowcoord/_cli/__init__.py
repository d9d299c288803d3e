"""The ``flowcoord`` command (``python -m flowcoord``): run, inspect, resume and serve flows.

``flowcoord run pkg.flows:build_provision --input size=2 --journal sqlite:///var/lib/j.sqlite``
``flowcoord flows list --journal ...``, ``flowcoord serve --registry pkg.flows:registry ...``.
Exit codes: 0 done, 1 the flow failed (it was reverted), 2 bad usage or configuration, or a
journal that cannot be reached, 130 interrupted.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
