"""Storage adapters: the only place that imports psycopg (gallery on PostgreSQL + pgvector)."""
