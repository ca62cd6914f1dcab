"""The stream's protobuf descriptor checked against the table's columns (C01).

A PROTO stream sends one serialized ``DescriptorProto``; nested types may only
appear as nested messages inside it, and fields may name them relatively
(``Metadata``) or fully qualified (``.Chat.Metadata``, ``.pkg.Chat.Metadata``).
:func:`check_descriptor` resolves every reference, checks each field against
its column (name, type by the mapping table, ``optional`` exactly for nullable
columns, ``required`` for NOT NULL ones) and returns a :class:`CheckedDescriptor`
whose type names are rewritten into one private package, ready for a pool.

Columns the server stamps (``ingestion_time``) must not be in the descriptor.
Nullable columns the descriptor leaves out are written as nulls, so a table can
gain nullable columns without breaking its writers.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from chatlake.errors import TypeSpecError
from chatlake.ingest.errors import invalid
from chatlake.types import Column, ColumnType, proto_scalar

FDP = descriptor_pb2.FieldDescriptorProto
PACKAGE = "chatlake_stream"

# Wire-compatible proto2 types accepted for each scalar of the mapping table.
_ACCEPTED = {
    "int32": {FDP.TYPE_INT32, FDP.TYPE_SINT32, FDP.TYPE_SFIXED32},
    "int64": {FDP.TYPE_INT64, FDP.TYPE_SINT64, FDP.TYPE_SFIXED64},
    "float": {FDP.TYPE_FLOAT},
    "double": {FDP.TYPE_DOUBLE},
    "string": {FDP.TYPE_STRING},
    "bool": {FDP.TYPE_BOOL},
    "bytes": {FDP.TYPE_BYTES},
}

_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower() for name, value in FDP.Type.items()
}
_LABEL_NAMES = {
    FDP.LABEL_OPTIONAL: "optional",
    FDP.LABEL_REQUIRED: "required",
    FDP.LABEL_REPEATED: "repeated",
}


@dataclass(frozen=True)
class CheckedDescriptor:
    """A descriptor that fits the table, with type names made absolute."""

    message: descriptor_pb2.DescriptorProto

    @property
    def full_name(self) -> str:
        return f"{PACKAGE}.{self.message.name}"

    def file_proto(self) -> descriptor_pb2.FileDescriptorProto:
        """A one-message file to load into a descriptor pool."""
        return descriptor_pb2.FileDescriptorProto(
            name=f"{PACKAGE}/{self.message.name}.proto",
            package=PACKAGE,
            syntax="proto2",
            message_type=[self.message],
        )


def parse_descriptor(data: bytes) -> descriptor_pb2.DescriptorProto:
    """Read ``descriptor_proto`` bytes; garbage is refused, not crashed on."""
    message = descriptor_pb2.DescriptorProto()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise invalid(
            f"descriptor_proto is not a serialized DescriptorProto: {error}"
        ) from None
    if not message.name:
        raise invalid("descriptor_proto has no message name")
    return message


def check_descriptor(
    data: bytes, columns: list[Column], stamped: frozenset[str] = frozenset()
) -> CheckedDescriptor:
    """Check a stream's descriptor against the table; raise INVALID_ARGUMENT."""
    message = parse_descriptor(data)
    _Resolver(message).rewrite()
    writable = [c for c in columns if c.name not in stamped]
    for field in message.field:
        if field.name in stamped:
            raise invalid(
                f"field {field.name!r} is filled by the server at ingest; "
                f"remove it from the descriptor"
            )
    _check_message(message, writable, prefix="", messages=_index(message))
    return CheckedDescriptor(message)


def _index(
    root: descriptor_pb2.DescriptorProto,
) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message of the descriptor by its absolute (rewritten) name."""
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(message: descriptor_pb2.DescriptorProto, path: str) -> None:
        found[f".{path}"] = message
        for nested in message.nested_type:
            walk(nested, f"{path}.{nested.name}")

    walk(root, f"{PACKAGE}.{root.name}")
    return found


class _Resolver:
    """Rewrites relative and foreign-qualified type names to absolute ones."""

    def __init__(self, root: descriptor_pb2.DescriptorProto) -> None:
        self.root = root
        self.paths: set[tuple[str, ...]] = set()
        self._collect(root, (root.name,))

    def _collect(
        self, message: descriptor_pb2.DescriptorProto, path: tuple[str, ...]
    ) -> None:
        self.paths.add(path)
        for nested in message.nested_type:
            self._collect(nested, (*path, nested.name))

    def rewrite(self) -> None:
        self._rewrite(self.root, (self.root.name,))

    def _rewrite(
        self, message: descriptor_pb2.DescriptorProto, scope: tuple[str, ...]
    ) -> None:
        for field in message.field:
            if field.type in (FDP.TYPE_ENUM, FDP.TYPE_GROUP):
                kind = _TYPE_NAMES[field.type]
                raise invalid(
                    f"field {field.name!r} is a proto {kind}; no column type maps to it"
                )
            if field.type_name or field.type == FDP.TYPE_MESSAGE:
                path = self._resolve(field.type_name, scope, field.name)
                field.type_name = "." + ".".join((PACKAGE, *path))
                field.type = FDP.TYPE_MESSAGE
        for nested in message.nested_type:
            self._rewrite(nested, (*scope, nested.name))

    def _resolve(self, ref: str, scope: tuple[str, ...], field: str) -> tuple[str, ...]:
        parts = tuple(p for p in ref.lstrip(".").split(".") if p)
        if ref.startswith("."):
            # Absolute: skip whatever package the client's file had.
            for start in range(len(parts)):
                if parts[start:] in self.paths:
                    return parts[start:]
        else:
            for depth in range(len(scope), -1, -1):
                if (*scope[:depth], *parts) in self.paths:
                    return (*scope[:depth], *parts)
        raise invalid(
            f"field {field!r} refers to message type {ref!r}, which is not nested "
            f"in the descriptor (nested messages are the only types a stream can "
            f"carry)"
        )


def _check_message(
    message: descriptor_pb2.DescriptorProto,
    columns: list[Column] | tuple[Column, ...],
    prefix: str,
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> None:
    by_name = {c.name: c for c in columns}
    fields = {f.name: f for f in message.field}
    for name in fields:
        if name not in by_name:
            raise invalid(
                f"field {prefix + name!r} of message {message.name!r} has no column "
                f"in the table"
            )
    for column in columns:
        field = fields.get(column.name)
        if field is None:
            if not column.nullable:
                raise invalid(
                    f"column {prefix + column.name!r} ({column.type}, NOT NULL) is "
                    f"missing from message {message.name!r}"
                )
            continue
        _check_field(column, field, prefix + column.name, messages)


def _check_field(
    column: Column,
    field: FDP,
    path: str,
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> None:
    kind = column.type.name
    if kind in ("ARRAY", "MAP"):
        if field.label != FDP.LABEL_REPEATED:
            raise _mismatch(path, column.type, field, messages)
        if kind == "ARRAY":
            _check_array(column.type, field, path, messages)
        else:
            _check_map(column.type, field, path, messages)
        return
    _check_label(column, field, path, messages)
    _check_value(column.type, field, path, messages)


def _check_label(column: Column, field: FDP, path: str, messages) -> None:
    wanted = FDP.LABEL_OPTIONAL if column.nullable else FDP.LABEL_REQUIRED
    if field.label == wanted:
        return
    if field.label == FDP.LABEL_REPEATED:
        raise _mismatch(path, column.type, field, messages)
    nullability = "nullable" if column.nullable else "NOT NULL"
    raise invalid(
        f"column {path!r} is {nullability}: field {field.name!r} must be "
        f"{_LABEL_NAMES[wanted]}, not {_LABEL_NAMES[field.label]}"
    )


def _check_array(column_type: ColumnType, field: FDP, path: str, messages) -> None:
    element = column_type.element
    if element.name in ("ARRAY", "MAP") or _is_map(field, messages):
        raise _mismatch(path, column_type, field, messages)
    _check_value(element, field, path, messages, whole=column_type)


def _check_map(column_type: ColumnType, field: FDP, path: str, messages) -> None:
    if not _is_map(field, messages):
        raise _mismatch(path, column_type, field, messages)
    entry = messages[field.type_name]
    parts = {f.name: f for f in entry.field}
    key, value = parts.get("key"), parts.get("value")
    if key is None or value is None or column_type.value.name in ("ARRAY", "MAP"):
        raise _mismatch(path, column_type, field, messages)
    _check_value(column_type.key, key, path, messages, whole=column_type, top=field)
    _check_value(column_type.value, value, path, messages, whole=column_type, top=field)


def _check_value(
    column_type: ColumnType,
    field: FDP,
    path: str,
    messages,
    whole: ColumnType | None = None,
    top: FDP | None = None,
) -> None:
    """Check one scalar or struct value type (a column, element, key or value)."""
    if column_type.name == "STRUCT":
        if field.type != FDP.TYPE_MESSAGE or _is_map(field, messages):
            raise _mismatch(path, whole or column_type, top or field, messages)
        nested = messages[field.type_name]
        _check_message(nested, column_type.fields, f"{path}.", messages)
        return
    try:
        scalar = proto_scalar(column_type)
    except TypeSpecError as error:
        raise invalid(f"column {path!r}: {error}") from None
    if field.type not in _ACCEPTED[scalar]:
        raise _mismatch(path, whole or column_type, top or field, messages)


def _is_map(field: FDP, messages) -> bool:
    entry = messages.get(field.type_name) if field.type == FDP.TYPE_MESSAGE else None
    return bool(entry is not None and entry.options.map_entry)


def _describe(field: FDP, messages) -> str:
    """How a field reads in a .proto file, for error messages."""
    if _is_map(field, messages):
        entry = {f.name: f for f in messages[field.type_name].field}
        key, value = entry.get("key"), entry.get("value")
        if key is not None and value is not None:
            return f"map<{_type_of(key)}, {_type_of(value)}>"
    label = _LABEL_NAMES.get(field.label, "optional")
    return f"{label} {_type_of(field)}"


def _type_of(field: FDP) -> str:
    if field.type == FDP.TYPE_MESSAGE:
        return "message " + field.type_name.rsplit(".", 1)[-1]
    return _TYPE_NAMES.get(field.type, str(field.type))


def _mismatch(path: str, column_type: ColumnType, field: FDP, messages):
    return invalid(
        f"column {path!r} has type {column_type} but field {field.name!r} is "
        f"{_describe(field, messages)}"
    )
