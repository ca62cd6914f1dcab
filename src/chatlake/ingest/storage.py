"""Durable storage for ingested batches: the interface the ingest server calls.

    storage = Storage(data_dir, StorageSettings())
    await storage.start()           # replays every WAL left by a crash
    await storage.append(target, batch)   # returns once the batch is durable
    await storage.stop()            # commits what is pending, closes the logs

With ``durability="wal"`` (the default) ``append`` returns after the batch is
fsynced in the table's write-ahead log under ``<data_dir>/ingest/wal/``; a
committer per table turns the log into Delta commits in the background. With
``durability="commit"`` there is no log: ``append`` returns after the Delta
commit that holds the batch, and concurrent appends share commits.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, get_args

import pyarrow as pa
from deltalake.exceptions import DeltaError

from chatlake import config
from chatlake.errors import ConfigError
from chatlake.ingest.committer import Committer, PendingBatch, committed_version
from chatlake.ingest.dedupe import DedupeIndex, load_recent_keys
from chatlake.ingest.maintenance import MaintenanceScheduler
from chatlake.ingest.storage_errors import (
    StorageClosedError,
    StorageError,
    WalError,
)
from chatlake.ingest.wal import WalRecord, WriteAheadLog, fsync_directory

log = logging.getLogger(__name__)

Durability = Literal["wal", "commit"]
MIB = 1024 * 1024
TARGET_FILE = "target.json"
LOCK_FILE = "lock"
REJECTED_DIR = "rejected"
_SAFE_DIR_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")


@dataclass(frozen=True)
class TableTarget:
    """Where a table's rows go: its Delta location and the Arrow schema of rows."""

    full_name: str
    location: str
    schema: pa.Schema
    dedupe_key: str | None = None


@dataclass(frozen=True)
class StorageSettings:
    """How ingest storage trades latency, durability and table health.

    Each field can also come from an environment variable (see ``ENV``);
    ``StorageSettings.from_env()`` reads them.
    """

    durability: Durability = "wal"
    commit_interval_s: float = 1.0
    commit_bytes: int = 64 * MIB
    max_pending_bytes: int = 256 * MIB
    wal_segment_bytes: int = 64 * MIB
    dedupe_window_s: float = 3600.0
    dedupe_max_keys: int = 1_000_000
    maintenance_interval_s: float = 3600.0
    vacuum_retention_hours: float = 168.0

    ENV = {
        "durability": "CHATLAKE_DURABILITY",
        "commit_interval_s": "CHATLAKE_COMMIT_INTERVAL_S",
        "commit_bytes": "CHATLAKE_COMMIT_BYTES",
        "max_pending_bytes": "CHATLAKE_MAX_PENDING_BYTES",
        "wal_segment_bytes": "CHATLAKE_WAL_SEGMENT_BYTES",
        "dedupe_window_s": "CHATLAKE_DEDUPE_WINDOW_S",
        "dedupe_max_keys": "CHATLAKE_DEDUPE_MAX_KEYS",
        "maintenance_interval_s": "CHATLAKE_MAINTENANCE_INTERVAL_S",
        "vacuum_retention_hours": "CHATLAKE_VACUUM_RETENTION_HOURS",
    }

    def __post_init__(self) -> None:
        if self.durability not in get_args(Durability):
            raise ConfigError(
                f"durability must be 'wal' or 'commit', got {self.durability!r}"
            )
        for name, maximum in _MAXIMUM.items():
            _require_number(self, name, maximum)
        for name in (
            "commit_bytes",
            "max_pending_bytes",
            "wal_segment_bytes",
            "dedupe_max_keys",
        ):
            _require(getattr(self, name) >= 1, name, "must be at least 1")
        _require(
            self.max_pending_bytes >= self.commit_bytes,
            "max_pending_bytes",
            "must be at least commit_bytes",
        )

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, **overrides
    ) -> StorageSettings:
        """Arguments first, then ``CHATLAKE_*`` variables, then the defaults."""
        environ = os.environ if environ is None else environ
        values = {}
        for item in fields(cls):
            text = environ.get(cls.ENV.get(item.name, ""))
            if item.name in overrides and overrides[item.name] is not None:
                values[item.name] = overrides[item.name]
            elif text:
                values[item.name] = _parse_env(cls.ENV[item.name], text, item.type)
        return cls(**values)


def _require(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"storage setting {name} {problem}")


# Each number setting's largest usable value: infinity or a huge number would
# overflow the timers and dates it ends up in (nan is refused too).
_MAXIMUM = {
    "commit_interval_s": 3600.0,
    "dedupe_window_s": 30 * 86400.0,
    "maintenance_interval_s": 30 * 86400.0,  # 0 turns maintenance off
    "vacuum_retention_hours": 10 * 8760.0,
}
_ZERO_ALLOWED = {"maintenance_interval_s", "vacuum_retention_hours"}


def _require_number(settings: StorageSettings, name: str, maximum: float) -> None:
    value = getattr(settings, name)
    problem = config.number_problem(
        value, maximum=maximum, above_minimum=name not in _ZERO_ALLOWED
    )
    if problem:
        variable = StorageSettings.ENV[name]
        raise ConfigError(
            f"storage setting {name} {problem}, got {value!r} (env {variable})"
        )


def _parse_env(variable: str, text: str, type_name: str):
    parse = {"float": float, "int": int}.get(type_name, str)
    try:
        return parse(text)
    except ValueError:
        raise ConfigError(f"{variable}={text!r} is not a valid {type_name}") from None


class Storage:
    """The write side of every table this ingest process serves."""

    def __init__(
        self, data_dir: str | os.PathLike[str], settings: StorageSettings | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings or StorageSettings()
        self.wal_root = self.data_dir / "ingest" / "wal"
        self._tables: dict[str, _TablePipeline] = {}
        self._opening: dict[str, asyncio.Task] = {}
        self._maintenance: MaintenanceScheduler | None = None
        self._running = False

    @property
    def targets(self) -> list[TableTarget]:
        return [pipeline.target for pipeline in self._tables.values()]

    async def start(self) -> None:
        """Open every table WAL found on disk and replay what it holds."""
        if self._running:
            return
        self.wal_root.mkdir(parents=True, exist_ok=True)
        self._running = True
        try:
            await self._replay_all()
        except BaseException:
            await self.stop()
            raise
        if self.settings.maintenance_interval_s > 0:
            self._maintenance = MaintenanceScheduler(
                lambda: self.targets,
                interval_s=self.settings.maintenance_interval_s,
                vacuum_retention_hours=self.settings.vacuum_retention_hours,
            )
            self._maintenance.start()

    async def _replay_all(self) -> None:
        targets = await asyncio.to_thread(_targets_on_disk, self.wal_root)
        for target in targets:
            if self.settings.durability == "wal":
                await self._pipeline(target)
            else:
                await self._drain(target)

    async def _drain(self, target: TableTarget) -> None:
        # Logs left by an earlier run in wal mode hold acked batches: commit
        # them once, even though this run acks after commits instead.
        pipeline = await _TablePipeline._open_with_wal(self, target)
        if not await pipeline.close():
            log.warning(
                "table %s: WAL batches could not be committed yet; they stay in "
                "the log until a later start",
                target.full_name,
            )

    async def stop(self) -> None:
        """Commit what is pending, close every log. Safe to call twice."""
        if not self._running:
            return
        self._running = False
        if self._maintenance is not None:
            await self._maintenance.stop()
        for pending in list(self._opening.values()):
            await asyncio.gather(pending, return_exceptions=True)
        for pipeline in list(self._tables.values()):
            await pipeline.close()
        self._tables.clear()

    async def append(self, target: TableTarget, batch: pa.RecordBatch) -> None:
        """Store ``batch`` for ``target``; return once it is durable."""
        if not self._running:
            raise StorageClosedError(
                f"table {target.full_name}: storage is not running"
            )
        pipeline = self._tables.get(target.full_name) or await self._pipeline(target)
        await pipeline.append(target, batch)

    async def flush(self) -> bool:
        """Commit everything pending now; False if some table's commit failed."""
        results = [await p.committer.commit_now() for p in list(self._tables.values())]
        return all(results)

    async def _pipeline(self, target: TableTarget) -> _TablePipeline:
        pipeline = self._tables.get(target.full_name)
        if pipeline is not None:
            return pipeline
        opening = self._opening.get(target.full_name)
        if opening is None:
            opening = asyncio.create_task(self._open_pipeline(target))
            self._opening[target.full_name] = opening
        return await asyncio.shield(opening)

    async def _open_pipeline(self, target: TableTarget) -> _TablePipeline:
        # Registered by the opening task itself, so stop() closes it even if
        # the append that asked for it was cancelled meanwhile.
        try:
            pipeline = await _TablePipeline.open(self, target)
            self._tables[target.full_name] = pipeline
            return pipeline
        finally:
            self._opening.pop(target.full_name, None)


class _TablePipeline:
    """One table's WAL (in wal mode) and committer."""

    def __init__(
        self, target: TableTarget, committer: Committer, settings: StorageSettings
    ) -> None:
        self.target = target
        self.committer = committer
        self.settings = settings
        self.wal: WriteAheadLog | None = None
        self.directory: Path | None = None
        self.lock_fd: int | None = None
        self._next_seq = 0
        self._retarget_lock = asyncio.Lock()

    @classmethod
    async def open(cls, storage: Storage, target: TableTarget) -> _TablePipeline:
        if storage.settings.durability == "commit":
            return await cls._open_without_wal(storage, target)
        return await cls._open_with_wal(storage, target)

    @classmethod
    async def _open_without_wal(
        cls, storage: Storage, target: TableTarget
    ) -> _TablePipeline:
        app_id = f"chatlake-commit-{uuid.uuid4().hex}"
        committer = _committer(storage.settings, target, app_id, None)
        await _load_dedupe_keys(committer.dedupe, target)
        pipeline = cls(target, committer, storage.settings)
        pipeline.committer.start()
        return pipeline

    @classmethod
    async def _open_with_wal(
        cls, storage: Storage, target: TableTarget
    ) -> _TablePipeline:
        settings = storage.settings
        directory = storage.wal_root / _directory_name(target.full_name)
        lock_fd = await asyncio.to_thread(_lock_directory, directory, target.full_name)
        try:
            recovered = await asyncio.to_thread(_recover, settings, directory, target)
        except BaseException:
            os.close(lock_fd)
            raise

        wal = recovered.wal
        committer = _committer(
            settings, target, recovered.wal_id, _releaser(wal), directory / REJECTED_DIR
        )
        await _load_dedupe_keys(committer.dedupe, target)
        pipeline = cls(target, committer, settings)
        pipeline.wal, pipeline.directory, pipeline.lock_fd = wal, directory, lock_fd
        await pipeline._replay(recovered)
        return pipeline

    async def _replay(self, recovered: _Recovered) -> None:
        """Hand the log's uncommitted batches, then every new one, to the committer."""
        committer = self.committer
        self.wal.sink = lambda seq, batch, size: committer.add(
            PendingBatch(seq, batch, size)
        )
        for record in recovered.records:
            committer.add(PendingBatch(record.seq, record.batch, record.size_bytes))
        committer.start()
        if recovered.records:
            log.info(
                "table %s: replaying %d WAL batches after sequence %d",
                self.target.full_name,
                len(recovered.records),
                recovered.committed_seq,
            )
            await committer.commit_now(attempts=1)

    async def append(self, target: TableTarget, batch: pa.RecordBatch) -> None:
        if target is not self.target and target != self.target:
            await self._retarget(target)
        if not self.committer.has_room:
            await self.committer.wait_for_room()
        if self.wal is not None:
            await self.wal.append(batch)
            return
        done = asyncio.get_running_loop().create_future()
        self.committer.add(PendingBatch(self._next_seq, batch, batch.nbytes, done=done))
        self._next_seq += 1
        await done

    async def _retarget(self, target: TableTarget) -> None:
        # The table was recreated or altered: land what is pending at the old
        # target before rows start going to the new one.
        async with self._retarget_lock:
            if target == self.target:
                return
            old = self.target
            dedupe = self.committer.dedupe
            # Commit first, so a new dedupe index loads the old target's rows too.
            await self.committer.commit_now()
            if (old.location, old.dedupe_key) != (target.location, target.dedupe_key):
                dedupe = _dedupe_index(self.settings, target)
                await _load_dedupe_keys(dedupe, target)
            if not await self.committer.retarget(target, dedupe):
                log.warning(
                    "table %s: rows pending for %s go to %s instead",
                    target.full_name,
                    old.location,
                    target.location,
                )
            self.target = target
            if self.directory is not None:
                await asyncio.to_thread(
                    _read_or_write_meta, self.directory, target, replace=True
                )
            log.info(
                "table %s: storage target updated (location %s)",
                target.full_name,
                target.location,
            )

    async def close(self) -> bool:
        """Final commit, then let go of the log; False if something stayed."""
        if self.wal is not None:
            await self.wal.close()
        committed = await self.committer.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        return committed


@dataclass(frozen=True)
class _Recovered:
    """A table's log, opened, with what it holds beyond the table's version."""

    wal: WriteAheadLog
    wal_id: str
    committed_seq: int
    records: list[WalRecord]


def _recover(
    settings: StorageSettings, directory: Path, target: TableTarget
) -> _Recovered:
    meta = _read_or_write_meta(directory, target)
    try:
        committed = committed_version(target.location, meta["wal_id"])
    except DeltaError as error:
        raise StorageError(
            f"table {target.full_name}: cannot read the Delta table at "
            f"{target.location} to replay its WAL: {error}"
        ) from error
    wal = WriteAheadLog(
        directory, segment_bytes=settings.wal_segment_bytes, label=target.full_name
    )
    records = wal.open(committed_seq=committed)
    return _Recovered(wal, meta["wal_id"], committed, records)


def _releaser(wal: WriteAheadLog):
    async def release(version: int) -> None:
        await asyncio.to_thread(wal.release_through, version)

    return release


def _committer(
    settings: StorageSettings,
    target: TableTarget,
    app_id: str,
    on_committed,
    quarantine_dir: Path | None = None,
) -> Committer:
    return Committer(
        target,
        app_id=app_id,
        commit_interval_s=settings.commit_interval_s,
        commit_bytes=settings.commit_bytes,
        max_pending_bytes=settings.max_pending_bytes,
        group_commit=settings.durability == "commit",
        dedupe=_dedupe_index(settings, target),
        on_committed=on_committed,
        quarantine_dir=quarantine_dir,
    )


def _dedupe_index(settings: StorageSettings, target: TableTarget) -> DedupeIndex | None:
    if target.dedupe_key is None:
        return None
    return DedupeIndex(
        window_s=settings.dedupe_window_s, max_keys=settings.dedupe_max_keys
    )


async def _load_dedupe_keys(index: DedupeIndex | None, target: TableTarget) -> None:
    if index is None or target.dedupe_key is None:
        return
    try:
        await asyncio.to_thread(
            load_recent_keys, index, target.location, target.dedupe_key
        )
    except Exception as error:  # noqa: BLE001 - a missing index only risks duplicates
        log.warning(
            "table %s: could not reload dedupe keys: %s", target.full_name, error
        )


def _directory_name(full_name: str) -> str:
    if not _SAFE_DIR_NAME.match(full_name):
        raise StorageError(f"table name {full_name!r} cannot name a WAL directory")
    return full_name


def _lock_directory(directory: Path, full_name: str) -> int:
    # The kernel drops the lock when the process dies, even by SIGKILL.
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WalError(
            f"table {full_name}: WAL directory {directory} is in use by another "
            f"ingest process; give each process its own data directory"
        ) from None
    return fd


def _read_or_write_meta(
    directory: Path, target: TableTarget, replace: bool = False
) -> dict:
    path = directory / TARGET_FILE
    try:
        meta = json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, OSError) as error:
        raise WalError(f"unreadable WAL description {path}: {error}") from error
    if meta and not replace:
        return meta
    meta = {
        "full_name": target.full_name,
        "location": target.location,
        "dedupe_key": target.dedupe_key,
        "schema": base64.b64encode(target.schema.serialize().to_pybytes()).decode(),
        "wal_id": meta.get("wal_id") or f"chatlake-wal-{uuid.uuid4().hex}",
    }
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        json.dump(meta, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    # The rename, the table's directory and the WAL root must survive a crash.
    for level in (directory, directory.parent, directory.parent.parent):
        fsync_directory(level)
    return meta


def _targets_on_disk(wal_root: Path) -> list[TableTarget]:
    targets = []
    for path in sorted(wal_root.glob(f"*/{TARGET_FILE}")):
        try:
            meta = json.loads(path.read_text())
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(meta["schema"])))
            targets.append(
                TableTarget(
                    meta["full_name"], meta["location"], schema, meta.get("dedupe_key")
                )
            )
        except (ValueError, KeyError, pa.ArrowException) as error:
            raise WalError(f"unreadable WAL description {path}: {error}") from error
    return targets
