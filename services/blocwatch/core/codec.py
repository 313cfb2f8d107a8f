"""Bytes ↔ contracts. Every stage decodes through here so errors read the same everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from blocwatch.core.errors import ContractError
from blocwatch.core.models import Contract, DeadLetter

__all__ = ["dead_letter", "decode", "describe_validation_error", "encode"]

M = TypeVar("M", bound=Contract)


def encode(message: Contract) -> bytes:
    return message.model_dump_json().encode()


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """`field.path: message; …` for the first few problems, the form every error message uses."""
    parts = []
    for problem in error.errors()[:limit]:
        where = ".".join(str(p) for p in problem["loc"]) or "(root)"
        parts.append(f"{where}: {problem['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def decode(model: type[M], payload: bytes | str) -> M:
    """Parse and validate a payload; ContractError names the failing fields."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise ContractError(
            f"invalid {model.__name__}: {describe_validation_error(exc)}",
            f"produce payloads matching schemas/{model.__name__}.schema.json",
        ) from exc


def dead_letter(
    *,
    topic: str,
    value: bytes,
    stage: str,
    error: BaseException | str,
    now: datetime,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
    error_type: str | None = None,
) -> DeadLetter:
    """Wrap a record a stage gave up on, with the reason, for `<topic>.dlq`.

    `error_type` defaults to the exception's class name (empty for a plain string): pass it when
    the error was caught elsewhere (another process) and only its text and type came back."""
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        stage=stage,
        error=str(error)[:2000],
        error_type=(
            error_type
            if error_type is not None
            else ""
            if isinstance(error, str)
            else type(error).__name__
        ),
        failed_at=now,
    )
