"""The model: tasks, flows, retry controllers, the registry, compilation to a plan, graph export
(nothing here does I/O or knows the journal)."""
