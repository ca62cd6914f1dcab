"""Errors of the durability half of ingest: the WAL, the committer and maintenance.

StorageError                 (chatlake.ingest.errors.IngestError)
├── StorageClosedError       append() after stop(), or before start()
├── WalError                 the write-ahead log cannot be written or opened
│   └── WalCorruptError      a sealed segment fails its checks (not a torn tail)
├── CommitError              a Delta commit failed; in durability="commit" mode
│   │                        the batch was not stored and the client must resend
│   └── BatchRejectedError   the table refuses the batch's data (schema, NOT NULL,
│                            types): retrying cannot help
└── MaintenanceError         compaction, checkpoint or vacuum failed
"""

from __future__ import annotations

from chatlake.ingest.errors import IngestError


class StorageError(IngestError):
    """An expected failure of ingest storage; the message names the table."""


class StorageClosedError(StorageError):
    """The storage is not running, so nothing can be appended."""


class WalError(StorageError):
    """The write-ahead log cannot be written, synced or opened."""


class WalCorruptError(WalError):
    """A WAL segment other than the newest fails its length or checksum check."""


class CommitError(StorageError):
    """A Delta commit failed after its retries."""


class BatchRejectedError(CommitError):
    """The Delta table refuses this batch's data; resending it cannot succeed."""


class MaintenanceError(StorageError):
    """Compaction, checkpointing or vacuum of a table failed."""
