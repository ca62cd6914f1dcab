"""The dedupe index: exact drops, expiry, the size bound, reload from a table."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from chatlake.ingest.dedupe import DedupeIndex, DedupeResult, load_recent_keys


def keys_table(*keys) -> pa.Table:
    return pa.table({"k": pa.array(keys, pa.string()), "n": list(range(len(keys)))})


def test_drops_remembered_keys_and_repeats_within_the_batch():
    index = DedupeIndex(window_s=3600, max_keys=100)
    index.remember(["a"], now_s=1000.0)

    result = index.filter(keys_table("a", "b", "c", "b", "a"), "k", now_s=1001.0)

    assert result.dropped_rows == 3
    assert result.table.to_pydict() == {"k": ["b", "c"], "n": [1, 2]}


def test_null_keys_are_never_dropped():
    index = DedupeIndex(window_s=3600, max_keys=100)
    index.remember([None], now_s=0.0)

    result = index.filter(keys_table(None, None, "x"), "k", now_s=1.0)

    assert result.dropped_rows == 0
    assert result.table.column("k").to_pylist() == [None, None, "x"]
    assert len(index) == 0


def test_a_batch_without_duplicates_is_returned_unchanged():
    index = DedupeIndex(window_s=60, max_keys=10)
    table = keys_table("p", "q")

    result = index.filter(table, "k", now_s=0.0)

    assert result.table is table
    assert result.dropped_rows == 0


def test_keys_expire_after_the_window():
    index = DedupeIndex(window_s=120, max_keys=100)
    index.remember(["old"], now_s=0.0)
    index.remember(["new"], now_s=100.0)

    index.expire(now_s=130.0)

    assert "old" not in index
    assert "new" in index
    assert index.filter(keys_table("old"), "k", now_s=130.0).dropped_rows == 0


def test_a_key_seen_again_lives_in_its_newest_bucket():
    index = DedupeIndex(window_s=120, max_keys=100)
    index.remember(["k1"], now_s=0.0)
    index.remember(["k1"], now_s=110.0)

    index.expire(now_s=150.0)

    assert "k1" in index


def test_memory_is_bounded_by_forgetting_the_oldest_keys_first():
    index = DedupeIndex(window_s=1200, max_keys=5)
    index.remember(["a", "b", "c"], now_s=0.0)
    index.remember(["d", "e", "f"], now_s=500.0)

    assert len(index) == 3
    assert index.evicted_keys == 3
    assert [k for k in "abcdef" if k in index] == ["d", "e", "f"]


def test_one_oversized_bucket_is_trimmed_to_the_limit():
    index = DedupeIndex(window_s=60, max_keys=4)

    index.remember([f"k{i}" for i in range(10)], now_s=0.0)

    assert len(index) == 4
    assert index.evicted_keys == 6
    assert [f"k{i}" in index for i in range(10)] == [False] * 6 + [True] * 4


@pytest.mark.parametrize("window_s, max_keys", [(0, 10), (10, 0), (-1, 1)])
def test_settings_must_be_positive(window_s, max_keys):
    with pytest.raises(ValueError, match="must be positive"):
        DedupeIndex(window_s=window_s, max_keys=max_keys)


def test_reload_reads_keys_of_files_written_within_the_window(tmp_path):
    location = (tmp_path / "t").as_uri()
    write_deltalake(location, keys_table("a", "b"), mode="append")
    write_deltalake(location, keys_table("c", None), mode="append")
    index = DedupeIndex(window_s=3600, max_keys=100)

    loaded = load_recent_keys(index, location, "k")

    assert loaded == 4
    assert sorted(k for k in "abcd" if k in index) == ["a", "b", "c"]


def test_reload_skips_files_older_than_the_window(tmp_path):
    import time

    location = (tmp_path / "t").as_uri()
    write_deltalake(location, keys_table("a"), mode="append")
    index = DedupeIndex(window_s=60, max_keys=100)

    loaded = load_recent_keys(index, location, "k", now_s=time.time() + 3600)

    assert loaded == 0
    assert "a" not in index


def test_reload_from_a_location_without_a_table_loads_nothing(tmp_path):
    index = DedupeIndex(window_s=60, max_keys=100)

    assert load_recent_keys(index, (tmp_path / "none").as_uri(), "k") == 0


def test_trimming_counts_each_forgotten_key_once():
    index = DedupeIndex(window_s=60, max_keys=3)

    index.remember(["a", "a", "b", "c", "d", "e"], now_s=0.0)

    assert [k for k in "abcde" if k in index] == ["c", "d", "e"]
    assert index.evicted_keys == 2


def test_integer_keys_are_deduped_too():
    index = DedupeIndex(window_s=60, max_keys=10)
    index.remember([7, 2**40], now_s=0.0)

    result = index.filter(pa.table({"k": [7, 8, 2**40, 8]}), "k", now_s=1.0)

    assert result.table.column("k").to_pylist() == [8]


def test_reload_reads_files_whose_paths_need_decoding(tmp_path):
    location = (tmp_path / "t").as_uri()
    data = pa.table({"k": ["x", "y"], "p": ["a b=c%", "ü/ö"]})
    write_deltalake(location, data, mode="append", partition_by=["p"])
    index = DedupeIndex(window_s=3600, max_keys=100)

    assert load_recent_keys(index, location, "k") == 2
    assert "x" in index and "y" in index


def test_arrow_keys_are_the_same_keys_as_python_values():
    index = DedupeIndex(window_s=60, max_keys=10)

    index.remember(pa.chunked_array([["a", None], ["b"]]), now_s=0.0)
    index.remember(pa.array([7, None, 2**40]), now_s=0.0)

    assert len(index) == 4
    assert all(key in index for key in ("a", "b", 7, 2**40))
    kept = index.filter(keys_table("b", "z", "a"), "k", now_s=1.0).table
    assert kept.column("k").to_pylist() == ["z"]


def test_a_key_seen_again_is_held_once_and_outlives_its_first_bucket():
    index = DedupeIndex(window_s=120, max_keys=100)
    index.remember(["k1", "k2"], now_s=0.0)
    index.remember(["k1"], now_s=50.0)

    assert len(index) == 2
    index.expire(now_s=125.0)

    assert len(index) == 1
    assert "k1" in index and "k2" not in index


def test_evicting_a_bucket_counts_only_the_keys_still_in_it():
    index = DedupeIndex(window_s=1200, max_keys=3)
    index.remember(["a", "b"], now_s=0.0)
    index.remember(["a"], now_s=500.0)

    index.remember(["c", "d"], now_s=500.0)

    assert index.evicted_keys == 1
    assert [k for k in "abcd" if k in index] == ["a", "c", "d"]


def test_trimming_forgets_the_oldest_keys_across_remember_calls():
    index = DedupeIndex(window_s=60, max_keys=5)
    index.remember(["a", "b", "c"], now_s=0.0)
    index.remember(["d", "e", "f"], now_s=1.0)

    assert index.evicted_keys == 1
    index.remember(["g", "h"], now_s=2.0)

    assert index.evicted_keys == 3
    assert [k for k in "abcdefgh" if k in index] == ["d", "e", "f", "g", "h"]


def test_a_key_trimmed_then_remembered_in_a_newer_bucket_survives_the_old_one():
    index = DedupeIndex(window_s=120, max_keys=2)
    index.remember(["a", "b", "a"], now_s=0.0)
    assert [k for k in "ab" if k in index] == ["a", "b"]
    index.remember(["c"], now_s=0.0)
    assert [k for k in "abc" if k in index] == ["b", "c"]

    index.remember(["a"], now_s=50.0)

    assert index.evicted_keys == 3
    assert [k for k in "abc" if k in index] == ["a"]


def test_filter_keeps_what_a_plain_set_of_committed_keys_would_keep():
    chooser = random.Random(6)
    index = DedupeIndex(window_s=3600, max_keys=10_000)
    committed: set[str] = set()
    for step in range(40):
        keys = [
            None if chooser.random() < 0.1 else f"key-{chooser.randrange(300)}"
            for _ in range(50)
        ]
        expected, in_batch = [], set()
        for key in keys:
            if key is None or (key not in committed and key not in in_batch):
                expected.append(key)
            if key is not None:
                in_batch.add(key)

        result = index.filter(keys_table(*keys), "k", now_s=float(step))
        kept = result.table.column("k")
        if step % 2:
            index.remember(kept, now_s=float(step))
        else:
            index.remember_kept(result, now_s=float(step))
        committed.update(key for key in expected if key is not None)

        assert kept.to_pylist() == expected
        assert result.dropped_rows == len(keys) - len(expected)
    assert len(index) == len(committed)


@pytest.mark.parametrize("keys", [("a", "b", None), ("a", None, "a", "old", "b")])
def test_remember_kept_records_the_keys_of_the_kept_rows(keys):
    index = DedupeIndex(window_s=60, max_keys=10)
    index.remember(["old"], now_s=0.0)
    result = index.filter(keys_table(*keys), "k", now_s=1.0)

    index.remember_kept(result, now_s=1.0)

    assert len(index) == 3
    assert all(key in index for key in ("old", "a", "b"))
    assert index.filter(keys_table("a", "b"), "k", now_s=2.0).dropped_rows == 2


def test_remember_kept_of_an_unfiltered_result_records_nothing():
    index = DedupeIndex(window_s=60, max_keys=10)

    index.remember_kept(DedupeResult(keys_table("a"), 0), now_s=0.0)

    assert len(index) == 0
