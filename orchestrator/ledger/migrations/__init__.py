"""Alembic migrations of the ledger database (the same scripts for SQLite and PostgreSQL).

Run programmatically by `orchestrator.ledger.engine.migrate` or `spillway ledger migrate`;
the scripts ship as package files, so no alembic.ini is needed.
"""
