"""Errors raised by the ledger's synchronous methods (never by `Ledger.record`)."""

from __future__ import annotations


class LedgerError(Exception):
    """The ledger cannot do what was asked; the message says how to fix it."""


class LedgerUnavailable(LedgerError):
    """The ledger database cannot be reached now (down, refusing connections, locked)."""


class UnknownQueryError(LedgerError, LookupError):
    """No ledger row has this query id."""
