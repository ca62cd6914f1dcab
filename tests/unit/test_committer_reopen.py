"""The committer reloads its DeltaTable every REOPEN_AFTER_COMMITS commits, so
the open table's state (which grows with every commit) stays bounded, and no
row is lost or doubled across the reloads."""

from __future__ import annotations

from deltalake import DeltaTable

from chatlake.ingest import committer as committer_module
from chatlake.ingest.committer import PendingBatch, committed_version
from tests.unit.test_committer import APP_ID, make, rows, table_ids


async def test_the_open_table_is_reloaded_every_few_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(committer_module, "REOPEN_AFTER_COMMITS", 3)
    committer = make(tmp_path)
    opened = []
    original = committer._open_table

    def counting_open(location):
        table = original(location)
        if isinstance(table, DeltaTable) and all(t is not table for t in opened):
            opened.append(table)
        return table

    committer._open_table = counting_open
    committer.start()
    for seq in range(8):
        committer.add(PendingBatch(seq, rows(f"id-{seq}"), 100))
        assert await committer.commit_now()

    await committer.close()
    # Commit 0 creates the table; commits 1-3 use one DeltaTable, 4-6 a
    # second, 7 a third.
    assert len(opened) == 3
    assert table_ids(committer) == [f"id-{seq}" for seq in range(8)]
    assert committed_version(committer.target.location, APP_ID) == 7
