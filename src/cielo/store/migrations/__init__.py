"""Alembic scripts for Cielo's schema (run by cielo.store.migrate; see its docstring)."""
