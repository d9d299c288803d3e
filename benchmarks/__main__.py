"""``python -m benchmarks``: run the benchmark modules, print the table, write JSON."""

from ._runner import main

raise SystemExit(main())
