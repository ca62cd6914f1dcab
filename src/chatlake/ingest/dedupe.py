"""Drop rows whose dedupe key was already committed within a time window.

The SDK delivers at least once: after a reconnect it resends everything that
was not acked, so the same record can reach the committer twice. A table that
names a dedupe key column keeps the keys of recently committed rows here.

Keys are held as their 64-bit hashes (about 80 bytes each with the index's
own overhead, instead of the key string as well): a false match needs two
keys with equal 64-bit hashes, vanishingly rare at a million keys. The index
lives in one process only, so the per-process hash seed does not matter.

Memory is bounded two ways: keys live in time buckets that expire as a whole
once older than the window, and when more than ``max_keys`` are held the
oldest bucket is dropped early (and counted), trading a rare duplicate for a
fixed footprint.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from pyarrow import fs as pafs

log = logging.getLogger(__name__)

BUCKETS_PER_WINDOW = 12


@dataclass(frozen=True)
class DedupeResult:
    """A batch with its duplicates removed, and how many were removed."""

    table: pa.Table
    dropped_rows: int


class DedupeIndex:
    """Keys committed within the last ``window_s`` seconds, at most ``max_keys``.

    Not thread-safe: each table's committer owns one and uses it serially.

    >>> index = DedupeIndex(window_s=3600, max_keys=1000)
    >>> index.remember(["a"], now_s=0.0)
    >>> index.filter(pa.table({"k": ["a", "b", "b"]}), "k", now_s=1.0).dropped_rows
    2
    """

    def __init__(self, *, window_s: float, max_keys: int) -> None:
        if window_s <= 0 or max_keys <= 0:
            raise ValueError("window_s and max_keys must be positive")
        self.window_s = window_s
        self.max_keys = max_keys
        self._bucket_width_s = window_s / BUCKETS_PER_WINDOW
        self._bucket_of: dict[int, int] = {}
        self._buckets: OrderedDict[int, list[int]] = OrderedDict()
        self.evicted_keys = 0

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __contains__(self, key: object) -> bool:
        return key is not None and hash(key) in self._bucket_of

    def filter(self, table: pa.Table, column: str, *, now_s: float) -> DedupeResult:
        """Rows of ``table`` whose key is neither remembered nor repeated earlier."""
        self.expire(now_s)
        keys = table.column(column).to_pylist()
        seen: set[int] = set()
        keep = []
        for key in keys:
            if key is None:
                keep.append(True)
                continue
            digest = hash(key)
            keep.append(digest not in self._bucket_of and digest not in seen)
            seen.add(digest)

        dropped = len(keep) - sum(keep)
        if dropped == 0:
            return DedupeResult(table, 0)
        return DedupeResult(table.filter(pa.array(keep, pa.bool_())), dropped)

    def remember(self, keys: list[object], *, now_s: float) -> None:
        """Record committed keys as seen at ``now_s`` (nulls are never deduped)."""
        bucket_id = int(now_s // self._bucket_width_s)
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = self._buckets[bucket_id] = []
            self._buckets = OrderedDict(sorted(self._buckets.items()))
        for key in keys:
            if key is not None:
                digest = hash(key)
                self._bucket_of[digest] = bucket_id
                bucket.append(digest)
        self._enforce_limit()

    def expire(self, now_s: float) -> None:
        """Forget every bucket that lies entirely outside the window."""
        oldest_kept = int((now_s - self.window_s) // self._bucket_width_s) + 1
        while self._buckets and next(iter(self._buckets)) < oldest_kept:
            self._drop_oldest_bucket()

    def _enforce_limit(self) -> None:
        while len(self._bucket_of) > self.max_keys and len(self._buckets) > 1:
            self.evicted_keys += self._drop_oldest_bucket()
        if len(self._bucket_of) > self.max_keys:
            # One bucket alone is over the limit: forget its oldest keys.
            self.evicted_keys += self._trim_single_bucket()

    def _drop_oldest_bucket(self) -> int:
        bucket_id, keys = self._buckets.popitem(last=False)
        dropped = 0
        for key in keys:
            if self._bucket_of.get(key) == bucket_id:
                del self._bucket_of[key]
                dropped += 1
        return dropped

    def _trim_single_bucket(self) -> int:
        _, keys = next(iter(self._buckets.items()))
        dropped = index = 0
        while len(self._bucket_of) > self.max_keys and index < len(keys):
            if self._bucket_of.pop(keys[index], None) is not None:
                dropped += 1
            index += 1
        del keys[:index]
        return dropped


def load_recent_keys(
    index: DedupeIndex, location: str, column: str, *, now_s: float | None = None
) -> int:
    """Fill ``index`` with the keys of data files written within the window.

    A file's modification time stands for its rows' commit time, so only the
    files of the last window are read, and only their key column. Returns the
    number of keys loaded; a location without a Delta table loads nothing.
    """
    now_s = time.time() if now_s is None else now_s
    if not DeltaTable.is_deltatable(location):
        return 0

    table = DeltaTable(location)
    actions = pa.table(table.get_add_actions(flatten=True))
    loaded = 0
    for path, written_s in _recent_files(actions, now_s - index.window_s):
        filesystem, file_path = _data_file(table.table_uri, path)
        keys = pq.read_table(file_path, columns=[column], filesystem=filesystem)
        index.remember(keys.column(column).to_pylist(), now_s=written_s)
        loaded += keys.num_rows
    log.info("dedupe index for %s loaded %d recent keys", location, loaded)
    return loaded


def _data_file(table_uri: str, path: str) -> tuple[pafs.FileSystem, str]:
    """Where a data file of an add action lives: paths are relative to the
    table and URL-encoded, unless the action holds an absolute URI."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    filesystem, root = pafs.FileSystem.from_uri(table_uri)
    return filesystem, f"{root.rstrip('/')}/{unquote(path)}"


def _recent_files(actions: pa.Table, since_s: float) -> list[tuple[str, float]]:
    """(path, modification time in seconds) of add actions newer than since_s."""
    times = actions.column("modification_time")
    if pa.types.is_timestamp(times.type):
        times = pc.cast(times, pa.timestamp("ms")).cast(pa.int64())
    files = zip(actions.column("path").to_pylist(), times.to_pylist(), strict=True)
    recent = [(path, ms / 1000.0) for path, ms in files if ms / 1000.0 >= since_s]
    return sorted(recent, key=lambda item: item[1])
