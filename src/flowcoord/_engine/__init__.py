"""Execution layer: the scheduler, reverts, retries, suspend/cancel."""
