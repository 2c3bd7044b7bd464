"""Multi-process / scale-out tests: runcomet processes sharing Redis and PostgreSQL."""
