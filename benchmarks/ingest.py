"""Ingest benchmark: the official SDK against `chatlake ingest`, with two baselines.

    python benchmarks/ingest.py [--scale 1.0] [--sustain-s 60] [--json]

Measured in one run, on this machine:

- throughput (records/s, MB/s) for single records and batches of 100 and 1000,
  against chatlake and against an ack-only server (the transport limit: the
  same SDK and gRPC, no decoding or storage);
- direct deltalake appends of the same rows in large batches (the storage limit);
- ack latency p50/p99 at a fixed offered load of 5,000 records/s;
- time to table p50/p99: record created -> visible to a query of the table;
- server RSS at start and end, and over a sustained run.

Each chatlake figure is printed with its ratio to the baseline it is bound by.
Servers run as child processes on 127.0.0.1 with ports the OS picks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = "main.bench.chat"
COLUMNS = (
    "telemetry_id STRING NOT NULL, user_message STRING, assistant_message STRING, "
    "response_time_ms BIGINT, created_us BIGINT, ingestion_time TIMESTAMP"
)
PROPS = {"chatlake.ingestion_time": "ingestion_time"}
RECORD_BYTES = 1024
TTT_FIRST_ID = 10**9  # ids of the time-to-table run, above every other run's


# ------------------------------------------------------------- the ack-only server


def serve_ack_only() -> None:
    """A Zerobus server that acks every message at once and stores nothing."""
    import grpc

    sys.path.insert(0, str(ROOT / "src"))
    from chatlake.ingest import zerobus_pb2 as pb
    from chatlake.ingest import zerobus_pb2_grpc

    class AckOnly(zerobus_pb2_grpc.ZerobusServicer):
        async def EphemeralStream(self, request_iterator, context):  # noqa: N802
            await context.send_initial_metadata(())
            first = await context.read()
            if first is grpc.aio.EOF:
                return
            await context.write(
                pb.EphemeralStreamResponse(
                    create_stream_response=pb.CreateIngestStreamResponse(
                        stream_id=uuid.uuid4().hex
                    )
                )
            )
            while (request := await context.read()) is not grpc.aio.EOF:
                kind = request.WhichOneof("payload")
                offset = getattr(request, kind).offset_id
                await context.write(
                    pb.EphemeralStreamResponse(
                        ingest_record_response=pb.IngestRecordResponse(
                            durability_ack_up_to_offset=offset
                        )
                    )
                )

    async def main() -> None:
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)]
        )
        zerobus_pb2_grpc.add_ZerobusServicer_to_server(AckOnly(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(
            f"ack-only listening on http://127.0.0.1:{port}",
            file=sys.stderr,
            flush=True,
        )
        await server.wait_for_termination()

    asyncio.run(main())


# ------------------------------------------------------------- processes


class Child:
    """A server child process whose endpoint is read from its stderr.

    It gets SIGTERM when the benchmark dies, however it dies. Start it from
    the main thread: the signal comes when the starting thread ends.
    """

    def __init__(self, argv: list[str], pattern: str) -> None:
        from chatlake.child_processes import die_with_parent

        # A benchmark killed (even by SIGKILL) must not leave its servers running.
        self.process = subprocess.Popen(
            argv,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=die_with_parent(),
        )
        self.endpoint = self._wait_endpoint(re.compile(pattern))
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_endpoint(self, pattern: re.Pattern) -> str:
        for line in self.process.stderr:
            match = pattern.search(line)
            if match:
                return match.group(1)
        raise SystemExit(f"server exited early: {self.process.args}")

    def _drain(self) -> None:
        for _ in self.process.stderr:
            pass

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def cpu_s(self) -> float:
        """User plus system CPU seconds of the child so far, all threads."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (name)"
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)


# ------------------------------------------------------------- records


def chat_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="bench_chat.proto", package="bench", syntax="proto2"
    )
    message = file.message_type.add(name="Chat")
    fields = [("telemetry_id", fdp.TYPE_STRING, fdp.LABEL_REQUIRED)] + [
        (name, kind, fdp.LABEL_OPTIONAL)
        for name, kind in (
            ("user_message", fdp.TYPE_STRING),
            ("assistant_message", fdp.TYPE_STRING),
            ("response_time_ms", fdp.TYPE_INT64),
            ("created_us", fdp.TYPE_INT64),
        )
    ]
    for number, (name, kind, label) in enumerate(fields, start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bench.Chat"))


def make_records(chat, count: int, start: int = 0) -> list[bytes]:
    text = "How do I stream chatbot telemetry into Delta Lake? " * 20
    user, answer = text[:400], text[:560]
    return [
        chat(
            telemetry_id=f"{start + i:012d}",
            user_message=user,
            assistant_message=answer,
            response_time_ms=i % 5000,
            created_us=time.time_ns() // 1000,
        ).SerializeToString()
        for i in range(count)
    ]


# ------------------------------------------------------------- measurements


def throughput(open_stream, records: list[bytes], batch: int) -> tuple[float, float]:
    """(records/s, MB/s) for sending all records and flushing."""
    stream = open_stream()
    size = sum(len(r) for r in records)
    started = time.perf_counter()
    if batch == 1:
        for record in records:
            stream.ingest_record_offset(record)
    else:
        for i in range(0, len(records), batch):
            stream.ingest_records_offset(records[i : i + batch])
    stream.flush()
    elapsed = time.perf_counter() - started
    stream.close()
    return len(records) / elapsed, size / elapsed / 1e6


def costed(server: Child, open_stream, records: list[bytes], batch: int) -> tuple:
    """throughput() plus the server's CPU microseconds per record."""
    before = server.cpu_s()
    rate, mb_s = throughput(open_stream, records, batch)
    return rate, mb_s, (server.cpu_s() - before) / len(records) * 1e6


def ack_latency(open_stream_with_callback, chat, rate: int, seconds: float):
    """p50 and p99 ack latency (ms) at a paced offered load.

    The load is offered as batches of 50 records every 10 ms (5,000 records/s):
    a Python loop sending single records at that rate would measure the
    client's own queueing, not the server.
    """
    per_batch = 50
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}

    def on_ack(offset: int) -> None:
        acked[offset] = time.perf_counter()

    stream = open_stream_with_callback(on_ack)
    batches = int(rate * seconds) // per_batch
    records = make_records(chat, per_batch)
    started = time.perf_counter()
    for i in range(batches):
        delay = started + i * per_batch / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        offset = stream.ingest_records_offset(records)
        sent[offset] = time.perf_counter()
    stream.flush()
    stream.close()
    latencies = sorted((acked[o] - t) * 1000 for o, t in sent.items() if o in acked)
    return percentile(latencies, 50), percentile(latencies, 99), len(latencies)


def time_to_table(open_stream, chat, location: str, rate: int, seconds: float):
    """p50/p99 seconds from record creation to being visible in the table."""
    stream = open_stream()
    count = int(rate * seconds)
    created: list[float] = []
    visible: list[float | None] = [None] * count
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or any(v is None for v in visible[: len(created)]):
            rows = table_rows(location)
            now = time.time()
            for i in range(min(rows, len(created))):
                if visible[i] is None:
                    visible[i] = now
            if rows >= count:
                return
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        created.append(time.time())
        stream.ingest_record_offset(make_records(chat, 1, start=TTT_FIRST_ID + i)[0])
    stream.flush()
    done.set()
    poller.join(60)
    stream.close()
    deltas = sorted(v - c for v, c in zip(visible, created, strict=True) if v)
    return percentile(deltas, 50), percentile(deltas, 99)


def table_rows(location: str) -> int:
    """Rows of the time-to-table run (their ids start at TTT_FIRST_ID)."""
    import deltalake
    import pyarrow.dataset as ds

    try:
        dataset = deltalake.DeltaTable(location).to_pyarrow_dataset()
    except deltalake.exceptions.TableNotFoundError:
        return 0
    return dataset.count_rows(filter=ds.field("telemetry_id") >= f"{TTT_FIRST_ID:012d}")


def deltalake_limit(chat, count: int, batch: int, directory: Path) -> float:
    """Rows/s appending the same rows to a Delta table directly, in large batches."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from chatlake.types import arrow_schema, parse_columns

    schema = arrow_schema(parse_columns(COLUMNS))
    records = [chat.FromString(r) for r in make_records(chat, batch)]
    now = time.time_ns() // 1000
    columns = {
        "telemetry_id": [r.telemetry_id for r in records],
        "user_message": [r.user_message for r in records],
        "assistant_message": [r.assistant_message for r in records],
        "response_time_ms": [r.response_time_ms for r in records],
        "created_us": [r.created_us for r in records],
        "ingestion_time": [now] * batch,
    }
    table = pa.table(
        [pa.array(columns[f.name], type=f.type) for f in schema], schema=schema
    )
    started = time.perf_counter()
    for _ in range(max(1, count // batch)):
        write_deltalake(str(directory), table, mode="append")
    return max(1, count // batch) * batch / (time.perf_counter() - started)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# ------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply record counts (default 1.0)"
    )
    parser.add_argument(
        "--sustain-s",
        type=float,
        default=60.0,
        help="length of the sustained run for RSS (default 60 s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--ack-only-server", action="store_true", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.ack_only_server:
        serve_ack_only()
        return
    # Stopped by SIGTERM, the run still stops its servers and deletes its
    # temporary directory (SIGKILL leaves the directory; the servers die anyway).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="chatlake-bench-") as tmp:
        results = run(Path(tmp), args.scale, args.sustain_s)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)


def _exit_on_sigterm(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def run(tmp: Path, scale: float, sustain_s: float) -> dict:
    from zerobus import AckCallback, StreamConfigurationOptions, TableProperties
    from zerobus.sdk.sync import ZerobusSdk

    from chatlake.catalog.client import CatalogClient
    from chatlake.catalog.config import CatalogSettings
    from chatlake.catalog.server import serve_in_thread
    from chatlake.types import parse_columns

    chat = chat_class()
    data_dir = tmp / "data"
    counts = {
        1: int(20_000 * scale),
        100: int(100_000 * scale),
        1000: int(200_000 * scale),
    }
    results: dict = {"records": counts, "record_bytes": len(make_records(chat, 1)[0])}
    with serve_in_thread(CatalogSettings(data_dir=data_dir, port=0)) as catalog:
        admin = CatalogClient.local_admin(catalog.url, data_dir)
        admin.create_catalog("main")
        admin.create_schema("main", "bench")
        admin.create_table(TABLE, parse_columns(COLUMNS), properties=PROPS)
        location = admin.get_table(TABLE)["storage_location"]
        principal = admin.create_principal("bench")
        admin.grant("USE CATALOG", "catalog", "main", "bench")
        for privilege in ("USE SCHEMA", "SELECT", "MODIFY"):
            admin.grant(privilege, "schema", "main.bench", "bench")
        credentials = (principal["client_id"], principal["client_secret"])

        def opener(endpoint: str):
            sdk = ZerobusSdk(endpoint, catalog.url)

            def open_stream(callback=None):
                options = StreamConfigurationOptions(
                    max_inflight_records=200_000, ack_callback=callback
                )
                props = TableProperties(TABLE, chat.DESCRIPTOR)
                return sdk.create_stream(*credentials, props, options)

            return open_stream

        class Callback(AckCallback):
            def __init__(self, function):
                super().__init__()
                self.function = function

            def on_ack(self, offset):
                self.function(offset)

        ack_only = Child(
            [sys.executable, __file__, "--ack-only-server"], r"listening on (\S+)"
        )
        try:
            transport = opener(ack_only.endpoint)
            results["transport"] = {
                str(b): costed(ack_only, transport, make_records(chat, n), b)
                for b, n in counts.items()
            }
            results["transport_ack_ms"] = ack_latency(
                lambda f: transport(Callback(f)), chat, 5000, 4 * scale
            )
        finally:
            ack_only.stop()

        profile = os.environ.get("CHATLAKE_BENCH_PROFILE")  # a cProfile output path
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        server = Child(
            [
                sys.executable,
                *prefix,
                "-m",
                "chatlake",
                "ingest",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
                "--catalog-url",
                catalog.url,
                "--no-metrics",
                "--log-level",
                "WARNING",
            ],
            r"ingest listening on (\S+)",
        )
        try:
            results["rss_start_mb"] = server.rss_mb()
            chatlake = opener(server.endpoint)
            results["chatlake"] = {
                str(b): costed(server, chatlake, make_records(chat, n), b)
                for b, n in counts.items()
            }
            results["chatlake_ack_ms"] = ack_latency(
                lambda f: chatlake(Callback(f)), chat, 5000, 4 * scale
            )
            results["time_to_table_s"] = time_to_table(
                chatlake, chat, location, 500, 6 * scale
            )
            results["rss_after_runs_mb"] = server.rss_mb()
            results["sustained"] = sustained(chatlake, chat, server, sustain_s)
            results["rss_end_mb"] = server.rss_mb()
        finally:
            server.stop()
        admin.close()
    results["deltalake_rows_per_s"] = deltalake_limit(
        chat, int(200_000 * scale), 50_000, tmp / "direct"
    )
    return results


def sustained(open_stream, chat, server: Child, seconds: float) -> dict:
    """RSS samples over a run at 2,000 records/s in batches of 100."""
    if seconds <= 0:
        return {}
    stream = open_stream()
    samples = []
    started = time.perf_counter()
    sent = 0
    batch = make_records(chat, 100)
    while (elapsed := time.perf_counter() - started) < seconds:
        stream.ingest_records_offset(batch)
        sent += 100
        if sent % 10_000 == 0:
            samples.append((round(elapsed), round(server.rss_mb(), 1)))
        delay = started + sent / 2000 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    stream.flush()
    stream.close()
    return {"seconds": seconds, "records": sent, "rss_mb_samples": samples}


def report(results: dict) -> None:
    print(f"record size {results['record_bytes']} bytes; counts {results['records']}")
    direct = results["deltalake_rows_per_s"]
    print(f"storage limit (direct deltalake appends): {direct:,.0f} rows/s")
    for batch in ("1", "100", "1000"):
        ours, limit = results["chatlake"][batch], results["transport"][batch]
        print(
            f"batch {batch:>4}: chatlake {ours[0]:>10,.0f} rec/s {ours[1]:7.1f} MB/s | "
            f"ack-only {limit[0]:>10,.0f} rec/s | "
            f"{ours[0] / limit[0]:5.0%} of transport, "
            f"{ours[0] / direct:5.0%} of storage | server CPU "
            f"{ours[2]:.1f} us/rec (ack-only {limit[2]:.1f})"
        )
    ours, base = results["chatlake_ack_ms"], results["transport_ack_ms"]
    print(
        f"ack latency at 5,000 rec/s: p50 {ours[0]:.1f} ms p99 {ours[1]:.1f} ms "
        f"(ack-only p50 {base[0]:.1f} ms p99 {base[1]:.1f} ms; "
        f"ratio p50 {ours[0] / base[0]:.1f}x)"
    )
    p50, p99 = results["time_to_table_s"]
    print(f"time to table: p50 {p50:.2f} s p99 {p99:.2f} s")
    print(
        f"server RSS: start {results['rss_start_mb']:.0f} MB, after runs "
        f"{results['rss_after_runs_mb']:.0f} MB, end {results['rss_end_mb']:.0f} MB"
    )
    if results["sustained"]:
        samples = results["sustained"]["rss_mb_samples"]
        print(
            f"sustained {results['sustained']['seconds']:.0f} s: RSS samples {samples}"
        )


if __name__ == "__main__":
    os.environ.setdefault("CHATLAKE_LOG_LEVEL", "WARNING")
    main()
