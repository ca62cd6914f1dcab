import grpc

from chatlake.ingest.service import _storage_refusal
from chatlake.ingest.storage_errors import BatchRejectedError, CommitError


def test_rows_the_table_refuses_end_the_stream_terminally():
    refusal = _storage_refusal("main.s.t", BatchRejectedError("null in 'id'"))

    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "main.s.t" in refusal.message and "null in 'id'" in refusal.message


def test_a_failed_commit_is_retryable():
    refusal = _storage_refusal("main.s.t", CommitError("disk busy"))

    assert refusal.code == grpc.StatusCode.UNAVAILABLE


def test_a_bug_in_storage_is_retryable_and_does_not_leak_its_text():
    refusal = _storage_refusal("main.s.t", RuntimeError("internal detail"))

    assert refusal.code == grpc.StatusCode.UNAVAILABLE
    assert "internal detail" not in refusal.message
