"""Shared foundation: contracts, settings, Kafka wiring and metrics helpers. Imports no service."""
