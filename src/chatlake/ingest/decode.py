"""Records (protobuf or JSON) into Arrow record batches of the table's schema.

One :class:`Decoder` is built per stream. ``decode(records, offset)`` turns the
records of one message into one batch, or refuses the whole message with
INVALID_ARGUMENT naming the offset, the record, the column and the problem
(C03, C11, C14, C16). Values are checked as they are converted: narrow integer
ranges, VARIANT text that must be JSON, strings that must be valid UTF-8.
Error messages never quote record contents. Server-stamped columns
(``ingestion_time``) get the time of decoding.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from chatlake.ingest.errors import invalid
from chatlake.ingest.schema_check import CheckedDescriptor
from chatlake.types import INTEGER_RANGES, Column, ColumnType, arrow_schema

_EPOCH_DATE = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIMPLE = {
    "BIGINT",
    "INT",
    "FLOAT",
    "DOUBLE",
    "BOOLEAN",
    "BINARY",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_NTZ",
}


class _Bad(Exception):
    """One value does not fit its column; turned into INVALID_ARGUMENT."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"column {path!r}: {problem}")


Convert = Callable[[Any], Any]


def _range_check(column_type: ColumnType, path: str) -> Convert | None:
    bounds = INTEGER_RANGES.get(column_type.name)
    if column_type.name not in ("TINYINT", "SMALLINT"):
        return None
    low, high = bounds

    def check(value: int) -> int:
        if not low <= value <= high:
            raise _out_of_range(path, column_type)
        return value

    return check


def _out_of_range(path: str, column_type: ColumnType) -> _Bad:
    # The value itself stays out of the message: errors are logged.
    low, high = INTEGER_RANGES[column_type.name]
    return _Bad(path, f"value is out of range for {column_type} ({low} to {high})")


def _text_check(path: str) -> Convert:
    def check(value: str | bytes) -> str:
        if isinstance(value, bytes):  # upb hands back bytes for invalid UTF-8
            raise _Bad(path, "string is not valid UTF-8")
        return value

    return check


def _variant_check(path: str) -> Convert:
    text = _text_check(path)

    def check(value: str | bytes) -> str:
        value = text(value)
        try:
            json.loads(value)
        except (ValueError, RecursionError):
            raise _Bad(path, "VARIANT value is not valid JSON") from None
        return value

    return check


# ---------------------------------------------------------------- protobuf


_PACKED_PACKAGE = "chatlake_packed"


@lru_cache(maxsize=256)
def _message_classes(
    file_bytes: bytes, full_name: str
) -> tuple[type[Message], type[Message]]:
    """The record class and its packed-batch class, per distinct descriptor.

    The packed class is ``message Batch { repeated <Record> records = 1; }``:
    field 1 is where ProtoEncodedRecordBatch keeps its records, so a batch's
    wire bytes parse as all its records in one C-level call instead of one
    Python-level parse per record. It lives in a file of its own, so its name
    cannot collide with the client's messages.
    """
    from google.protobuf import descriptor_pb2

    pool = descriptor_pool.DescriptorPool()
    record_file = descriptor_pb2.FileDescriptorProto.FromString(file_bytes)
    pool.Add(record_file)
    packed_file = descriptor_pb2.FileDescriptorProto(
        name=f"{_PACKED_PACKAGE}/{record_file.name}",
        package=_PACKED_PACKAGE,
        syntax="proto2",
        dependency=[record_file.name],
    )
    packed_file.message_type.add(name="Batch").field.add(
        name="records",
        number=1,
        type=FieldDescriptor.TYPE_MESSAGE,
        label=FieldDescriptor.LABEL_REPEATED,
        type_name=f".{full_name}",
    )
    pool.Add(packed_file)
    record = message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
    packed = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKED_PACKAGE}.Batch")
    )
    return record, packed


def _proto_value(
    column_type: ColumnType, field: FieldDescriptor, path: str
) -> Convert | None:
    """A converter for one raw proto value, or None when it is already right."""
    kind = column_type.name
    if kind == "STRUCT":
        return _proto_struct(column_type, field.message_type, path)
    if kind == "STRING":
        return _text_check(path)
    if kind == "VARIANT":
        return _variant_check(path)
    return _range_check(column_type, path)


def _proto_struct(column_type: ColumnType, message_type, path: str) -> Convert:
    readers = [
        (
            column.name,
            _proto_reader(
                column,
                message_type.fields_by_name.get(column.name),
                f"{path}.{column.name}",
            ),
        )
        for column in column_type.fields
    ]

    def convert(message: Message) -> dict[str, Any]:
        return {name: read(message) for name, read in readers}

    return convert


def _proto_reader(column: Column, field: FieldDescriptor | None, path: str) -> Callable:
    """A function reading one column's value out of a parsed message."""
    if field is None:
        return lambda message: None
    name = field.name
    kind = column.type.name
    if kind == "ARRAY":
        convert = _proto_value(column.type.element, field, path)
        if convert is None:
            return lambda message: list(getattr(message, name))
        return lambda message: [convert(v) for v in getattr(message, name)]
    if kind == "MAP":
        entry = field.message_type.fields_by_name
        key = _proto_value(column.type.key, entry["key"], path) or (lambda k: k)
        value = _proto_value(column.type.value, entry["value"], path) or (lambda v: v)
        return lambda message: [
            (key(k), value(v)) for k, v in getattr(message, name).items()
        ]
    convert = _proto_value(column.type, field, path)
    if convert is None:
        convert = _identity
    if column.nullable:
        return lambda message: (
            convert(getattr(message, name)) if message.HasField(name) else None
        )
    return lambda message: convert(getattr(message, name))


def _identity(value: Any) -> Any:
    return value


def _proto_column(
    column: Column, field: FieldDescriptor | None, path: str
) -> Callable[[list[Message]], list]:
    """A function reading one column out of all parsed messages at once.

    Plain scalars, the bulk of chat records, use one comprehension per column;
    other types map the per-record reader.
    """
    kind = column.type.name
    if (
        field is None
        or kind in ("ARRAY", "MAP", "STRUCT", "VARIANT")
        or (_range_check(column.type, path) is not None)
    ):
        read = _proto_reader(column, field, path)
        return lambda messages: [read(m) for m in messages]
    name = field.name
    if column.nullable:
        extract = lambda messages: [  # noqa: E731
            getattr(m, name) if m.HasField(name) else None for m in messages
        ]
    else:
        extract = lambda messages: [getattr(m, name) for m in messages]  # noqa: E731
    if kind != "STRING":
        return extract

    def checked(messages: list[Message]) -> list:
        values = extract(messages)
        if bytes in map(type, values):  # one C-level scan of the column
            raise _Bad(path, "string is not valid UTF-8")
        return values

    return checked


# ---------------------------------------------------------------- JSON


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _json_value(column_type: ColumnType, path: str) -> Convert:
    """A converter from a decoded JSON value (not null) to the Arrow value."""
    kind = column_type.name
    makers = {
        "STRING": _json_string,
        "VARIANT": _json_variant,
        "BOOLEAN": _json_bool,
        "FLOAT": _json_float,
        "DOUBLE": _json_float,
        "BINARY": _json_binary,
        "DATE": _json_date,
        "TIMESTAMP": _json_timestamp,
        "TIMESTAMP_NTZ": _json_timestamp,
        "ARRAY": _json_array,
        "MAP": _json_map,
        "STRUCT": _json_struct,
    }
    if kind in INTEGER_RANGES:
        return _json_integer(column_type, path)
    if kind not in makers:
        raise invalid(f"column {path!r}: {column_type} cannot be written by a stream")
    return makers[kind](column_type, path)


def _expect(path: str, column_type: ColumnType, wanted: str, value: Any) -> _Bad:
    return _Bad(
        path, f"expected {wanted} ({column_type}), got {_json_type_name(value)}"
    )


def _json_string(column_type: ColumnType, path: str) -> Convert:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise _expect(path, column_type, "a string", value)
        return value

    return convert


def _json_variant(column_type: ColumnType, path: str) -> Convert:
    # A VARIANT is any JSON value; the table keeps its JSON text.
    return lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_bool(column_type: ColumnType, path: str) -> Convert:
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _expect(path, column_type, "true or false", value)
        return value

    return convert


def _json_float(column_type: ColumnType, path: str) -> Convert:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expect(path, column_type, "a number", value)
        return float(value)

    return convert


def _json_integer(column_type: ColumnType, path: str) -> Convert:
    low, high = INTEGER_RANGES[column_type.name]

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect(path, column_type, "an integer", value)
        if not low <= value <= high:
            raise _out_of_range(path, column_type)
        return value

    return convert


def _json_binary(column_type: ColumnType, path: str) -> Convert:
    def convert(value: Any) -> bytes:
        if not isinstance(value, str):
            raise _expect(path, column_type, "a base64 string", value)
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            raise _Bad(path, "BINARY value is not valid base64") from None

    return convert


def _json_date(column_type: ColumnType, path: str) -> Convert:
    check = _json_integer(ColumnType("INT"), path)

    def convert(value: Any) -> int:
        if isinstance(value, str):
            try:
                return (date.fromisoformat(value) - _EPOCH_DATE).days
            except ValueError:
                raise _Bad(path, "DATE text is not YYYY-MM-DD") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect(path, column_type, "days since 1970-01-01", value)
        return check(value)

    return convert


def _json_timestamp(column_type: ColumnType, path: str) -> Convert:
    check = _json_integer(ColumnType("BIGINT"), path)

    def convert(value: Any) -> int:
        if isinstance(value, str):
            return _iso_micros(value, path, column_type)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect(path, column_type, "microseconds since the epoch", value)
        return check(value)

    return convert


def _iso_micros(text: str, path: str, column_type: ColumnType) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(path, f"{column_type} text is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


_MICROSECOND = datetime.resolution


def _json_array(column_type: ColumnType, path: str) -> Convert:
    element = _json_nullable(column_type.element, f"{path}[]")

    def convert(value: Any) -> list:
        if not isinstance(value, list):
            raise _expect(path, column_type, "an array", value)
        return [element(v) for v in value]

    return convert


def _json_map(column_type: ColumnType, path: str) -> Convert:
    key = _json_value(column_type.key, f"{path} key")
    integral = column_type.key.name in INTEGER_RANGES
    value_of = _json_nullable(column_type.value, f"{path} value")

    def convert(value: Any) -> list:
        if not isinstance(value, dict):
            raise _expect(path, column_type, "an object", value)
        return [
            (key(_map_key(k, integral, path)), value_of(v)) for k, v in value.items()
        ]

    return convert


def _map_key(text: str, integral: bool, path: str) -> Any:
    if not integral:
        return text
    try:
        return int(text)
    except ValueError:
        raise _Bad(path, "map key is not an integer") from None


def _json_struct(column_type: ColumnType, path: str) -> Convert:
    readers = _json_readers(column_type.fields, f"{path}.")

    def convert(value: Any) -> dict:
        if not isinstance(value, dict):
            raise _expect(path, column_type, "an object", value)
        return _json_row(value, readers, path)

    return convert


def _json_nullable(column_type: ColumnType, path: str) -> Convert:
    convert = _json_value(column_type, path)
    return lambda value: None if value is None else convert(value)


def _json_readers(columns, prefix: str) -> dict[str, tuple[Convert, bool]]:
    return {c.name: (_json_value(c.type, prefix + c.name), c.nullable) for c in columns}


def _json_row(obj: dict, readers: dict[str, tuple[Convert, bool]], where: str) -> dict:
    for name in obj:
        if name not in readers:
            place = f"in {where!r}" if where else "in the table"
            raise _Bad(where + "." + name if where else name, f"unknown field {place}")
    row = {}
    for name, (convert, nullable) in readers.items():
        value = obj.get(name)
        if value is None:
            if not nullable:
                path = f"{where}.{name}" if where else name
                raise _Bad(path, "NOT NULL column is missing or null")
            row[name] = None
        else:
            row[name] = convert(value)
    return row


# ---------------------------------------------------------------- decoder


class Decoder:
    """Decodes one stream's messages into batches of the table's schema."""

    def __init__(
        self,
        columns: list[Column],
        stamped: frozenset[str] = frozenset(),
        checked: CheckedDescriptor | None = None,
    ) -> None:
        self.schema = arrow_schema(columns)
        self.stamped = stamped
        self.writable = [c for c in columns if c.name not in stamped]
        self.json_readers = _json_readers(self.writable, "")
        self.message_class = None
        if checked is not None:
            file_bytes = checked.file_proto().SerializeToString(deterministic=True)
            self.message_class, self.packed_class = _message_classes(
                file_bytes, checked.full_name
            )
            fields = self.message_class.DESCRIPTOR.fields_by_name
            self.proto_readers = [
                _proto_reader(c, fields.get(c.name), c.name) for c in self.writable
            ]
            self.proto_columns = [
                _proto_column(c, fields.get(c.name), c.name) for c in self.writable
            ]
            self.check_required = _has_required(self.message_class.DESCRIPTOR)

    def decode(self, records: Sequence[bytes | str], offset: int) -> pa.RecordBatch:
        """All records of one message as one batch; any bad record refuses them all."""
        return self.batch(self.columns(records, offset), len(records), offset)

    def columns(
        self, records: Sequence[bytes | str], offset: int, packed: bytes | None = None
    ) -> list[list]:
        """Checked values of one message, one list per written column.

        ``packed``, when given, is the serialized ProtoEncodedRecordBatch that
        holds exactly ``records``: a PROTO stream then parses them all at once.
        Lists of several messages may be concatenated and turned into one
        batch with :meth:`batch`.
        """
        if self.message_class is not None:
            return self._proto_columns(records, offset, packed)
        return self._json_columns(records, offset)

    def _proto_columns(
        self, records: Sequence[bytes], offset: int, packed: bytes | None
    ) -> list[list]:
        messages = None if packed is None else self._parse_packed(packed, records)
        if messages is None:
            messages = self._parse(records, offset)
        try:
            return [extract(messages) for extract in self.proto_columns]
        except _Bad:
            # Find the first bad record, to name it.
            for index, message in enumerate(messages):
                try:
                    for read in self.proto_readers:
                        read(message)
                except _Bad as bad:
                    raise _refuse(offset, index, str(bad)) from None
            raise

    def _parse_packed(self, packed: bytes, records: Sequence) -> list[Message] | None:
        """All records parsed in one call, or None if any of them is bad.

        On None the caller parses them one by one, which names the bad record.
        """
        try:
            batch = self.packed_class.FromString(packed)
        except DecodeError:
            return None
        messages = batch.records
        if len(messages) != len(records):  # not the batch that holds records
            return None
        if self.check_required and not batch.IsInitialized():
            return None
        return list(messages)

    def _parse(self, records: Sequence[bytes], offset: int) -> list[Message]:
        parse = self.message_class.FromString
        messages = []
        for index, data in enumerate(records):
            if isinstance(data, str):
                raise _refuse(offset, index, "a JSON record on a PROTO stream")
            try:
                message = parse(data)
            except DecodeError:
                name = self.message_class.DESCRIPTOR.name
                raise _refuse(
                    offset, index, f"bytes are not a valid protobuf {name} message"
                ) from None
            if self.check_required and not message.IsInitialized():
                missing = ", ".join(message.FindInitializationErrors())
                raise _refuse(offset, index, f"required fields missing: {missing}")
            messages.append(message)
        return messages

    def _json_columns(self, records: Sequence[str], offset: int) -> list[list]:
        columns: list[list] = [[] for _ in self.writable]
        for index, text in enumerate(records):
            if isinstance(text, bytes):
                raise _refuse(offset, index, "a protobuf record on a JSON stream")
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                raise _refuse(offset, index, "not valid JSON") from None
            if not isinstance(obj, dict):
                raise _refuse(
                    offset, index, f"expected a JSON object, got {_json_type_name(obj)}"
                )
            if "\\u" in text and _SURROGATE_ESCAPE.search(text):
                _refuse_lone_surrogates(obj, offset, index)
            try:
                row = _json_row(obj, self.json_readers, "")
            except _Bad as bad:
                raise _refuse(offset, index, str(bad)) from None
            for column, value in zip(columns, row.values(), strict=True):
                column.append(value)
        return columns

    def batch(self, rows: list[list], count: int, offset: int) -> pa.RecordBatch:
        """An Arrow batch of the table's schema, stamped columns filled in."""
        values = dict(zip((c.name for c in self.writable), rows, strict=True))
        now_us = time.time_ns() // 1000
        arrays = []
        for field in self.schema:
            data = (
                [now_us] * count if field.name in self.stamped else values[field.name]
            )
            try:
                arrays.append(pa.array(data, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
                raise invalid(
                    f"offset {offset}: column {field.name!r}: {error}"
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _has_required(descriptor, seen=None) -> bool:
    """True if the message or any nested message has a required field."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return False
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.is_required:
            return True
        if field.message_type is not None and _has_required(field.message_type, seen):
            return True
    return False


# JSON can spell a lone UTF-16 surrogate (\\ud800) that json.loads accepts
# but no UTF-8 text can hold; only texts with such an escape are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(obj: Any, offset: int, index: int) -> None:
    where = _lone_surrogate_path(obj, "")
    if where is not None:
        raise _refuse(
            offset, index, f"{where}: text is not valid UTF-8 (a lone surrogate)"
        )


def _lone_surrogate_path(value: Any, path: str) -> str | None:
    """Where the first string or key that UTF-8 cannot encode is, else None."""
    if isinstance(value, str):
        return None if _encodes(value) else f"column {path!r}"
    if isinstance(value, list):
        items = ((f"{path}[]", item) for item in value)
    elif isinstance(value, dict):
        for key in value:
            if not _encodes(key):  # a key is data too: it is not quoted
                return f"a key in column {path!r}" if path else "a field name"
        items = ((f"{path}.{key}" if path else key, v) for key, v in value.items())
    else:
        return None
    for inner_path, item in items:
        found = _lone_surrogate_path(item, inner_path)
        if found is not None:
            return found
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse(offset: int, index: int, problem: str):
    return invalid(f"offset {offset}: record {index}: {problem}")
