import json

import pyarrow as pa
import pytest

from chatlake.chat_tables import CHAT_TABLES
from chatlake.errors import TypeSpecError
from chatlake.types import (
    arrow_schema,
    column_from_uc,
    parse_columns,
    parse_type,
    proto_scalar,
)


@pytest.mark.parametrize(
    ("text", "type_text", "type_name", "arrow"),
    [
        ("BIGINT", "bigint", "LONG", pa.int64()),
        ("long", "bigint", "LONG", pa.int64()),
        ("INT", "int", "INT", pa.int32()),
        ("SHORT", "smallint", "SHORT", pa.int16()),
        ("TINYINT", "tinyint", "BYTE", pa.int8()),
        ("VARCHAR(20)", "string", "STRING", pa.string()),
        ("TIMESTAMP", "timestamp", "TIMESTAMP", pa.timestamp("us", tz="UTC")),
        ("TIMESTAMP_NTZ", "timestamp_ntz", "TIMESTAMP_NTZ", pa.timestamp("us")),
        ("DATE", "date", "DATE", pa.date32()),
        ("VARIANT", "variant", "VARIANT", pa.string()),
        ("DECIMAL(10, 2)", "decimal(10,2)", "DECIMAL", pa.decimal128(10, 2)),
        ("ARRAY<STRING>", "array<string>", "ARRAY", pa.list_(pa.string())),
        (
            "MAP<STRING, BIGINT>",
            "map<string,bigint>",
            "MAP",
            pa.map_(pa.string(), pa.int64()),
        ),
        (
            "STRUCT<source: STRING, tags: ARRAY<STRING>>",
            "struct<source:string,tags:array<string>>",
            "STRUCT",
            pa.struct([("source", pa.string()), ("tags", pa.list_(pa.string()))]),
        ),
    ],
)
def test_type_spellings(text, type_text, type_name, arrow):
    parsed = parse_type(text)

    assert parsed.type_text == type_text
    assert parsed.type_name == type_name
    assert parsed.arrow() == arrow
    assert parse_type(parsed.type_text) == parsed


def test_column_list_with_constraints_and_comments():
    columns = parse_columns(
        "id STRING NOT NULL COMMENT 'the key', `odd name` INT, comment STRING"
    )

    assert [(c.name, c.nullable, c.comment) for c in columns] == [
        ("id", False, "the key"),
        ("odd name", True, None),
        ("comment", True, None),
    ]


def test_uc_column_info_round_trips():
    column = parse_columns("tags ARRAY<STRING> NOT NULL COMMENT 'labels'")[0]
    info = column.to_uc(position=3)

    assert info["type_text"] == "array<string>"
    assert info["position"] == 3
    assert json.loads(info["type_json"]) == {
        "name": "tags",
        "type": {"type": "array", "elementType": "string", "containsNull": True},
        "nullable": False,
        "metadata": {"comment": "labels"},
    }
    assert column_from_uc(info) == column


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ARRAY<", "unexpected end"),
        ("FOO", "unknown type 'FOO'"),
        ("MAP<DOUBLE, INT>", "map keys must be"),
        ("DECIMAL(50, 2)", "out of range"),
        ("STRUCT<a: INT, A: STRING>", "duplicate struct field 'A'"),
        ("INT INT", "unexpected text after the type"),
    ],
)
def test_bad_types_name_the_problem(text, message):
    with pytest.raises(TypeSpecError, match=message):
        parse_type(text)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("a INT, a STRING", "duplicate column 'a'"),
        ("a INT b", "expected ','"),
        ("a", "unexpected end"),
    ],
)
def test_bad_column_lists_name_the_problem(spec, message):
    with pytest.raises(TypeSpecError, match=message):
        parse_columns(spec)


def test_decimal_has_no_proto_mapping():
    with pytest.raises(TypeSpecError, match="DECIMAL has no protobuf mapping"):
        proto_scalar(parse_type("DECIMAL(10,2)"))

    assert proto_scalar(parse_type("DATE")) == "int32"
    assert proto_scalar(parse_type("TIMESTAMP")) == "int64"


@pytest.mark.parametrize("spec", CHAT_TABLES, ids=lambda s: s.name)
def test_chat_tables_parse_and_name_their_special_columns(spec):
    schema = arrow_schema(parse_columns(spec.columns))

    for column in spec.properties.values():
        assert column in schema.names
    assert schema.field("ingestion_time").type == pa.timestamp("us", tz="UTC")
