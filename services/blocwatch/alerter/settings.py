"""AlerterSettings: every `blocwatch alert` knob as a BLOCWATCH_ALERTER_* environment variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from blocwatch.core.settings import ServiceSettings

__all__ = ["DEFAULT_RULES_FILE", "AlerterSettings", "split_secret_urls"]

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")


class AlerterSettings(ServiceSettings):
    """The alerter: rules file, state directory, receivers and their secrets, retry budget."""

    alerter_metrics_port: int = Field(
        default=9403, ge=0, le=65535, description="Port of the alerter's /metrics, /healthz."
    )
    alerter_rules_file: Path | None = Field(
        default=None, description="YAML rules file (empty: the shipped alerter/rules.yaml)."
    )
    alerter_data_dir: Path = Field(
        default=Path(".blocwatch/alerter"),
        description="Directory of the durable state (windows, sent notifications, silences).",
    )
    alerter_group_id: str = Field(
        default="blocwatch-alerter", description="Kafka consumer group of the alerter."
    )
    alerter_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="Consumer session timeout: how soon a dead alerter's partitions move on.",
    )
    alerter_allowed_lateness_s: float = Field(
        default=300.0, ge=0, description="How late (event time) an item may arrive and still count."
    )
    alerter_tick_s: float = Field(
        default=5.0, gt=0, description="How often windows are re-evaluated (resolve, flatline)."
    )
    alerter_webhook_urls: SecretStr | None = Field(
        default=None, description="Comma-separated generic webhook URLs (secret: may hold tokens)."
    )
    alerter_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Blocwatch-Signature header."
    )
    alerter_webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook request."
    )
    alerter_apprise_urls: SecretStr | None = Field(
        default=None,
        description="Comma-separated Apprise URLs (Slack, Teams, Telegram, mailto…); secret.",
    )
    alerter_console: bool = Field(
        default=True, description="Print notifications to stdout (the `console` receiver)."
    )
    alerter_retry_attempts: int = Field(
        default=8,
        ge=1,
        description="Delivery attempts per receiver before dead-lettering (8 ≈ 2 minutes).",
    )
    alerter_retry_initial_s: float = Field(
        default=1.0, gt=0, description="First retry delay; doubles per attempt (with jitter)."
    )
    alerter_retry_max_s: float = Field(
        default=60.0, gt=0, description="Upper bound of one retry delay."
    )
    alerter_follow_actions: bool = Field(
        default=True,
        description="Read the console's alerts.actions topic: its silences mute like "
        "`blocwatch silence add`, its acknowledgements as below.",
    )
    alerter_ack_mutes_repeats: bool = Field(
        default=True,
        description="An acknowledged alert is not re-notified on repeat_interval, only when it "
        "grows (or resolves, or fires anew).",
    )
    alerter_max_items: int = Field(
        default=10, ge=1, le=50, description="Contributing items listed per alert."
    )

    @property
    def metrics_port(self) -> int:
        return self.alerter_metrics_port

    @property
    def rules_file(self) -> Path:
        return self.alerter_rules_file or DEFAULT_RULES_FILE

    @property
    def state_file(self) -> Path:
        return self.alerter_data_dir / "alerter.sqlite3"


def split_secret_urls(value: SecretStr | None) -> list[str]:
    """The URLs behind a comma-separated secret; callers must not log the result."""
    if value is None:
        return []
    return [url.strip() for url in value.get_secret_value().split(",") if url.strip()]
