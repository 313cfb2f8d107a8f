"""Errors a person can act on: one line saying what went wrong, one saying how to fix it."""

from __future__ import annotations


class BlocwatchError(Exception):
    """Base class for errors the CLI prints as one readable line plus a fix (no traceback)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} (fix: {self.fix})"


class ConfigError(BlocwatchError):
    """Invalid configuration: names the file (or variable), the entry and the field."""


class BrokerError(BlocwatchError):
    """The Kafka broker could not be started, reached or used."""


class ContractError(BlocwatchError):
    """A payload does not match its message contract; the message names the fields."""
