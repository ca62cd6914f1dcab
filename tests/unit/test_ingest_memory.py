"""The ingest process puts Arrow on jemalloc unless the operator chose a pool."""

from __future__ import annotations

import pyarrow as pa
import pytest

from chatlake.ingest.memory import use_fast_pool


@pytest.fixture
def restore_pool():
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


def test_jemalloc_becomes_the_default_pool(restore_pool):
    pa.set_memory_pool(pa.system_memory_pool())

    assert use_fast_pool(environ={}) == "jemalloc"
    assert pa.default_memory_pool().backend_name == "jemalloc"


def test_an_operator_choice_is_kept(restore_pool):
    pa.set_memory_pool(pa.system_memory_pool())

    assert use_fast_pool(environ={"ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
    assert pa.default_memory_pool().backend_name == "system"
