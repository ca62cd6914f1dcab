"""Tables and .proto files: columns from a proto2 message, proto2 text from columns.

The mapping is the one in zerobus-protocol.md section 7 (and chatlake.types):
int32 <-> INT, int64 <-> BIGINT, repeated T <-> ARRAY<T>, map<K,V> <-> MAP<K,V>,
a nested message <-> STRUCT, ``required`` <-> NOT NULL. Types a protobuf field
cannot tell apart (TIMESTAMP is an int64, DATE an int32, VARIANT a string) are
chosen with overrides such as ``{"event_time": "TIMESTAMP"}``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from chatlake.errors import TypeSpecError
from chatlake.types import Column, ColumnType, parse_type, proto_scalar

FieldProto = descriptor_pb2.FieldDescriptorProto

_FROM_PROTO = {
    FieldProto.TYPE_DOUBLE: "DOUBLE",
    FieldProto.TYPE_FLOAT: "FLOAT",
    FieldProto.TYPE_INT64: "BIGINT",
    FieldProto.TYPE_SINT64: "BIGINT",
    FieldProto.TYPE_SFIXED64: "BIGINT",
    FieldProto.TYPE_INT32: "INT",
    FieldProto.TYPE_SINT32: "INT",
    FieldProto.TYPE_SFIXED32: "INT",
    # Unsigned 32-bit values do not fit INT; BIGINT holds them all.
    FieldProto.TYPE_UINT32: "BIGINT",
    FieldProto.TYPE_FIXED32: "BIGINT",
    FieldProto.TYPE_BOOL: "BOOLEAN",
    FieldProto.TYPE_STRING: "STRING",
    FieldProto.TYPE_BYTES: "BINARY",
}
# Field numbers protobuf reserves for itself.
_RESERVED_NUMBERS = range(19000, 20000)


# -- .proto -> columns -------------------------------------------------------------


def columns_from_proto(
    path: Path, message: str, overrides: dict[str, str] | None = None
) -> list[Column]:
    """The columns of ``message`` in the .proto file at ``path``."""
    files = _compile(path)
    messages = _messages(files)
    top = _find(messages, message, path)
    overrides = dict(overrides or {})
    columns = [_column(messages, top, field, overrides) for field in top.field]
    if overrides:
        raise TypeSpecError(f"--type names no field of {message}: {sorted(overrides)}")
    return columns


def _compile(path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        from grpc_tools import protoc
    except ImportError:
        raise TypeSpecError(
            "reading .proto files needs grpcio-tools: pip install 'grpcio-tools<1.76'"
        ) from None
    if not path.is_file():
        raise TypeSpecError(f"no such .proto file: {path}")
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "protoc",
            f"-I{path.parent.resolve()}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(path.resolve()),
        ]
        if protoc.main(args) != 0 or not out.exists():
            raise TypeSpecError(
                f"protoc could not compile {path} (see its output above)"
            )
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _messages(files: descriptor_pb2.FileDescriptorSet) -> dict[str, object]:
    """Every message by its fully qualified name (``.pkg.Outer.Inner``)."""
    found: dict[str, object] = {}

    def visit(prefix: str, message) -> None:
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            visit(name, nested)

    for file in files.file:
        prefix = f".{file.package}" if file.package else ""
        for message in file.message_type:
            visit(prefix, message)
    return found


def _find(messages: dict[str, object], name: str, path: Path):
    wanted = name if name.startswith(".") else f".{name}"
    matches = [m for full, m in messages.items() if full.endswith(wanted)]
    if len(matches) != 1:
        known = ", ".join(sorted(full.lstrip(".") for full in messages)) or "none"
        problem = "no message" if not matches else "more than one message"
        raise TypeSpecError(f"{problem} named {name!r} in {path}; messages: {known}")
    return matches[0]


def _column(messages, owner, field, overrides: dict[str, str]) -> Column:
    column_type = _field_type(messages, owner, field, depth=0)
    if field.name in overrides:
        column_type = _override(field.name, column_type, overrides.pop(field.name))
    required = field.label == FieldProto.LABEL_REQUIRED
    return Column(field.name, column_type, nullable=not required)


def _override(name: str, found: ColumnType, text: str) -> ColumnType:
    wanted = parse_type(text)
    if _proto_of(wanted) != _proto_of(found):
        raise TypeSpecError(
            f"field {name!r} is {found} in the .proto; {wanted} needs a "
            f"{_proto_of(wanted)} field"
        )
    return wanted


def _proto_of(column_type: ColumnType) -> str:
    if column_type.name in ("ARRAY", "MAP", "STRUCT"):
        return column_type.type_text
    if column_type.name == "BIGINT":
        return "int64"
    return proto_scalar(column_type)


def _field_type(messages, owner, field, depth: int) -> ColumnType:
    if depth > 32:
        raise TypeSpecError(
            f"field {field.name!r}: messages nest too deeply (recursive?)"
        )
    if field.type == FieldProto.TYPE_MESSAGE:
        inner = _resolve(messages, owner, field.type_name)
        if inner.options.map_entry:
            return _map_type(messages, inner, field, depth)
        element = _struct_type(messages, inner, depth)
    else:
        element = _scalar_type(field)
    if field.label == FieldProto.LABEL_REPEATED:
        return ColumnType("ARRAY", element=element)
    return element


def _scalar_type(field) -> ColumnType:
    name = _FROM_PROTO.get(field.type)
    if name is None:
        kind = FieldProto.Type.Name(field.type).removeprefix("TYPE_").lower()
        raise TypeSpecError(f"field {field.name!r}: protobuf {kind} has no column type")
    return ColumnType(name)


def _struct_type(messages, message, depth: int) -> ColumnType:
    fields = tuple(
        Column(
            f.name,
            _field_type(messages, message, f, depth + 1),
            nullable=f.label != FieldProto.LABEL_REQUIRED,
        )
        for f in message.field
    )
    if not fields:
        raise TypeSpecError(f"message {message.name!r} has no fields")
    return ColumnType("STRUCT", fields=fields)


def _map_type(messages, entry, field, depth: int) -> ColumnType:
    key_field, value_field = entry.field[0], entry.field[1]
    key = _field_type(messages, entry, key_field, depth + 1)
    value = _field_type(messages, entry, value_field, depth + 1)
    return ColumnType("MAP", key=key, value=value)


def _resolve(messages, owner, type_name: str):
    # protoc resolves names in descriptor sets to fully qualified ones.
    message = messages.get(type_name)
    if message is None:
        raise TypeSpecError(f"message type {type_name!r} is not defined")
    return message


# -- columns -> .proto ---------------------------------------------------------------


def proto_text(message: str, columns: list[Column]) -> str:
    """A proto2 file with one message describing a table's columns."""
    lines = ['syntax = "proto2";', "", f"message {message} {{"]
    lines += _message_body(columns, indent=1)
    lines += ["}", ""]
    return "\n".join(lines)


def _message_body(columns, indent: int) -> list[str]:
    lines: list[str] = []
    numbers = _field_numbers()
    for column in columns:
        label, type_name, nested = _proto_field(column, indent)
        lines += nested
        prefix = f"{label} " if label else ""
        lines.append(
            f"{'  ' * indent}{prefix}{type_name} {column.name} = {next(numbers)};"
        )
    return lines


def _field_numbers():
    number = 1
    while True:
        if number in _RESERVED_NUMBERS:
            number = _RESERVED_NUMBERS.stop
        yield number
        number += 1


def _proto_field(column: Column, indent: int) -> tuple[str, str, list[str]]:
    """(label, type, nested message lines) of one column."""
    column_type = column.type
    label = "optional" if column.nullable else "required"
    try:
        if column_type.name == "ARRAY":
            element = column_type.element
            if element.name in ("ARRAY", "MAP"):
                raise TypeSpecError(f"{column_type} has no protobuf mapping")
            _, type_name, nested = _proto_field(Column(column.name, element), indent)
            return "repeated", type_name, nested
        if column_type.name == "MAP":
            return _map_field(column, indent)
        if column_type.name == "STRUCT":
            return label, *_nested(column.name, column_type, indent)
        return label, proto_scalar(column_type), []
    except TypeSpecError as error:
        raise TypeSpecError(f"column {column.name!r}: {error}") from None


def _map_field(column: Column, indent: int) -> tuple[str, str, list[str]]:
    key, value = column.type.key, column.type.value
    if value.name in ("ARRAY", "MAP"):
        raise TypeSpecError(f"{column.type} has no protobuf mapping")
    nested: list[str] = []
    if value.name == "STRUCT":
        value_name, nested = _nested(column.name, value, indent)
    else:
        value_name = proto_scalar(value)
    return "", f"map<{proto_scalar(key)}, {value_name}>", nested


def _nested(name: str, struct: ColumnType, indent: int) -> tuple[str, list[str]]:
    message = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    pad = "  " * indent
    body = _message_body(list(struct.fields), indent + 1)
    return message, [f"{pad}message {message} {{", *body, f"{pad}}}"]
