"""ConsoleSettings: every `blocwatch console` knob as a BLOCWATCH_CONSOLE_* environment variable."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from blocwatch.core.settings import ServiceSettings

__all__ = ["AuthMode", "ConsoleSettings"]

AuthMode = Literal["none", "basic", "header"]


class ConsoleSettings(ServiceSettings):
    """The console: the web page on its own port, /metrics and /healthz on the metrics port."""

    console_metrics_port: int = Field(
        default=9404, ge=0, le=65535, description="Port of the console's /metrics, /healthz."
    )
    console_host: str = Field(
        default="127.0.0.1", description="Address the web page binds to (0.0.0.0 behind a proxy)."
    )
    console_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the watch-officer web page."
    )
    console_auth: AuthMode = Field(
        default="none",
        description="none | basic (user/password below) | header (trusted reverse-proxy header).",
    )
    console_user: str = Field(default="watch", description="User name for basic auth.")
    console_password: SecretStr | None = Field(
        default=None, description="Password for basic auth (required when auth is basic)."
    )
    console_auth_header: str = Field(
        default="X-Forwarded-User",
        description="header auth: the proxy-set header holding the user (requests without: 401).",
    )
    console_ack_until_growth: bool = Field(
        default=True,
        description="An acknowledgement holds until the alert grows (true) or until it resolves; "
        "the alerter's BLOCWATCH_ALERTER_ACK_MUTES_REPEATS matches it.",
    )
    console_max_alerts: int = Field(
        default=500, ge=1, description="Alerts kept on the board (oldest resolved dropped first)."
    )

    @property
    def metrics_port(self) -> int:
        return self.console_metrics_port
