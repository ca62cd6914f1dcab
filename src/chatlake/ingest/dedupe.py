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
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from operator import is_not
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from pyarrow import fs as pafs

log = logging.getLogger(__name__)

BUCKETS_PER_WINDOW = 12

Keys = pa.Array | pa.ChunkedArray | Iterable[object]


@dataclass(frozen=True)
class _Digests:
    """Hashes of keys in row order (the order to forget them in) and as a set."""

    ordered: list[int]
    unique: set[int]


@dataclass(frozen=True)
class DedupeResult:
    """A batch with its duplicates removed, and how many were removed."""

    table: pa.Table
    dropped_rows: int
    # The kept rows' key hashes, so that remember_kept() need not hash again.
    kept: _Digests = field(default_factory=lambda: _Digests([], set()), repr=False)


@dataclass
class _Bucket:
    """The keys last remembered within one slice of the window."""

    digests: set[int] = field(default_factory=set)
    # The same digests in arrival order, one list per remember() call: the
    # order in which an over-full index forgets them. A digest remembered
    # again in a newer bucket stays listed here, but no longer in ``digests``.
    arrivals: deque[list[int]] = field(default_factory=deque)


class DedupeIndex:
    """Keys committed within the last ``window_s`` seconds, at most ``max_keys``.

    Not thread-safe: each table's committer owns one and uses it serially.

    The committer runs this for every row it commits, holding the GIL that
    the ingest server's appends need, so the per-key work is done by set
    methods and ``map`` in C, and a Python loop runs only over a batch that
    holds a duplicate. Each key lives in exactly one bucket's set, so it
    takes one slot of one compact hash table, and a whole bucket can leave
    at once. A lookup probes every bucket, but keys spread over many buckets
    only when they come slowly (``max_keys`` over the window); a fast stream
    fills one or two.

    >>> index = DedupeIndex(window_s=3600, max_keys=1000)
    >>> index.remember(["a"], now_s=0.0)
    >>> result = index.filter(pa.table({"k": ["a", "b", "b"]}), "k", now_s=1.0)
    >>> result.dropped_rows
    2
    >>> index.remember_kept(result, now_s=2.0)  # once its rows are committed
    >>> "b" in index
    True
    """

    def __init__(self, *, window_s: float, max_keys: int) -> None:
        if window_s <= 0 or max_keys <= 0:
            raise ValueError("window_s and max_keys must be positive")
        self.window_s = window_s
        self.max_keys = max_keys
        self._bucket_width_s = window_s / BUCKETS_PER_WINDOW
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()
        self.evicted_keys = 0

    def __len__(self) -> int:
        return sum(len(bucket.digests) for bucket in self._buckets.values())

    def __contains__(self, key: object) -> bool:
        if key is None:
            return False
        digest = hash(key)
        return any(digest in bucket.digests for bucket in self._buckets.values())

    def filter(self, table: pa.Table, column: str, *, now_s: float) -> DedupeResult:
        """Rows of ``table`` whose key is neither remembered nor repeated earlier."""
        self.expire(now_s)
        keys = table.column(column)
        ordered = _digests(keys)
        unique = set(ordered)
        remembered = self._remembered(unique)
        if not remembered and len(unique) == len(ordered):
            return DedupeResult(table, 0, _Digests(ordered, unique))

        keep, kept = _first_unseen(keys, remembered)
        dropped = len(keep) - sum(keep)
        filtered = table.filter(pa.array(keep, pa.bool_()))
        return DedupeResult(filtered, dropped, _Digests(kept, set(kept)))

    def _remembered(self, digests: set[int]) -> set[int]:
        """Those of ``digests`` that the index holds."""
        found: set[int] = set()
        for bucket in self._buckets.values():
            found |= bucket.digests.intersection(digests)
        return found

    def remember(self, keys: Keys, *, now_s: float) -> None:
        """Record committed keys as seen at ``now_s`` (nulls are never deduped)."""
        ordered = _digests(keys)
        self._add(_Digests(ordered, set(ordered)), now_s)

    def remember_kept(self, result: DedupeResult, *, now_s: float) -> None:
        """Record the keys of the rows a ``filter()`` kept, once committed."""
        self._add(result.kept, now_s)

    def _add(self, digests: _Digests, now_s: float) -> None:
        if not digests.ordered:
            return
        bucket_id = int(now_s // self._bucket_width_s)
        for other_id, other in self._buckets.items():
            if other_id != bucket_id:
                other.digests -= digests.unique
        bucket = self._bucket(bucket_id)
        bucket.digests |= digests.unique
        bucket.arrivals.append(digests.ordered)
        self._enforce_limit()

    def _bucket(self, bucket_id: int) -> _Bucket:
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = self._buckets[bucket_id] = _Bucket()
            self._buckets = OrderedDict(sorted(self._buckets.items()))
        return bucket

    def expire(self, now_s: float) -> None:
        """Forget every bucket that lies entirely outside the window."""
        oldest_kept = int((now_s - self.window_s) // self._bucket_width_s) + 1
        while self._buckets and next(iter(self._buckets)) < oldest_kept:
            self._buckets.popitem(last=False)

    def _enforce_limit(self) -> None:
        while len(self) > self.max_keys and len(self._buckets) > 1:
            _, oldest = self._buckets.popitem(last=False)
            self.evicted_keys += len(oldest.digests)
        if len(self) > self.max_keys:
            # One bucket alone is over the limit: forget its oldest keys.
            self.evicted_keys += self._trim_single_bucket()

    def _trim_single_bucket(self) -> int:
        bucket = next(iter(self._buckets.values()))
        size = len(bucket.digests)
        while bucket.arrivals and len(bucket.digests) > self.max_keys:
            excess = len(bucket.digests) - self.max_keys
            oldest = bucket.arrivals.popleft()
            if len(oldest) > excess:
                bucket.arrivals.appendleft(oldest[excess:])
                oldest = oldest[:excess]
            bucket.digests.difference_update(oldest)
        return size - len(bucket.digests)


def _first_unseen(
    keys: pa.ChunkedArray, remembered: set[int]
) -> tuple[list[bool], list[int]]:
    """Per row, is its key null or neither remembered nor in an earlier row;
    and the hashes of the kept non-null keys."""
    seen = set(remembered)
    keep, kept = [], []
    for key in keys.to_pylist():
        if key is None:
            keep.append(True)
            continue
        digest = hash(key)
        is_new = digest not in seen
        keep.append(is_new)
        if is_new:
            kept.append(digest)
            seen.add(digest)
    return keep, kept


def _digests(keys: Keys) -> list[int]:
    """The 64-bit hashes of the non-null keys, in order."""
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        return list(map(hash, keys.drop_null().to_pylist()))
    return list(map(hash, filter(_is_present, keys)))


_is_present = partial(is_not, None)


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
        index.remember(keys.column(column), now_s=written_s)
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
