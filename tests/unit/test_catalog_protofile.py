"""Columns -> proto2 text -> compiled descriptor, and back."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from chatlake.catalog.protofile import _field_numbers, columns_from_proto, proto_text
from chatlake.errors import TypeSpecError
from chatlake.types import parse_columns

F = descriptor_pb2.FieldDescriptorProto


def write(tmp_path, text: str):
    path = tmp_path / "t.proto"
    path.write_text(text)
    return path


def test_proto_text_round_trips_through_protoc(tmp_path):
    spec = (
        "id STRING NOT NULL, n BIGINT, tags ARRAY<STRING>, counts MAP<STRING,INT>, "
        "meta STRUCT<source: STRING, score: DOUBLE>, items ARRAY<STRUCT<q: INT>>, "
        "by_key MAP<BIGINT,STRUCT<v: BOOLEAN>>"
    )
    columns = parse_columns(spec)
    path = write(tmp_path, proto_text("Row", columns))

    assert columns_from_proto(path, "Row") == columns


def test_required_and_optional_follow_nullability(tmp_path):
    text = proto_text("Row", parse_columns("a STRING NOT NULL, b INT"))

    assert "  required string a = 1;" in text
    assert "  optional int32 b = 2;" in text


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("d DECIMAL(10,2)", "DECIMAL has no protobuf mapping"),
        ("a ARRAY<ARRAY<INT>>", "has no protobuf mapping"),
        ("m MAP<STRING,ARRAY<INT>>", "has no protobuf mapping"),
    ],
)
def test_types_without_a_proto_mapping_are_named(spec, fragment):
    name = spec.split()[0]
    with pytest.raises(TypeSpecError, match=f"column '{name}': .*{fragment}"):
        proto_text("Row", parse_columns(spec))


def test_field_numbers_skip_the_reserved_range():
    numbers = _field_numbers()
    taken = [next(numbers) for _ in range(19001)]

    assert taken[:3] == [1, 2, 3]
    assert taken[18998:19000] == [18999, 20000]
    assert not any(19000 <= n <= 19999 for n in taken)


def test_fully_qualified_and_relative_names_resolve(tmp_path):
    path = write(
        tmp_path,
        (
            'syntax = "proto2";\npackage a.b;\n'
            "message Chat {\n"
            "  message Meta { optional string source = 1; }\n"
            "  optional Meta relative = 1;\n"
            "  optional .a.b.Chat.Meta qualified = 2;\n"
            "}\n"
        ),
    )

    columns = columns_from_proto(path, "Chat")
    assert [c.type.type_text for c in columns] == ["struct<source:string>"] * 2
    assert columns_from_proto(path, "a.b.Chat") == columns


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("optional uint64 n = 1;", "protobuf uint64 has no column type"),
        ("enum E { X = 0; } optional E e = 1;", "protobuf enum has no column type"),
        ("optional Chat self = 1;", "nest too deeply"),
    ],
)
def test_fields_without_a_column_type_are_refused(tmp_path, body, fragment):
    path = write(tmp_path, f'syntax = "proto2";\nmessage Chat {{ {body} }}\n')

    with pytest.raises(TypeSpecError, match=fragment):
        columns_from_proto(path, "Chat")


def test_unsigned_32_bit_becomes_bigint(tmp_path):
    path = write(tmp_path, 'syntax = "proto2";\nmessage C { optional uint32 n = 1; }\n')

    assert columns_from_proto(path, "C")[0].type.name == "BIGINT"


def test_missing_file_and_syntax_errors_are_clear(tmp_path):
    with pytest.raises(TypeSpecError, match="no such .proto file"):
        columns_from_proto(tmp_path / "absent.proto", "C")
    path = write(tmp_path, "this is not a proto file")
    with pytest.raises(TypeSpecError, match="protoc could not compile"):
        columns_from_proto(path, "C")
