"""`blocwatch alert`: consume news.tagged, evaluate the rules, deliver alerts durably.

Per consumed batch: decode (poison → news.tagged.dlq), evaluate with the injected clock, then
commit window items, notification records and the outbox in one SQLite transaction, and only
then commit the Kafka offsets. Delivery (the `alerts` topic and every receiver) runs from the
outbox in separate tasks, so a slow receiver never holds up the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from blocwatch.alerter.evaluation import Changes, Decision, Engine, NotifyRecord
from blocwatch.alerter.metrics import AlerterMetrics
from blocwatch.alerter.notify import (
    AppriseReceiver,
    ConsoleReceiver,
    Dispatcher,
    Receiver,
    RetryPolicy,
    TopicReceiver,
    WebhookReceiver,
)
from blocwatch.alerter.rules import RulesFile
from blocwatch.alerter.settings import AlerterSettings, split_secret_urls
from blocwatch.alerter.silences import Silence, active_silences, from_config
from blocwatch.alerter.store import Delivery, StateStore
from blocwatch.core.codec import dead_letter, decode, encode
from blocwatch.core.errors import BrokerError, ConfigError, ContractError
from blocwatch.core.kafka import (
    make_consumer,
    make_producer,
    prepare_join,
    read_to_end,
    recreate_missing_topics,
    refresh_metadata,
)
from blocwatch.core.logs import quiet_logger
from blocwatch.core.metrics import OpsServer
from blocwatch.core.models import Alert, AlertAction, TaggedItem

__all__ = [
    "CONSOLE_SILENCE_PREFIX",
    "REBUILDING",
    "Alerter",
    "build_receivers",
    "read_back_alerts",
    "utc_now",
]

REBUILDING = "rebuilding_since"  # state meta key: present while a fresh store is being rebuilt
READBACK_TIMEOUT_S = 120.0  # reading the alerts topic back (fresh state only); alerts are few
CONSOLE_SILENCE_PREFIX = "console-"  # id of a silence created in the console: prefix + action id

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_receivers(settings: AlerterSettings, session: aiohttp.ClientSession) -> list[Receiver]:
    """The receivers the settings configure; names are metric labels, never URLs."""
    receivers: list[Receiver] = []
    secret = settings.alerter_webhook_secret
    key = secret.get_secret_value().encode() if secret is not None else None
    for n, url in enumerate(split_secret_urls(settings.alerter_webhook_urls), start=1):
        name = "webhook" if n == 1 else f"webhook-{n}"
        receivers.append(
            WebhookReceiver(name, url, key, session, settings.alerter_webhook_timeout_s)
        )
    apprise_urls = split_secret_urls(settings.alerter_apprise_urls)
    if apprise_urls:
        try:
            receivers.append(AppriseReceiver("apprise", apprise_urls))
        except ValueError as exc:
            raise ConfigError(
                f"BLOCWATCH_ALERTER_APPRISE_URLS: {exc}", "check the Apprise URL syntax"
            ) from exc
    if settings.alerter_console:
        receivers.append(ConsoleReceiver())
    return receivers


async def read_back_alerts(settings: AlerterSettings) -> dict[str, Alert]:
    """The latest Alert per fingerprint on the `alerts` topic, read to its end (alerts are few).

    A missing topic means nothing was ever notified. "Its end" is core.kafka.read_to_end's, not
    a pause in the records: a slow first fetch must not pass for an empty topic, which would
    notify everything again.
    """
    topic = settings.topics.alerts
    consumer = make_consumer(settings, "alerter-readback", topic, group_id=None)
    await consumer.start()
    latest: dict[str, Alert] = {}
    ends: dict[TopicPartition, int] = {}
    try:
        async with asyncio.timeout(READBACK_TIMEOUT_S):
            if topic not in await consumer.topics():
                return latest
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    _keep_latest(latest, records)
                if await read_to_end(consumer, ends):
                    break
    except TimeoutError:
        raise BrokerError(
            f"alerter could not read the {topic} topic to its end within "
            f"{READBACK_TIMEOUT_S:.0f} s (needed once, to rebuild a fresh state)",
            "check the broker, then start the alerter again",
        ) from None
    finally:
        await consumer.stop()
    return latest


def _keep_latest(latest: dict[str, Alert], records: Sequence[Any]) -> None:
    for record in records:
        try:
            alert = decode(Alert, record.value)
        except ContractError:
            continue  # not ours to judge here; the topic's consumers see it
        known = latest.get(alert.fingerprint)
        if known is None or (alert.fired_at, alert.notification) >= (
            known.fired_at,
            known.notification,
        ):
            latest[alert.fingerprint] = alert


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, alerter: Alerter) -> None:
        self._alerter = alerter

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # aiokafka calls this right before every (re)join: the place to make the join see
        # news.tagged as it exists now (after a broker restart it may be new; see prepare_join)
        await self._alerter.prepare_join()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._alerter.check_assignment(assigned)
        self._alerter.ensure_outputs_soon()
        await self._alerter.rewind(assigned)


class Alerter:
    """The alerter service; `clock` and `receivers` are injectable for tests and back-tests."""

    def __init__(
        self,
        settings: AlerterSettings,
        rules: RulesFile,
        *,
        registry: CollectorRegistry,
        clock: Clock = utc_now,
        receivers: Sequence[Receiver] | None = None,
        serve_metrics: bool = True,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.registry = registry
        self.metrics = AlerterMetrics.create(registry)
        self.clock = clock
        self._extra_receivers = receivers
        self._serve_metrics = serve_metrics
        self._consumer_options = consumer_options or {}
        self.config_silences = from_config(rules.silences)
        self.store: StateStore | None = None
        self.engine: Engine | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ops: OpsServer | None = None
        self._dispatcher: Dispatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ensuring: asyncio.Task[None] | None = None
        self._last_tick: datetime | None = None
        self._rule_errors_seen: dict[str, int] = {}
        self._fresh = False  # no state on disk: rebuild it from Kafka (see _Rewind)
        # While rebuilding, nothing is decided (a half-read window looks cleared) until the
        # consumer has read every partition to its end as of the rewind (core.kafka.read_to_end).
        self._replaying = False
        self._replay_ends: dict[TopicPartition, int] = {}
        self._settle = False  # the replay has just ended: decide every group once
        self._uncommitted: list[Decision] = []
        self._actions: AIOKafkaConsumer | None = None
        self.acknowledged: dict[str, datetime] = {}  # fingerprint → when, from the console
        self.batches = 0
        self.metrics.assigned_partitions.set_function(self._assigned_partitions)
        self.metrics.rebuilding.set_function(lambda: float(self._replaying))

    # -- lifecycle

    @property
    def ready(self) -> bool:
        return self._assigned_partitions() > 0

    def _assigned_partitions(self) -> int:
        return len(self._consumer.assignment()) if self._consumer is not None else 0

    async def start(self) -> None:
        try:
            with quiet_logger("aiokafka"):  # the BrokerError below says it once, readably
                await self._start()
        except KafkaError as exc:
            await self.stop()
            raise BrokerError(
                f"alerter cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: "
                f"{type(exc).__name__}",
                "start one with `blocwatch broker` or set BLOCWATCH_KAFKA_BOOTSTRAP_SERVERS",
            ) from exc
        except BaseException:  # e.g. the metrics port is taken: release what did start
            await self.stop()
            raise

    async def _start(self) -> None:
        settings = self.settings
        self.store = StateStore(settings.state_file)
        self.engine = self._restore(self.store)
        self._producer = make_producer(settings, "alerter")
        await self._producer.start()
        self._session = aiohttp.ClientSession()
        receivers: list[Receiver] = [TopicReceiver(self._producer, settings.topics.alerts)]
        if self._extra_receivers is not None:
            receivers += list(self._extra_receivers)
        else:
            receivers += build_receivers(settings, self._session)
        self._dispatcher = Dispatcher(
            self.store,
            receivers,
            dlq=self._send_alert_dlq,
            metrics=self.metrics,
            clock=self.clock,
            policy=RetryPolicy(
                settings.alerter_retry_attempts,
                settings.alerter_retry_initial_s,
                settings.alerter_retry_max_s,
            ),
            poll_s=min(1.0, settings.alerter_tick_s),
        )
        session = settings.alerter_session_timeout_ms
        options = {"session_timeout_ms": session, "heartbeat_interval_ms": max(100, session // 10)}
        options.update(self._consumer_options)
        if self._fresh:
            await self._recover_records()
        self._consumer = make_consumer(
            settings, "alerter", group_id=settings.alerter_group_id, **options
        )
        await self._consumer.start()
        self._consumer.subscribe([settings.topics.news_tagged], listener=_Rewind(self))
        if self._serve_metrics:
            self._ops = OpsServer(
                self.registry,
                settings.metrics_host,
                settings.metrics_port,
                ready=lambda: self.ready,
            )
            await self._ops.start()
        self._tasks = [
            asyncio.create_task(self._dispatcher.run(), name="alerter-deliver"),
            asyncio.create_task(self._consume(), name="alerter-consume"),
        ]
        if settings.alerter_follow_actions:
            # No group: every alerter reads the whole action history; applying it is idempotent.
            self._actions = make_consumer(
                settings, "alerter-actions", settings.topics.alert_actions, group_id=None
            )
            await self._actions.start()
            self._tasks.append(asyncio.create_task(self._follow_actions(), name="alerter-actions"))
        log.info(
            "alerter started: %d rules, %d receivers (%s), state %s",
            len(self.rules.active_rules),
            len(receivers),
            ", ".join(r.name for r in receivers),
            settings.state_file,
        )

    def _restore(self, store: StateStore) -> Engine:
        """Rebuild windows and notification records from the durable store."""
        now = self.clock()
        first = store.get_meta("first_started_at")
        # Until a rebuild has finished, every start rebuilds: one killed half-way (before the
        # alerts read-back was stored, or mid-replay) must not leave a store taken for whole.
        self._fresh = self._replaying = first is None or store.get_meta(REBUILDING) is not None
        if first is None:
            store.set_meta(REBUILDING, now.isoformat())  # first: a crash in between stays fresh
            store.set_meta("first_started_at", now.isoformat())
        learning = datetime.fromisoformat(first) if first else now
        engine = Engine(
            self.rules,
            lateness=timedelta(seconds=self.settings.alerter_allowed_lateness_s),
            started_at=now,
            learning_since=learning,
            max_items=self.settings.alerter_max_items,
        )
        engine.restore(
            items=store.load_items(now - engine.horizon),
            records=store.load_records(),
            dyads=store.load_dyads(),
            arrivals=store.load_arrivals(),
        )
        log.info(
            "restored %d window items and %d notification records",
            len(engine.items),
            len(engine.records),
        )
        return engine

    async def _recover_records(self) -> None:
        """A fresh store (first start, or the data dir was lost): read back the `alerts` topic as
        the record of what was notified, so nothing already sent is sent again."""
        assert self.engine is not None
        assert self.store is not None
        latest = await read_back_alerts(self.settings)
        by_rule = {rule.name: rule for rule in self.rules.active_rules}
        changes = Changes()
        for alert in latest.values():
            rule = by_rule.get(alert.rule)
            if rule is None:
                continue
            known = self.engine.records.get(alert.fingerprint)
            if known is not None and known.notification >= alert.notification:
                continue  # the store is ahead: its delivery to `alerts` was still pending
            record = NotifyRecord(
                fingerprint=alert.fingerprint,
                rule=alert.rule,
                group=tuple(alert.group.items()),
                status="firing" if alert.status == "firing" else "resolved",
                episode_start=alert.first_seen,
                last_notified_at=alert.fired_at,
                notification=alert.notification,
                notified_count=getattr(alert.counts, rule.count),
            )
            changes.records[record.fingerprint] = record
        self.engine.restore(records=changes.records.values())
        self.store.commit(changes, [], self.clock())
        log.info(
            "fresh state: recovered %d notification records from the alerts topic",
            len(changes.records),
        )

    async def prepare_join(self) -> None:
        if self._consumer is not None:
            await prepare_join(self.settings, self._consumer, [self.settings.topics.news_tagged])

    def ensure_outputs_soon(self) -> None:
        """Start `ensure_outputs` beside the stream: the rebalance (and the rewind of a fresh
        store, which must come before the first tick) is not held up by an admin round trip."""
        if self._ensuring is None or self._ensuring.done():
            self._ensuring = asyncio.create_task(self.ensure_outputs(), name="alerter-topics")

    async def ensure_outputs(self) -> None:
        """Recreate the topics the alerter writes if the broker lost them (every assignment).

        A broker that lost its state (the embedded broker keeps everything in memory) comes back
        without them, and a producer whose cached metadata still lists them gets acknowledgements
        for records the broker then drops (measured on Tansu): alerts lost silently. The consumer
        group is lost too, so a restart always ends in a new assignment, before consuming resumes.
        Idempotent; without create permission (a managed cluster) the topics must simply exist.
        """
        topics = self.settings.topics
        names = [topics.alerts, topics.dlq(topics.alerts), topics.dlq(topics.news_tagged)]
        if not await recreate_missing_topics(self.settings, names, "output"):
            return
        if self._producer is not None:
            # its cached metadata may list partitions the recreated topics lack (they can come
            # back with another partition count): records sent there would be dropped too
            await refresh_metadata(self._producer)

    def check_assignment(self, assigned: set[TopicPartition]) -> None:
        """Windows span every partition: warn loudly when another member holds some of them."""
        if self._consumer is None:
            return
        topic = self.settings.topics.news_tagged
        everything = self._consumer.partitions_for_topic(topic) or set()
        mine = {tp.partition for tp in assigned if tp.topic == topic}
        if everything and mine != set(everything):
            log.warning(
                "this alerter holds %d of %d partitions of %s: another member of group %s sees "
                "the rest, so windows are incomplete; run exactly one alerter per group",
                len(mine), len(everything), topic, self.settings.alerter_group_id,
            )  # fmt: skip

    async def rewind(self, assigned: set[TopicPartition]) -> None:
        """On a fresh store, re-read news.tagged for the lookback horizon to rebuild windows.

        offsets_for_times is exact on Apache Kafka; the embedded broker answers the first offset
        of the partition (measured), which only means reading more: redeliveries are deduped.
        """
        if not self._fresh or not assigned or self._consumer is None or self.engine is None:
            return
        self._fresh = False
        since = int((self.clock() - self.engine.horizon).timestamp() * 1000)
        found = await self._consumer.offsets_for_times({tp: since for tp in assigned})
        for tp in assigned:
            hit = found.get(tp)
            if hit is not None:  # None: nothing that recent; the committed position is right
                self._consumer.seek(tp, hit.offset)
        log.info(
            "fresh state: re-reading %s for the last %s",
            self.settings.topics.news_tagged,
            self.engine.horizon,
        )

    async def stop(self) -> None:
        if self._ensuring is not None:
            self._ensuring.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ensuring
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._ops is not None:
            await self._ops.stop()
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()
        if self._actions is not None:
            with contextlib.suppress(KafkaError):
                await self._actions.stop()
            self._actions = None
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.stop()
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            self.store.close()
        self._consumer = self._producer = self._session = self._ops = None
        self.store = None

    async def __aenter__(self) -> Alerter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the stream

    async def _consume(self) -> None:
        assert self._consumer is not None
        timeout_ms = int(self.settings.alerter_tick_s * 1000)
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=500)
                await self.process_batch([r for records in batch.values() for r in records])
                if batch:
                    await self._consumer.commit()
                if self._replaying:
                    await self._end_replay_when_caught_up()
            except KafkaError as exc:
                # Uncommitted records come again; the store drops the ones it already holds.
                log.warning("Kafka error in the alerter loop (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
            self.batches += 1

    async def _end_replay_when_caught_up(self) -> None:
        assert self._consumer is not None
        if self._fresh or not await read_to_end(self._consumer, self._replay_ends):
            return  # _fresh: not assigned and rewound yet
        self._replaying = False
        self._settle = True
        assert self.engine is not None
        log.info(
            "fresh state: windows rebuilt (%d items); deciding from here", len(self.engine.items)
        )
        await self.process_batch([])  # decides every group in the windows, then ticks

    # -- the console's actions (alerts.actions)

    async def _follow_actions(self) -> None:
        assert self._actions is not None
        while True:
            try:
                batch = await self._actions.getmany(timeout_ms=1000, max_records=500)
            except KafkaError as exc:
                log.warning("Kafka error reading alert actions (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for records in batch.values():
                for record in records:
                    try:
                        self.apply_action(decode(AlertAction, record.value or b""))
                    except ContractError as exc:
                        log.warning("skipped an undecodable alert action: %s", exc.message)

    def apply_action(self, action: AlertAction) -> None:
        """Console silences go into the same store as `blocwatch silence add` (re-read every
        batch); acknowledgements are remembered to mute repeats (see _mute_acknowledged)."""
        assert self.store is not None
        if action.action == "silence" and action.matchers and action.ends_at is not None:
            self.store.add_silence(
                Silence(
                    id=CONSOLE_SILENCE_PREFIX + action.id,
                    matchers=action.matchers,
                    starts_at=action.at,
                    ends_at=action.ends_at,
                    comment=action.comment,
                    created_by=action.who,
                )
            )
        elif action.action == "unsilence" and action.silence_id:
            self.store.expire_silence(CONSOLE_SILENCE_PREFIX + action.silence_id, action.at)
        elif action.action == "acknowledge":
            self.acknowledged[action.fingerprint] = action.at

    def _mute_acknowledged(self, decisions: list[Decision]) -> list[Decision]:
        """An acknowledged alert's `repeat` re-notification is kept like a silenced one (recorded,
        counted as silenced, not delivered); growth, resolution or a new firing is delivered and
        ends the acknowledgement. An ack older than the episode (replayed history) is ignored."""
        if not self.settings.alerter_ack_mutes_repeats or not self.acknowledged:
            return decisions
        assert self.engine is not None
        out = []
        for decision in decisions:
            fp = decision.alert.fingerprint
            acked_at = self.acknowledged.get(fp)
            record = self.engine.records.get(fp)
            if acked_at is None or decision.silenced:
                out.append(decision)
            elif decision.kind == "repeat" and record and acked_at >= record.episode_start:
                out.append(replace(decision, silenced=True))
            else:
                del self.acknowledged[fp]
                out.append(decision)
        return out

    async def wait(self) -> None:
        """Return when a service task ends (it should not): surfaces its exception."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    def silences(self, now: datetime) -> list[Silence]:
        assert self.store is not None
        stored = self.store.silences()
        active = active_silences([*self.config_silences, *stored], now)
        self.metrics.active_silences.set(len(active))
        return active

    async def process_batch(self, records: Sequence[Any]) -> None:
        """Evaluate a batch of consumer records and persist the outcome in one transaction."""
        assert self.engine is not None
        assert self.store is not None
        now = self.clock()
        silences = self.silences(now)
        # Decisions wait here until committed: if this batch fails half-way (the DLQ produce
        # raised), the engine already holds their records, so they must not be lost.
        decisions = self._uncommitted
        for record in records:
            item = await self._decode(record, now)
            if item is None:
                continue
            self.metrics.items.inc()
            late_before = self.engine.late_items
            decisions += self.engine.ingest(
                item, now, silences, defer=self._replaying, payload=record.value
            )
            if self.engine.late_items > late_before:
                self.metrics.late_items.inc()
        tick_due = self._last_tick is None or now - self._last_tick >= timedelta(
            seconds=self.settings.alerter_tick_s
        )
        settled = tick_due and self._settle and not self._replaying
        if settled:  # the replay has just ended: decide every group in the windows once
            decisions += self.engine.settle(now, silences)
        if tick_due and not self._replaying:  # time decides nothing until the window is whole
            decisions += self.engine.tick(now, silences)
            self._last_tick = now
        decisions = self._mute_acknowledged(decisions)
        deliveries = self._deliveries(decisions)
        self.store.commit(self.engine.changes, deliveries, now)  # raises: nothing is taken
        self.engine.take_changes()
        if settled:  # stored together with what settle decided: the rebuild is complete
            self.store.delete_meta(REBUILDING)
            self._settle = False
        self._count(decisions)
        self._uncommitted = []
        if deliveries and self._dispatcher is not None:
            self._dispatcher.wake()

    async def _decode(self, record: Any, now: datetime) -> TaggedItem | None:
        try:
            return decode(TaggedItem, record.value)
        except ContractError as exc:
            await self._send_poison(record, exc, now)
            return None

    async def _send_poison(self, record: Any, error: ContractError, now: datetime) -> None:
        assert self._producer is not None
        letter = dead_letter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            stage="alerter",
            error=error.message,
            now=now,
        )
        dlq = self.settings.topics.dlq(record.topic)
        await self._producer.send_and_wait(dlq, encode(letter), key=record.key)
        self.metrics.dead_letters.inc()
        log.warning(
            "poison record %s[%s]@%s → %s", record.topic, record.partition, record.offset, dlq
        )

    async def _send_alert_dlq(self, value: bytes, key: bytes, reason: str) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.settings.topics.dlq(self.settings.topics.alerts), value, key=key
        )

    def _count(self, decisions: Sequence[Decision]) -> None:
        assert self.engine is not None
        for decision in decisions:
            alert = decision.alert
            status = "silenced" if decision.silenced else alert.status
            self.metrics.alerts.labels(
                rule=alert.rule, severity=alert.severity, status=status
            ).inc()
        for rule, errors in self.engine.rule_errors.items():
            seen = self._rule_errors_seen.get(rule, 0)
            if errors > seen:
                self.metrics.rule_errors.labels(rule=rule).inc(errors - seen)
                self._rule_errors_seen[rule] = errors

    def _deliveries(self, decisions: Sequence[Decision]) -> list[Delivery]:
        """The `alerts` topic always; receivers by kind as the rule names them (default: all)."""
        assert self._dispatcher is not None
        by_rule = {rule.name: rule for rule in self.rules.rules}
        out = []
        for decision in decisions:
            if decision.silenced:
                continue
            alert = decision.alert
            wanted = by_rule[alert.rule].receivers
            payload = alert.model_dump_json()
            for receiver in self._dispatcher.receivers.values():
                if receiver.kind == "topic" or wanted is None or receiver.kind in wanted:
                    out.append(Delivery(receiver.name, payload, decision.origin))
        return out
