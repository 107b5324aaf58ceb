"""Reference Spark Structured Streaming pipeline for the edge agent's Kafka topics.

Two streaming queries, each with its own checkpoint:

  events   reads every event topic (read_committed, with headers), dedupes on
           (gateway_id, store_id, seq), counts events per gateway/kind in event-time windows,
           aggregates sensor windows per asset and per fleet, and keeps the fleet twin table
           (latest state per gateway and asset).
  control  reads the aggregate topic, keeps the fleet's distribution of each watched sensor and
           publishes new high limits as signed control messages (Ed25519, contract A) to the
           agents' control topic.

Late data by design: Spark's watermark is global, so a gateway that returns after an outage (or a
replay) would have every record older than it silently dropped by a stateful streaming operator.
This pipeline has no stateful streaming operator. Each micro-batch is merged in `foreachBatch` into
an idempotent sink (SQLite here: one transaction per batch that records the batch id with its
effects, and primary keys on the event identity). The watermark (max event time - --watermark)
only classifies rows: older rows are merged into the windows they belong to and counted as late,
never dropped. What cannot be placed (unparseable value, unknown schema version, older than the
dedupe memory) is counted per reason in `unplaced`.

Run: examples/spark/run.sh (local) or spark-submit (README.md). Stop with SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

SCHEMA_VERSION = 2
KINDS = ["aggregate", "anomaly", "action", "audit", "alarm", "capture", "twin"]

ENVELOPE = T.StructType(
    [
        T.StructField("schema_version", T.IntegerType()),
        T.StructField("gateway_id", T.StringType()),
        T.StructField("store_id", T.StringType()),
        T.StructField("seq", T.LongType()),
        T.StructField("kind", T.StringType()),
        T.StructField("key", T.StringType()),
        T.StructField("event_time", T.LongType()),
        T.StructField("ingest_time", T.LongType()),
        T.StructField("replay", T.BooleanType()),
    ]
)

SINK_DDL = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS batches (query TEXT, batch_id INTEGER, committed_at INTEGER, rows INTEGER,
  new_events INTEGER, duplicates INTEGER, late INTEGER, unplaced INTEGER, watermark INTEGER,
  latency_max_ms INTEGER, latency_p50_ms INTEGER, PRIMARY KEY (query, batch_id));
CREATE TABLE IF NOT EXISTS seen (gateway_id TEXT, store_id TEXT, seq INTEGER, kind TEXT, event_time INTEGER,
  ingest_time INTEGER, counted_at INTEGER, late INTEGER, PRIMARY KEY (gateway_id, store_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_windows (gateway_id TEXT, kind TEXT, window_start INTEGER, events INTEGER,
  late INTEGER, PRIMARY KEY (gateway_id, kind, window_start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS asset_windows (gateway_id TEXT, asset TEXT, sensor TEXT, window_start INTEGER,
  windows INTEGER, readings INTEGER, sum_mean REAL, min REAL, max REAL,
  PRIMARY KEY (gateway_id, asset, sensor, window_start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fleet_windows (asset TEXT, sensor TEXT, window_start INTEGER, windows INTEGER,
  readings INTEGER, sum_mean REAL, min REAL, max REAL, PRIMARY KEY (asset, sensor, window_start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS twin (gateway_id TEXT, asset TEXT, updated_at INTEGER, state TEXT, health REAL,
  payload TEXT, PRIMARY KEY (gateway_id, asset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unplaced (reason TEXT PRIMARY KEY, count INTEGER);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS fleet_samples (gateway_id TEXT, asset TEXT, sensor TEXT, window_start INTEGER,
  mean REAL, PRIMARY KEY (gateway_id, asset, sensor, window_start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, batch_id INTEGER, gateway_id TEXT, detector TEXT,
  param TEXT, value REAL, computed_at INTEGER, envelope TEXT, published_at INTEGER);
"""


def parse_duration(text: str) -> int:
    """'500ms', '10s', '5m', '1h', '7d' -> milliseconds."""
    for unit, ms in (("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return int(float(text[: -len(unit)]) * ms)
    return int(text)


def now_ms() -> int:
    return int(time.time() * 1000)


def open_sink(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.executescript(SINK_DDL)
    return db


def kafka_source(spark: SparkSession, args: argparse.Namespace, topics: list[str]) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        # Only committed transactions: the agent writes each page and its cursor in one transaction.
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", str(args.max_offsets))
    )
    raw = reader.load()
    header = lambda name: F.expr(  # noqa: E731
        f"CAST(element_at(filter(headers, h -> h.key = '{name}'), 1).value AS STRING)"
    )
    return raw.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        header("schema_version").alias("h_schema_version"),
        header("gateway_id").alias("h_gateway_id"),
        F.from_json(F.col("value").cast("string"), ENVELOPE).alias("e"),
        F.get_json_object(F.col("value").cast("string"), "$.payload").alias("payload"),
    ).select("topic", "partition", "offset", "h_schema_version", "h_gateway_id", "e.*", "payload")


def add_unplaced(db: sqlite3.Connection, reason: str, n: int) -> None:
    if n > 0:
        db.execute(
            "INSERT INTO unplaced VALUES (?, ?) ON CONFLICT(reason) DO UPDATE SET count = count + excluded.count",
            (reason, n),
        )


def get_state(db: sqlite3.Connection, name: str, default: int) -> int:
    row = db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
    return row[0] if row else default


def put_state(db: sqlite3.Connection, name: str, value: int) -> None:
    db.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))


class EventsSink:
    """foreachBatch of the events query: one SQLite transaction per micro-batch, idempotent."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.window = parse_duration(args.window)
        self.watermark_delay = parse_duration(args.watermark)
        self.dedupe_ttl = parse_duration(args.dedupe_ttl)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = now_ms()
        valid = F.col("gateway_id").isNotNull() & F.col("store_id").isNotNull() & F.col("seq").isNotNull()
        valid = valid & F.col("event_time").isNotNull() & F.col("kind").isin(KINDS)
        version = F.coalesce(F.col("h_schema_version"), F.col("schema_version").cast("string"))
        is_agg = F.col("kind") == "aggregate"
        # One Spark job per batch, no shuffle: dedupe happens in the sink (primary key), within the
        # batch as across batches. maxOffsetsPerTrigger bounds what is collected to the driver.
        rows = batch.select(
            F.when(~valid, "invalid_value")
            .when(version != str(SCHEMA_VERSION), "other_schema_version")
            .alias("reject"),
            "gateway_id",
            "store_id",
            "seq",
            "kind",
            "key",
            "event_time",
            "ingest_time",
            F.when(is_agg, F.get_json_object("payload", "$.sensor")).alias("sensor"),
            F.when(is_agg, F.get_json_object("payload", "$.mean").cast("double")).alias("mean"),
            F.when(is_agg, F.get_json_object("payload", "$.count").cast("long")).alias("readings"),
            F.when(is_agg, F.get_json_object("payload", "$.type")).alias("agg_type"),
            F.when(F.col("kind") == "twin", F.col("payload")).alias("twin"),
        ).collect()
        rejects: dict[str, int] = {}
        for r in rows:
            if r.reject:
                rejects[r.reject] = rejects.get(r.reject, 0) + 1
        db = open_sink(self.args.sink)
        try:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM batches WHERE query = 'events' AND batch_id = ?", (batch_id,)).fetchone():
                db.execute("ROLLBACK")
                log(f"events batch {batch_id}: already merged (run again after a restart); nothing to do")
                return
            watermark = get_state(db, "watermark", -(2**62))
            max_event = get_state(db, "max_event_time", -(2**62))
            horizon = watermark - self.dedupe_ttl
            committed_at = now_ms()
            new = dup = late = too_old = 0
            latencies: list[int] = []
            ew: dict[tuple, list[int]] = {}
            aw: dict[tuple, list[float]] = {}
            fw: dict[tuple, list[float]] = {}
            for r in rows:
                if r.reject:
                    continue
                if r.event_time < horizon:
                    too_old += 1  # the dedupe memory no longer covers it: counting it could count it twice
                    continue
                is_late = r.event_time < watermark
                cur = db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.gateway_id, r.store_id, r.seq, r.kind, r.event_time, r.ingest_time, committed_at, int(is_late)),
                )
                if cur.rowcount == 0:
                    dup += 1
                    continue
                new += 1
                late += int(is_late)
                max_event = max(max_event, r.event_time)
                if not is_late and r.ingest_time:
                    latencies.append(committed_at - r.ingest_time)
                ws = r.event_time - r.event_time % self.window
                e = ew.setdefault((r.gateway_id, r.kind, ws), [0, 0])
                e[0] += 1
                e[1] += int(is_late)
                if r.kind == "aggregate" and r.agg_type is None and r.mean is not None:
                    for table, k in ((aw, (r.gateway_id, r.key, r.sensor, ws)), (fw, (r.key, r.sensor, ws))):
                        a = table.setdefault(k, [0, 0, 0.0, math.inf, -math.inf])
                        a[0] += 1
                        a[1] += r.readings or 0
                        a[2] += r.mean
                        a[3] = min(a[3], r.mean)
                        a[4] = max(a[4], r.mean)
                if r.kind == "twin" and r.twin:
                    t = json.loads(r.twin)
                    db.execute(
                        "INSERT INTO twin VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gateway_id, asset) DO UPDATE SET "
                        "updated_at = excluded.updated_at, state = excluded.state, health = excluded.health, "
                        "payload = excluded.payload WHERE excluded.updated_at >= twin.updated_at",
                        (r.gateway_id, r.key, t.get("updated_at", r.event_time), t.get("state"), t.get("health"), r.twin),
                    )
            db.executemany(
                "INSERT INTO event_windows VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "events = events + excluded.events, late = late + excluded.late",
                [(*k, v[0], v[1]) for k, v in ew.items()],
            )
            merge = (
                "ON CONFLICT DO UPDATE SET windows = windows + excluded.windows, readings = readings + excluded.readings, "
                "sum_mean = sum_mean + excluded.sum_mean, min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
            )
            db.executemany(f"INSERT INTO asset_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {merge}", [(*k, *v) for k, v in aw.items()])
            db.executemany(f"INSERT INTO fleet_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?) {merge}", [(*k, *v) for k, v in fw.items()])
            for reason, n in rejects.items():
                add_unplaced(db, reason, n)
            add_unplaced(db, "older_than_dedupe_ttl", too_old)
            # The watermark moves after the batch: rows of this batch were judged against the old one.
            put_state(db, "max_event_time", max_event)
            put_state(db, "watermark", max(watermark, max_event - self.watermark_delay))
            latencies.sort()
            db.execute(
                "INSERT INTO batches VALUES ('events', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    committed_at,
                    len(rows),
                    new,
                    dup,
                    late,
                    sum(rejects.values()) + too_old,
                    max(watermark, max_event - self.watermark_delay),
                    latencies[-1] if latencies else None,
                    latencies[len(latencies) // 2] if latencies else None,
                ),
            )
            # Bounded dedupe memory: identities older than the TTL behind the watermark are forgotten.
            db.execute("DELETE FROM seen WHERE event_time < ?", (watermark - self.dedupe_ttl,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        log(
            f"events batch {batch_id}: {len(rows)} rows, {new} new, {dup} duplicates, {late} late (merged), "
            f"{too_old} too old, {now_ms() - started} ms"
        )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sign_control(body: dict, key_pem: bytes, key_id: str) -> str:
    """Contract A: {"v":1,"key_id","payload":b64url(JSON body bytes),"sig":b64url(Ed25519(payload bytes))}."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return json.dumps(
        {"v": 1, "key_id": key_id, "payload": b64url(payload), "sig": b64url(key.sign(payload))}, separators=(",", ":")
    )


class ControlSink:
    """foreachBatch of the control query.

    Exactly once, by an idempotent keyed scheme: in one SQLite transaction per batch id, the batch's
    samples are merged and every new setpoint is written to the outbox as a signed message whose id
    is derived from (batch id, gateway, detector). Only then is the outbox published to Kafka, and
    each row marked published. A re-run of a batch (crash anywhere) publishes the same bytes with
    the same id again, and the agent applies a message id once (it remembers applied ids until
    they expire), so a setpoint is applied exactly once.
    """

    def __init__(self, args: argparse.Namespace, spark: SparkSession):
        self.args = args
        self.spark = spark
        self.watch: dict[tuple[str, str], tuple[str, str]] = {}
        for spec in args.setpoint:
            # asset/sensor=detector:param
            target, det = spec.split("=", 1)
            asset, sensor = target.split("/", 1)
            detector, param = (det.split(":", 1) + ["setpoint"])[:2]
            self.watch[(asset, sensor)] = (detector, param)
        lo, hi = (float(x) for x in args.bounds.split(":"))
        self.bounds = (lo, hi)
        self.key_pem = open(args.signing_key, "rb").read() if args.signing_key else None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = (
            batch.where((F.col("kind") == "aggregate") & F.col("gateway_id").isNotNull())
            .select(
                "gateway_id",
                F.col("key").alias("asset"),
                F.get_json_object("payload", "$.sensor").alias("sensor"),
                F.get_json_object("payload", "$.window_start").cast("long").alias("window_start"),
                F.get_json_object("payload", "$.mean").cast("double").alias("mean"),
                F.get_json_object("payload", "$.type").alias("type"),
            )
            .where(F.col("type").isNull() & F.col("mean").isNotNull())
            .dropDuplicates(["gateway_id", "asset", "sensor", "window_start"])
            .collect()
        )
        db = open_sink(self.args.sink)
        try:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM batches WHERE query = 'control' AND batch_id = ?", (batch_id,)).fetchone():
                db.execute("ROLLBACK")
                log(f"control batch {batch_id}: already merged (run again after a restart); publishing what it left unpublished")
            else:
                self.merge(db, rows, batch_id)
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        try:
            self.publish(db)
        finally:
            db.close()

    def merge(self, db: sqlite3.Connection, rows: list, batch_id: int) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO fleet_samples VALUES (?, ?, ?, ?, ?)",
            [(r.gateway_id, r.asset, r.sensor, r.window_start, r.mean) for r in rows if (r.asset, r.sensor) in self.watch],
        )
        computed_at = now_ms()
        made = 0
        # The distribution is that of the last --history of event time; older samples are forgotten.
        newest = db.execute("SELECT MAX(window_start) FROM fleet_samples").fetchone()[0] or 0
        db.execute("DELETE FROM fleet_samples WHERE window_start < ?", (newest - parse_duration(self.args.history),))
        for (asset, sensor), (detector, param) in self.watch.items():
            # Healthy fleet: gateways whose twin of this asset is running (no latched trip).
            samples = db.execute(
                "SELECT s.gateway_id, s.mean FROM fleet_samples s LEFT JOIN twin t "
                "ON t.gateway_id = s.gateway_id AND t.asset = s.asset WHERE s.asset = ? AND s.sensor = ? "
                "AND COALESCE(t.state, 'running') = 'running'",
                (asset, sensor),
            ).fetchall()
            if len(samples) < self.args.min_samples:
                continue
            means = [m for _, m in samples]
            mu = sum(means) / len(means)
            sd = math.sqrt(sum((m - mu) ** 2 for m in means) / max(1, len(means) - 1))
            value = round(min(self.bounds[1], max(self.bounds[0], mu + self.args.sigmas * sd)), 1)
            gateways = sorted({g for g, _ in samples})
            for gw in gateways:
                last = db.execute(
                    "SELECT value FROM outbox WHERE gateway_id = ? AND detector = ? AND param = ? "
                    "ORDER BY computed_at DESC LIMIT 1",
                    (gw, detector, param),
                ).fetchone()
                if last and abs(last[0] - value) < self.args.hysteresis:
                    continue
                msg_id = f"{self.args.signer}-b{batch_id}-{gw}-{detector}-{param}"
                body = {
                    "id": msg_id,
                    "gateway_id": gw,
                    "issued_at": rfc3339(computed_at),
                    "expires_at": rfc3339(computed_at + parse_duration(self.args.lifetime)),
                    "by": self.args.signer,
                    "op": "set",
                    "detector": detector,
                    "params": {param: value},
                }
                if self.args.valid_for:
                    body["valid_for"] = parse_duration(self.args.valid_for)
                if not self.key_pem:
                    raise SystemExit("--signing-key is needed to publish setpoints")
                envelope = sign_control(body, self.key_pem, self.args.key_id)
                db.execute(
                    "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    (msg_id, batch_id, gw, detector, param, value, computed_at, envelope),
                )
                made += 1
        db.execute(
            "INSERT INTO batches (query, batch_id, committed_at, rows, new_events) VALUES ('control', ?, ?, ?, ?)",
            (batch_id, computed_at, len(rows), made),
        )
        if made:
            log(f"control batch {batch_id}: {made} setpoint message(s) signed")

    def publish(self, db: sqlite3.Connection, ids: list[str] | None = None) -> int:
        """Publishes unpublished outbox rows (or exactly `ids`, again) to the control topic."""
        if ids is None:
            pending = db.execute("SELECT id, gateway_id, envelope FROM outbox WHERE published_at IS NULL ORDER BY id").fetchall()
        else:
            marks = ",".join("?" * len(ids))
            pending = db.execute(f"SELECT id, gateway_id, envelope FROM outbox WHERE id IN ({marks})", ids).fetchall()
        if not pending:
            return 0
        started = now_ms()
        frame = self.spark.createDataFrame([(gw, env) for _, gw, env in pending], "key STRING, value STRING")
        (
            frame.write.format("kafka")
            .option("kafka.bootstrap.servers", self.args.brokers)
            .option("kafka.acks", "all")
            .option("kafka.enable.idempotence", "true")
            .option("topic", self.args.control_topic)
            .save()
        )
        at = now_ms()
        db.executemany("UPDATE outbox SET published_at = ? WHERE id = ?", [(at, i) for i, _, _ in pending])
        log(f"control: published {len(pending)} signed message(s) to {self.args.control_topic} in {at - started} ms")
        return len(pending)


def log(msg: str) -> None:
    print(f"[pipeline {datetime.now(timezone.utc).strftime('%H:%M:%S.%f')[:-3]}] {msg}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    p.add_argument("--prefix", default="edge.", help="the agents' sync.kafka.topic_prefix")
    p.add_argument("--checkpoint", default="./data/spark/checkpoint", help="checkpoint root (one folder per query)")
    p.add_argument("--sink", default="./data/spark/sink.db", help="SQLite sink file")
    p.add_argument("--master", default=os.environ.get("SPARK_MASTER"), help="default: spark-submit's, else local[2]")
    p.add_argument("--trigger", default="1 second")
    p.add_argument("--window", default="10s", help="event-time window of the counts")
    p.add_argument("--watermark", default="30s", help="live data is late when older than max event time minus this")
    p.add_argument("--dedupe-ttl", default="7d", help="identities are remembered this long behind the watermark")
    p.add_argument("--max-offsets", type=int, default=50_000, help="maxOffsetsPerTrigger")
    p.add_argument("--control-topic", help="publish setpoints here (enables the control query)")
    p.add_argument("--setpoint", action="append", default=[], help="asset/sensor=detector[:param], repeatable")
    p.add_argument("--sigmas", type=float, default=4.0, help="high limit = fleet mean + sigmas x std of window means")
    p.add_argument("--bounds", default="-1e9:1e9", help="min:max clamp, the bounds the gateways enforce (control.limits)")
    p.add_argument("--hysteresis", type=float, default=1.0, help="republish only when the limit moved this much")
    p.add_argument("--history", default="1h", help="event time of fleet data a limit is computed from")
    p.add_argument("--min-samples", type=int, default=20, help="windows of the healthy fleet before a limit is computed")
    p.add_argument("--lifetime", default="30m", help="expires_at - issued_at of a control message")
    p.add_argument("--valid-for", default="", help="valid_for of the message (needed for limits weaker than the file)")
    p.add_argument("--signing-key", help="Ed25519 private key (PEM, PKCS#8)")
    p.add_argument("--key-id", default="cloud-1")
    p.add_argument("--signer", default="spark-fleet")
    p.add_argument("--republish", default="", help="publish these outbox ids again (comma list) and exit")
    args = p.parse_args()

    builder = SparkSession.builder.appName("edge-agent-fleet")
    if args.master:
        builder = builder.master(args.master)
    elif not os.environ.get("SPARK_HOME") and "spark.master" not in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        builder = builder.master("local[2]")
    jars = os.environ.get("SPARK_KAFKA_JARS")
    if jars:
        builder = builder.config("spark.jars", jars)
    spark = (
        builder.config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    os.makedirs(os.path.dirname(os.path.abspath(args.sink)), exist_ok=True)
    open_sink(args.sink).close()

    if args.republish:
        db = open_sink(args.sink)
        n = ControlSink(args, spark).publish(db, args.republish.split(","))
        db.close()
        log(f"republished {n} message(s)")
        spark.stop()
        return

    topics = [f"{args.prefix}{k}" for k in KINDS]
    events = (
        kafka_source(spark, args, topics)
        .writeStream.queryName("events")
        .foreachBatch(EventsSink(args))
        .option("checkpointLocation", os.path.join(args.checkpoint, "events"))
        .trigger(processingTime=args.trigger)
        .start()
    )
    queries = [events]
    if args.control_topic:
        control = (
            kafka_source(spark, args, [f"{args.prefix}aggregate"])
            .writeStream.queryName("control")
            .foreachBatch(ControlSink(args, spark))
            .option("checkpointLocation", os.path.join(args.checkpoint, "control"))
            .trigger(processingTime=args.trigger)
            .start()
        )
        queries.append(control)
    log(f"running: {', '.join(q.name for q in queries)} (topics {args.prefix}*, sink {args.sink})")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    status_file = f"{args.sink}.status.json"
    while not stop.is_set():
        status = {}
        for q in queries:
            if q.exception():
                log(f"query {q.name} failed: {q.exception()}")
                stop.set()
                sys.exit(1)
            prog = q.lastProgress or {}
            dropped = sum(s.get("numRowsDroppedByWatermark", 0) for s in prog.get("stateOperators", []))
            if dropped:
                log(f"query {q.name}: {dropped} rows dropped by watermark")  # never expected: no stateful operators
            st = q.status
            status[q.name] = {
                "batch_id": prog.get("batchId"),
                "input_rows": prog.get("numInputRows"),
                "data_available": st["isDataAvailable"],
                "trigger_active": st["isTriggerActive"],
                "rows_dropped_by_watermark": dropped,
                "at": now_ms(),
            }
        # For operators and tests: whether each query has caught up with Kafka.
        with open(status_file + ".tmp", "w") as f:
            json.dump(status, f)
        os.replace(status_file + ".tmp", status_file)
        stop.wait(1)
    for q in queries:
        q.stop()
    spark.stop()


if __name__ == "__main__":
    main()
