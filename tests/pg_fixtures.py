"""PostgreSQL fixtures (session-scoped temporary cluster, per-test schema)."""
