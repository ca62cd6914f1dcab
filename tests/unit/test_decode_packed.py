"""A proto batch parsed in one call (its ProtoEncodedRecordBatch wire bytes) must
give exactly what parsing record by record gives, refusals included."""

from __future__ import annotations

import pytest

from chatlake.ingest import zerobus_pb2 as pb
from chatlake.ingest.decode import Decoder
from chatlake.ingest.schema_check import check_descriptor
from tests.unit.test_decode import COLUMNS, FULL, STAMPED, descriptor, encode


@pytest.fixture(scope="module")
def proto_decoder() -> Decoder:
    checked = check_descriptor(descriptor().SerializeToString(), COLUMNS, STAMPED)
    return Decoder(COLUMNS, STAMPED, checked)


def packed(records: list[bytes]) -> bytes:
    return pb.ProtoEncodedRecordBatch(records=records).SerializeToString()


def columns_of(decoder: Decoder, records: list[bytes], wire: bytes | None) -> list:
    return decoder.columns(records, offset=7, packed=wire)


def refusal_of(decoder: Decoder, records: list[bytes]) -> str:
    with pytest.raises(Exception) as caught:
        decoder.columns(records, offset=7, packed=packed(records))
    return str(caught.value)


def test_packed_batch_gives_the_same_columns_as_record_by_record(proto_decoder):
    records = [
        encode(proto_decoder, dict(FULL, raw=b"\x00\xff")),
        encode(proto_decoder, {"id": "only"}),
        encode(proto_decoder, {"id": "", "tags": ["a", "b"], "counts": {"k": 2}}),
    ]

    one_call = columns_of(proto_decoder, records, packed(records))
    each = columns_of(proto_decoder, records, None)

    assert one_call == each
    # And the one-call parse really served it, rather than the fallback.
    assert len(proto_decoder._parse_packed(packed(records), records)) == 3
    names = [c.name for c in proto_decoder.writable]
    assert one_call[names.index("id")] == ["t-1", "only", ""]
    assert one_call[names.index("tags")] == [["x", "ÿ"], [], ["a", "b"]]
    assert one_call[names.index("counts")] == [[("a", 1)], [], [("k", 2)]]
    assert one_call[names.index("big")] == [2**63 - 1, None, None]


def test_wire_bytes_of_other_records_are_not_trusted(proto_decoder):
    records = [encode(proto_decoder, {"id": "a"}), encode(proto_decoder, {"id": "b"})]
    other = packed([encode(proto_decoder, {"id": "zz"})])

    names = [c.name for c in proto_decoder.writable]
    assert columns_of(proto_decoder, records, other)[names.index("id")] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (b"\xff\xff\xff\xff\xff\xff\xff", "bytes are not a valid protobuf Row message"),
        (b"\x18\x01", "required fields missing: id"),
        (b"\x0a\x02\xff\xfe", "column 'id': string is not valid UTF-8"),
        (
            b"\x0a\x01a\x10\xc8\x01",
            "column 'tiny': value is out of range for TINYINT (-128 to 127)",
        ),
    ],
)
def test_a_bad_record_in_a_packed_batch_is_named(proto_decoder, bad, problem):
    good = encode(proto_decoder, {"id": "fine"})

    assert refusal_of(proto_decoder, [good, good, bad, good]) == (
        f"offset 7: record 2: {problem}"
    )
