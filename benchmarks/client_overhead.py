"""What telemetry costs a chat request: chatlake's track() against the blocking pattern.

    python benchmarks/client_overhead.py [--turns 2000] [--rate 200] [--sustain-s 10]
                                         [--json]

Measured in one run, against the same `chatlake ingest` child process per phase:

- track: ``client.track(turn)``;
- blocking: the pattern most guides show, one SDK stream and
  ``stream.ingest_record(turn).wait_for_ack()`` inside every request, retried up
  to three times when the error says the stream is closed.

Building the ChatTurn is the same for both and timed apart (``build_event``).

Both at ``--rate`` turns per second, p50 and p99 in microseconds, with the
server healthy and with the server rotating streams every 2 s. The ratio is
blocking / track. Then a sustained run: 5,000 events/s from this process for
``--sustain-s`` seconds, sampling this process's RSS and the spool depth each
second, and timing the final flush.

The catalog runs in a thread of this process, the ingest server as a child,
both on 127.0.0.1 with ports the OS picks.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from chatlake.catalog.client import CatalogClient  # noqa: E402
from chatlake.catalog.config import CatalogSettings  # noqa: E402
from chatlake.catalog.server import serve_in_thread  # noqa: E402
from chatlake.chat_tables import CHAT_EVENTS  # noqa: E402
from chatlake.telemetry import (  # noqa: E402
    TelemetryClient,
    TelemetryConfig,
    new_chat_turn,
)
from chatlake.types import parse_columns  # noqa: E402

TABLE = "main.bench.chat_events"
ROTATION_ARGS = ["--max-stream-age-s", "2", "--rotation-grace-s", "0.5"]
SUSTAINED_RATE = 5000
USER_MESSAGE = "How do I read the chat_events table from SQL?"
ASSISTANT_MESSAGE = "Query it with chatlake sql; rows arrive within seconds. " * 8


class IngestChild:
    """`chatlake ingest` as a child process; the endpoint is read from its log."""

    def __init__(self, data_dir: Path, catalog_url: str, extra: list[str]) -> None:
        argv = [
            sys.executable, "-m", "chatlake", "ingest",
            "--data-dir", str(data_dir), "--port", "0",
            "--catalog-url", catalog_url, "--no-metrics",
            "--log-level", "INFO", *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.endpoint = self._endpoint(re.compile(r"ingest listening on (\S+)"))
        threading.Thread(target=self._drain, daemon=True).start()

    def _endpoint(self, pattern: re.Pattern) -> str:
        for line in self.process.stderr:
            match = pattern.search(line)
            if match:
                return match.group(1)
        raise SystemExit("the ingest server exited before listening")

    def _drain(self) -> None:
        for _ in self.process.stderr:
            pass

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def percentiles_us(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(p99 * 1e6, 1),
        "max_us": round(ordered[-1] * 1e6, 1),
    }


def turn_fields(i: int) -> dict:
    return dict(
        session_id="bench",
        turn_index=i,
        user_message=USER_MESSAGE,
        assistant_message=ASSISTANT_MESSAGE,
        response_time_ms=850,
        model="demo",
    )


def paced(turns: int, rate: float):
    """Yields turn numbers at ``rate`` per second (the pause is the pacing)."""
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(turns):
        next_at += interval
        yield i
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def measure_track(config: TelemetryConfig, turns: int, rate: float) -> dict:
    client = TelemetryClient(config, handle_sigterm=False)
    samples, build = [], []
    for i in paced(turns, rate):
        started = time.perf_counter()
        turn = new_chat_turn(**turn_fields(i))
        built = time.perf_counter()
        client.track(turn)
        samples.append(time.perf_counter() - built)
        build.append(built - started)
    delivered = client.flush(60)
    metrics = client.metrics()
    client.close()
    return percentiles_us(samples) | {
        "build_event": percentiles_us(build),
        "delivered": delivered,
        "acked": metrics["acked"],
        "dropped": metrics["dropped_queue"] + metrics["dropped_spool"],
    }


def measure_blocking(config: TelemetryConfig, turns: int, rate: float) -> dict:
    from zerobus import TableProperties, ZerobusException
    from zerobus.sdk.sync import ZerobusSdk

    from chatlake.telemetry.events_pb2 import ChatTurn

    sdk = ZerobusSdk(config.server_endpoint, config.catalog_url)
    props = TableProperties(TABLE, ChatTurn.DESCRIPTOR)
    stream = sdk.create_stream(config.client_id, config.client_secret, props)
    samples, lost = [], 0
    for i in paced(turns, rate):
        turn = new_chat_turn(**turn_fields(i))
        started = time.perf_counter()
        for _attempt in range(3):
            try:
                stream.ingest_record(turn).wait_for_ack()
                break
            except ZerobusException as error:
                if "closed" not in str(error).lower():
                    raise
                stream = sdk.create_stream(
                    config.client_id, config.client_secret, props
                )
        else:
            lost += 1
        samples.append(time.perf_counter() - started)
    stream.close()
    return percentiles_us(samples) | {"lost": lost}


def measure_sustained(config: TelemetryConfig, seconds: float) -> dict:
    client = TelemetryClient(config, handle_sigterm=False)
    rss, depth = [rss_mb()], []
    burst = SUSTAINED_RATE // 100
    tracked, next_sample, samples = 0, time.monotonic() + 1, []
    for _ in paced(int(seconds * 100), 100):
        for _ in range(burst):
            turn = new_chat_turn(**turn_fields(tracked))
            started = time.perf_counter()
            client.track(turn)
            samples.append(time.perf_counter() - started)
            tracked += 1
        if time.monotonic() >= next_sample:
            next_sample += 1
            rss.append(rss_mb())
            depth.append(client.metrics()["spool_depth"])
    started = time.perf_counter()
    delivered = client.flush(120)
    flush_s = time.perf_counter() - started
    metrics = client.metrics()
    client.close()
    return {
        "tracked": tracked,
        "track": percentiles_us(samples),
        "dropped": metrics["dropped_queue"] + metrics["dropped_spool"],
        "acked": metrics["acked"],
        "delivered": delivered,
        "final_flush_s": round(flush_s, 2),
        "sent": metrics["sent"],
        "retried": metrics["retried"],
        "streams_opened": metrics["streams_opened"],
        "spool_depth_per_s": depth,
        "rss_mb_per_s": [round(mb, 1) for mb in rss],
    }


def bootstrap(catalog_url: str, data_dir: Path) -> tuple[str, str]:
    admin = CatalogClient.local_admin(catalog_url, data_dir)
    admin.create_catalog("main")
    admin.create_schema("main", "bench")
    admin.create_table(
        TABLE, parse_columns(CHAT_EVENTS.columns), properties=CHAT_EVENTS.properties
    )
    principal = admin.create_principal("bench")
    admin.grant("USE CATALOG", "catalog", "main", "bench")
    for privilege in ("USE SCHEMA", "SELECT", "MODIFY"):
        admin.grant(privilege, "schema", "main.bench", "bench")
    admin.close()
    return principal["client_id"], principal["client_secret"]


def run(args: argparse.Namespace, data_dir: Path) -> dict:
    results: dict = {"turns": args.turns, "rate_per_s": args.rate}
    with serve_in_thread(CatalogSettings(data_dir=data_dir, port=0)) as catalog:
        client_id, secret = bootstrap(catalog.url, data_dir)
        for phase, extra in (("healthy", []), ("rotating", ROTATION_ARGS)):
            server = IngestChild(data_dir, catalog.url, extra)
            config = TelemetryConfig.from_env(
                {},
                server_endpoint=server.endpoint,
                catalog_url=catalog.url,
                chat_table=TABLE,
                client_id=client_id,
                client_secret=secret,
                spool_dir=data_dir / f"spool-{phase}",
            )
            try:
                track = measure_track(config, args.turns, args.rate)
                blocking = measure_blocking(config, args.turns, args.rate)
                if phase == "healthy" and args.sustain_s > 0:
                    results["sustained"] = measure_sustained(config, args.sustain_s)
            finally:
                server.stop()
            ratio = blocking["p99_us"] / max(track["p99_us"], 0.1)
            results[phase] = {
                "track": track,
                "blocking": blocking,
                "p99_ratio_blocking_to_track": round(ratio, 1),
            }
    return results


def report(results: dict) -> None:
    print(f"{results['turns']} turns per measurement at {results['rate_per_s']}/s")
    print(f"{'phase':10} {'pattern':9} {'p50 µs':>10} {'p99 µs':>10} {'max µs':>10}")
    for phase in ("healthy", "rotating"):
        for pattern in ("track", "blocking"):
            row = results[phase][pattern]
            print(
                f"{phase:10} {pattern:9} {row['p50_us']:>10} {row['p99_us']:>10} "
                f"{row['max_us']:>10}"
            )
        ratio = results[phase]["p99_ratio_blocking_to_track"]
        target = "met" if results[phase]["track"]["p99_us"] <= 100 else "MISSED"
        print(f"  p99 blocking/track = {ratio}x; track p99 <= 100 µs: {target}")
        build = results[phase]["track"]["build_event"]
        print(f"  building the event: p50 {build['p50_us']}, p99 {build['p99_us']} µs")
    sustained = results.get("sustained")
    if sustained:
        track = sustained["track"]
        print(
            f"sustained {SUSTAINED_RATE}/s: tracked {sustained['tracked']}, "
            f"acked {sustained['acked']}, dropped {sustained['dropped']}, "
            f"final flush {sustained['final_flush_s']} s; "
            f"track p50 {track['p50_us']} µs, p99 {track['p99_us']} µs\n"
            f"  spool depth each second {sustained['spool_depth_per_s']}\n"
            f"  this process's RSS (MB) each second {sustained['rss_mb_per_s']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sustain-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatlake-bench-") as tmp:
        results = run(args, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)


if __name__ == "__main__":
    main()
