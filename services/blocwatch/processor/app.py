"""The faust-streaming worker of `blocwatch process`: news.raw in; news.tagged, events.*, DLQ out.

Delivery is at-least-once. Events are taken in batches without auto-ack; each batch is prepared
(here or in the tagging processes, processor.pool), finished (stories, routing), its outputs sent
by the processor's own aiokafka producer, one record batch per topic partition (core.kafka.
send_batched), and a third task acks events in order only after awaiting every one of their
send futures, so a committed offset always means its outputs are in Kafka. (faust's producer
wraps each send in bookkeeping that doubled the cost per record on a path writing two to four
records per item; it still writes the story changelog, and with `processor_exactly_once` the
outputs too, through its transactions.) A
worker that dies leaves the offsets after its last commit to another worker of the group, which
reprocesses them (duplicates possible, keyed by item id; nothing lost).

Story state lives in a faust GlobalTable (one changelog partition, every worker reads all of it),
because near-duplicates of one story arrive with different item ids on different partitions and
so at different workers. The table's changelog restores it after a restart or rebalance; the
in-memory LSH index is rebuilt from the changelog events as they are read back.

The faust `App` is built here from the settings the CLI made (there is no module-level app: its
id, topic names and options all depend on those settings). faust's web server is off; the core
OpsServer serves /metrics, /healthz and /readyz (ready = news.raw partitions assigned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.exceptions import ConsumerNotStarted, NotReady
from mode import Service
from prometheus_client import CollectorRegistry

from blocwatch.core.kafka import (
    faust_options,
    make_producer,
    prepare_join,
    recreate_missing_topics,
    refresh_metadata,
    send_batched,
)
from blocwatch.core.metrics import OpsServer, new_registry
from blocwatch.processor.metrics import ProcessorMetrics
from blocwatch.processor.pool import TaggingPool, tagging_processes
from blocwatch.processor.processing import (
    Outcome,
    Output,
    Preparation,
    Source,
    TagFunction,
    finish,
    prepare,
)
from blocwatch.processor.settings import ProcessorSettings
from blocwatch.processor.stories import StoryConfig, StoryIndex
from blocwatch.processor.tagging import TAGGER_VERSION, default_tagger, tag_text
from blocwatch.processor.transport import transport_class

__all__ = [
    "STORY_TABLE",
    "OpsService",
    "OutputProducer",
    "Processor",
    "TaggingProcesses",
    "faust_config",
    "run_worker",
]

STORY_TABLE = "stories"
log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
Inflight = tuple[list[Any], list[Outcome], list[Awaitable[Any]]]  # one batch, finished
Preparing = tuple[list[Any], datetime, "asyncio.Future[list[Preparation]]"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def faust_config(settings: ProcessorSettings) -> dict[str, Any]:
    """faust.App options: the shared Kafka options plus the processor's own."""
    options = faust_options(settings)
    options.update(
        autodiscover=False,
        web_enabled=False,  # the OpsServer serves metrics and health instead
        datadir=str(settings.processor_data_dir),
        store="memory://",  # the changelog topic is the durable copy
        # exactly_once needs transactions, which the embedded broker refuses
        processing_guarantee="exactly_once" if settings.processor_exactly_once else "at_least_once",
        broker_session_timeout=settings.processor_session_timeout_seconds,
        broker_rebalance_timeout=settings.processor_rebalance_timeout_seconds,
        broker_heartbeat_interval=settings.processor_heartbeat_interval_seconds,
        consumer_auto_offset_reset=settings.processor_auto_offset_reset,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
    )
    return options


def _raw(app: faust.App, name: str) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")  # fmt: skip


class Processor:
    """One worker: the faust app, its agent, the story table and the metrics."""

    def __init__(
        self,
        settings: ProcessorSettings,
        registry: CollectorRegistry,
        *,
        tag: TagFunction = tag_text,
        tagger_version: str = TAGGER_VERSION,
        clock: Clock = _utcnow,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.metrics = ProcessorMetrics(registry)
        self.tag = tag
        self.tagger_version = tagger_version
        self.clock = clock
        self.app = faust.App(settings.app_id, **faust_config(settings))
        # before anything asks the app for its transport (tables and topics do)
        transport = transport_class(settings.kafka_fetch_max_wait_ms, self._prepare_join)
        self.app.transport = transport(self.app.conf.broker_consumer, self.app)
        self.table = self.app.GlobalTable(
            STORY_TABLE,
            default=None,
            # the documented way to run a GlobalTable with several workers (see its docstring)
            partitions=1,
            recovery_buffer_size=1,
            use_partitioner=True,  # writes go by key, not by the partition of the current event
            on_changelog_event=self._on_story_event,
            help="story_id → story record (signature, first report, sources)",
        )
        config = StoryConfig(
            horizon_seconds=settings.processor_story_horizon_seconds,
            similarity=settings.processor_story_similarity,
            max_stories=settings.processor_story_max_stories,
        )
        self.stories = StoryIndex(config, records=self.table)
        self.source_topic = _raw(self.app, self.topics.news_raw)
        self.outputs: dict[str, Any] = {}
        self.producer: AIOKafkaProducer | None = None  # set by OutputProducer once the loop runs
        self.pool: TaggingPool | None = None  # set by TaggingProcesses when configured
        self.app.agent(self.source_topic, name="process")(self._agent)
        receiver: Any = self._ensure_outputs  # mode's signal type does not accept async methods
        self.app.on_partitions_assigned.connect(receiver)
        self.metrics.assigned_partitions.set_function(lambda: len(self._assigned()))
        self.metrics.stories_live.set_function(lambda: len(self.stories))

    async def _deliver(self, outcomes: list[Outcome]) -> list[Awaitable[Any]]:
        """Start sending a batch's outputs; returns futures that resolve when Kafka has them."""
        outputs = [out for outcome in outcomes for out in outcome.outputs]
        if self.settings.processor_exactly_once:  # faust routes them through its transaction
            return [await self._send_transactional(out) for out in outputs]
        if self.producer is None:
            raise RuntimeError("the output producer is not started")
        return await send_batched(self.producer, ((o.topic, o.key, o.value) for o in outputs))

    async def _send_transactional(self, output: Output) -> Awaitable[Any]:
        topic = self.outputs.get(output.topic)
        if topic is None:
            topic = self.outputs[output.topic] = _raw(self.app, output.topic)
        sent: Awaitable[Any] = await topic.send(key=output.key, value=output.value)
        return sent

    @property
    def output_topics(self) -> list[str]:
        """The topics this stage writes (its story changelog is faust's own)."""
        events = [self.topics.events(label) for label in ("alliance", "escalation")]
        return [self.topics.news_tagged, *events, self.topics.dlq(self.topics.news_raw)]

    async def _ensure_outputs(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """On every assignment (processing is paused meanwhile), recreate missing output topics.

        A broker that lost its state (the embedded broker keeps everything in memory) comes back
        without them, and our producer, whose cached metadata still lists them, gets
        acknowledgements for records the broker then drops: lost outputs, silently (measured on
        Tansu). The consumer group is lost with the broker too, so a restart always ends in a new
        assignment before the stream resumes: the moment to recreate them. CreateTopics is
        idempotent; without create permission (a managed cluster) the topics must simply exist.
        """
        if not await recreate_missing_topics(self.settings, self.output_topics, "output"):
            return
        # The producer's cached metadata may still describe the lost topics, whose replacements
        # can have fewer partitions (another client's metadata request auto-creates them with
        # the broker's default count): a record sent to a partition that no longer exists is
        # acknowledged and dropped too. faust does the same after creating a topic. Both
        # producers: ours writes the outputs, faust's the story changelog.
        if self.producer is not None:
            await refresh_metadata(self.producer)
        faust_producer: Any = self.app.producer  # faust's aiokafka driver Producer
        with contextlib.suppress(NotReady):
            await refresh_metadata(faust_producer._ensure_producer())

    async def _prepare_join(self, consumer: Any) -> None:
        """Before each group join, in the consumer's thread: see core.kafka.prepare_join."""
        await prepare_join(self.settings, consumer, [self.topics.news_raw])

    async def _on_story_event(self, event: Any) -> None:
        # Changelog records read back (recovery, or another worker's writes) feed the LSH index.
        self.stories.load(str(event.key), event.value)

    def _assigned(self) -> list[Any]:
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:  # /readyz and /metrics answer while the worker boots
            return []
        return [tp for tp in assignment if tp.topic == self.topics.news_raw]

    def ready(self) -> bool:
        """Ready when this worker owns news.raw partitions and is not mid-rebalance."""
        return bool(self._assigned()) and not self.app.rebalancing

    async def _agent(self, stream: Any) -> None:
        """Take events in batches; prepare, finish and ack them in three overlapping steps.

        faust hands the agent one event per loop iteration, with its own bookkeeping and
        scheduling in between: tagging each event alone ran 2-4× slower than in a tight loop
        (the other code evicts the tagger's tables and regex programs from the CPU caches).
        `noack_take` collects up to `processor_batch_size` events, waiting at most
        `processor_batch_wait_seconds`, and leaves acking to us. A batch is prepared (in the
        tagging processes when there are some) while the previous one is finished here; the
        acker acks in order once Kafka has the outputs, which hides the produce round trip.
        The bounded queues are the backpressure (at most `processor_max_inflight` events
        finished but not yet acknowledged, counted in whole batches).
        """
        size = self.settings.processor_batch_size
        preparing: asyncio.Queue[Preparing] = asyncio.Queue(1)
        inflight: asyncio.Queue[Inflight] = asyncio.Queue(
            -(-self.settings.processor_max_inflight // size)  # whole batches, at least one
        )
        acker = asyncio.create_task(self._ack_in_order(inflight, stream))
        finisher = asyncio.create_task(self._finish_in_order(preparing, inflight))
        try:
            batches = stream.noack_take(size, within=self.settings.processor_batch_wait_seconds)
            async for events in batches:
                now = self.clock()
                job = asyncio.ensure_future(self._prepare([event.value for event in events], now))
                await preparing.put((events, now, job))
        finally:
            finisher.cancel()
            acker.cancel()

    async def _prepare(self, values: list[bytes | None], now: datetime) -> list[Preparation]:
        if self.pool is not None:
            return await self.pool.prepare(values, now)
        tag, version = self.tag, self.tagger_version
        return [prepare(value, tag=tag, tagger_version=version, now=now) for value in values]

    async def _finish_in_order(
        self, preparing: asyncio.Queue[Preparing], inflight: asyncio.Queue[Inflight]
    ) -> None:
        """Stories are assigned in stream order: one batch at a time, as they were taken."""
        while True:
            events, now, job = await preparing.get()
            try:
                outcomes = self._finish(events, await job, now)
                futures = await self._deliver(outcomes)
            # Nothing of this batch was acked: crash, and its partitions resume from the commit.
            except Exception as exc:
                log.error("processing failed, stopping the worker: %r", exc)
                await self.app.crash(exc)
                return
            await inflight.put((events, outcomes, futures))

    def _finish(
        self, events: list[Any], prepared: list[Preparation], now: datetime
    ) -> list[Outcome]:
        outcomes = []
        for event, done in zip(events, prepared, strict=True):
            message = event.message
            source = Source(message.topic, message.partition, message.offset, message.key)
            outcome = finish(
                done, event.value, source, topics=self.topics, stories=self.stories, now=now
            )
            outcomes.append(outcome)
        return outcomes

    async def _ack_in_order(self, inflight: asyncio.Queue[Inflight], stream: Any) -> None:
        while True:
            # Take everything queued at once: one wait for the lot, not a wake-up per batch.
            batches = [await inflight.get()]
            while not inflight.empty():
                batches.append(inflight.get_nowait())
            try:
                await asyncio.gather(*(f for _, _, futures in batches for f in futures))
            # A lost delivery must not be acked, and a stuck acker would stall every commit:
            # crash the worker so its partitions (from the last commit) move to another.
            except Exception as exc:
                log.error("output not delivered, stopping the worker: %r", exc)
                await self.app.crash(exc)
                return
            acknowledged = time.monotonic()
            for events, outcomes, _ in batches:
                for event, outcome in zip(events, outcomes, strict=True):
                    self.metrics.record(outcome)
                    received = event.message.time_in
                    if received is not None:
                        self.metrics.latency.observe(max(0.0, acknowledged - received))
                    await stream.ack(event)


class OutputProducer(Service):
    """The processor's own output producer: started before the app, stopped (flushed) after it."""

    def __init__(self, processor: Processor, **kwargs: Any) -> None:
        self.processor = processor
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        # aiokafka binds a producer to the running loop: it is built here, not with the app
        producer = make_producer(self.processor.settings, "processor", max_batch_size=256 * 1024)
        await producer.start()
        self.processor.producer = producer

    async def on_stop(self) -> None:
        producer, self.processor.producer = self.processor.producer, None
        if producer is not None:
            await producer.stop()  # sends what is queued first


class TaggingProcesses(Service):
    """The processor's tagging pool: started (warm) before the app, shut down after it."""

    def __init__(self, processor: Processor, processes: int, **kwargs: Any) -> None:
        self.processor = processor
        self.processes = processes
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        processor = self.processor
        settings = processor.settings
        pool = TaggingPool(
            self.processes,
            processor.tagger_version,
            processor.tag,
            on_restart=processor.metrics.tagging_restarts.inc,
            timeout=settings.processor_tagging_timeout_seconds,
        )
        await pool.warm_up()
        processor.pool = pool

    async def on_stop(self) -> None:
        pool, self.processor.pool = self.processor.pool, None
        if pool is not None:
            pool.close()


class OpsService(Service):
    """Runs the OpsServer inside the faust worker's event loop and lifecycle."""

    def __init__(self, ops: OpsServer, **kwargs: Any) -> None:
        self.ops = ops
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        await self.ops.start()

    async def on_stop(self) -> None:
        await self.ops.stop()


def run_worker(
    settings: ProcessorSettings,
    *,
    tag: TagFunction = tag_text,
    tagger_version: str = TAGGER_VERSION,
) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; returns the exit code."""
    processes = tagging_processes(settings.processor_tagging_processes)
    if tag is tag_text and not processes:
        # Compile the rules (~1.5 s with the Hyperscan prefilter) before joining the group, not
        # on the first record with the event loop blocked (tagging processes warm themselves).
        default_tagger()
    registry = new_registry("processor")
    processor = Processor(settings, registry, tag=tag, tagger_version=tagger_version)
    ops = OpsServer(registry, settings.metrics_host, settings.metrics_port, ready=processor.ready)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(
        processor.app,
        OpsService(ops),
        *([] if settings.processor_exactly_once else [OutputProducer(processor)]),
        *([TaggingProcesses(processor, processes)] if processes else []),
        loop=loop,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    # faust's progress spinner sets the root logger to DEBUG when the level is WARNING or above,
    # which builds a log record for every message sent; we never show the spinner anyway.
    worker.spinner = None
    log.info(
        "processor %s: %s → %s, %s, metrics on %s",
        settings.app_id,
        settings.topics.news_raw,
        settings.topics.news_tagged,
        f"{processes} tagging process(es)" if processes else "tagging in the worker's process",
        ops.url,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exited:  # mode's worker always leaves through SystemExit
        return int(exited.code or 0)
    return 0
