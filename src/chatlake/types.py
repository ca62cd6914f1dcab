"""Column types: Unity Catalog type text <-> Arrow <-> protobuf.

One parser reads the SQL spelling of a type (``BIGINT``, ``ARRAY<STRING>``,
``STRUCT<source: STRING, tags: ARRAY<STRING>>``, ``DECIMAL(10,2)``) into a
:class:`ColumnType`, and every other spelling is derived from it: the
``type_text``/``type_name``/``type_json`` a Unity Catalog column carries, the
Arrow type of the Delta table, and the proto2 type a Zerobus record uses.

>>> parse_type("map<string, bigint>").type_text
'map<string,bigint>'
>>> [c.name for c in parse_columns("id STRING NOT NULL, n INT COMMENT 'count'")]
['id', 'n']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from chatlake.errors import TypeSpecError

# Canonical name -> (UC ColumnTypeName, Spark JSON name, proto2 scalar or None).
_SCALARS: dict[str, tuple[str, str, str | None]] = {
    "STRING": ("STRING", "string", "string"),
    "BIGINT": ("LONG", "long", "int64"),
    "INT": ("INT", "integer", "int32"),
    "SMALLINT": ("SHORT", "short", "int32"),
    "TINYINT": ("BYTE", "byte", "int32"),
    "FLOAT": ("FLOAT", "float", "float"),
    "DOUBLE": ("DOUBLE", "double", "double"),
    "BOOLEAN": ("BOOLEAN", "boolean", "bool"),
    "BINARY": ("BINARY", "binary", "bytes"),
    "DATE": ("DATE", "date", "int32"),
    "TIMESTAMP": ("TIMESTAMP", "timestamp", "int64"),
    "TIMESTAMP_NTZ": ("TIMESTAMP_NTZ", "timestamp_ntz", "int64"),
    "VARIANT": ("VARIANT", "variant", "string"),
}

_ALIASES = {
    "LONG": "BIGINT",
    "INTEGER": "INT",
    "SHORT": "SMALLINT",
    "BYTE": "TINYINT",
    "BOOL": "BOOLEAN",
    "REAL": "FLOAT",
    "DEC": "DECIMAL",
    "NUMERIC": "DECIMAL",
    "VARCHAR": "STRING",
    "CHAR": "STRING",
}

_ARROW_SCALARS: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BINARY": pa.binary(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP_NTZ": pa.timestamp("us"),
    # Delta's variant encoding is not writable from Python yet: the JSON text is kept.
    "VARIANT": pa.string(),
}

# Integer columns narrower than their proto type: the range a value must fit.
INTEGER_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INT": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
}

MAP_KEY_TYPES = {"STRING", "BIGINT", "INT", "SMALLINT", "TINYINT", "BOOLEAN"}


@dataclass(frozen=True)
class ColumnType:
    """A parsed column type; compound types hold their parts."""

    name: str
    element: ColumnType | None = None
    key: ColumnType | None = None
    value: ColumnType | None = None
    fields: tuple[Column, ...] = ()
    precision: int | None = None
    scale: int | None = None

    @property
    def type_text(self) -> str:
        if self.name == "ARRAY":
            return f"array<{self.element.type_text}>"
        if self.name == "MAP":
            return f"map<{self.key.type_text},{self.value.type_text}>"
        if self.name == "STRUCT":
            inner = ",".join(f"{f.name}:{f.type.type_text}" for f in self.fields)
            return f"struct<{inner}>"
        if self.name == "DECIMAL":
            return f"decimal({self.precision},{self.scale})"
        return self.name.lower()

    @property
    def type_name(self) -> str:
        if self.name in _SCALARS:
            return _SCALARS[self.name][0]
        return self.name

    def type_json(self) -> Any:
        """The type as Spark's JSON schema spells it (a string or an object)."""
        if self.name == "ARRAY":
            return {
                "type": "array",
                "elementType": self.element.type_json(),
                "containsNull": True,
            }
        if self.name == "MAP":
            return {
                "type": "map",
                "keyType": self.key.type_json(),
                "valueType": self.value.type_json(),
                "valueContainsNull": True,
            }
        if self.name == "STRUCT":
            return {"type": "struct", "fields": [f.struct_field() for f in self.fields]}
        if self.name == "DECIMAL":
            return f"decimal({self.precision},{self.scale})"
        return _SCALARS[self.name][1]

    def arrow(self) -> pa.DataType:
        if self.name == "ARRAY":
            return pa.list_(self.element.arrow())
        if self.name == "MAP":
            return pa.map_(self.key.arrow(), self.value.arrow())
        if self.name == "STRUCT":
            return pa.struct([f.arrow_field() for f in self.fields])
        if self.name == "DECIMAL":
            return pa.decimal128(self.precision, self.scale)
        return _ARROW_SCALARS[self.name]

    def __str__(self) -> str:
        return self.type_text.upper()


@dataclass(frozen=True)
class Column:
    """A named column (or struct field) with its type and nullability."""

    name: str
    type: ColumnType
    nullable: bool = True
    comment: str | None = field(default=None, compare=False)

    def struct_field(self) -> dict[str, Any]:
        """Spark's StructField JSON object for this column."""
        metadata = {"comment": self.comment} if self.comment else {}
        return {
            "name": self.name,
            "type": self.type.type_json(),
            "nullable": self.nullable,
            "metadata": metadata,
        }

    @property
    def type_json(self) -> str:
        return json.dumps(self.struct_field(), separators=(",", ":"))

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.type.arrow(), nullable=self.nullable)

    def to_uc(self, position: int) -> dict[str, Any]:
        """The Unity Catalog ColumnInfo object for this column."""
        info: dict[str, Any] = {
            "name": self.name,
            "type_text": self.type.type_text,
            "type_name": self.type.type_name,
            "type_json": self.type_json,
            "position": position,
            "nullable": self.nullable,
        }
        if self.type.name == "DECIMAL":
            info["type_precision"] = self.type.precision
            info["type_scale"] = self.type.scale
        if self.comment:
            info["comment"] = self.comment
        return info


class _Reader:
    """A small recursive-descent reader over the SQL spelling of types."""

    _TOKEN = re.compile(
        r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<quoted>`(?:[^`]|``)*`)"
        r"|(?P<number>\d+)|(?P<string>'(?:[^'\\]|\\.)*')|(?P<punct>[<>(),:]))"
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> TypeSpecError:
        return TypeSpecError(f"{message} at character {self.pos + 1} of {self.text!r}")

    def peek(self) -> tuple[str, str] | None:
        match = self._TOKEN.match(self.text, self.pos)
        if not match or match.end() == self.pos:
            return None
        kind = match.lastgroup
        return kind, match.group(kind)

    def next(self) -> tuple[str, str]:
        match = self._TOKEN.match(self.text, self.pos)
        if not match:
            rest = self.text[self.pos :].strip()
            if not rest:
                raise self.fail("unexpected end")
            raise self.fail(f"unexpected {rest[0]!r}")
        self.pos = match.end()
        kind = match.lastgroup
        return kind, match.group(kind)

    def expect(self, punct: str) -> None:
        kind, value = self.next()
        if kind != "punct" or value != punct:
            raise self.fail(f"expected {punct!r}, found {value!r}")

    def accept(self, punct: str) -> bool:
        token = self.peek()
        if token == ("punct", punct):
            self.next()
            return True
        return False

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        start = self.pos
        for word in words:
            token = self.peek()
            if not token or token[0] != "ident" or token[1].upper() != word:
                self.pos = start
                return False
            self.next()
        return True

    def name(self) -> str:
        kind, value = self.next()
        if kind == "quoted":
            return value[1:-1].replace("``", "`")
        if kind != "ident":
            raise self.fail(f"expected a name, found {value!r}")
        return value

    def at_end(self) -> bool:
        return not self.text[self.pos :].strip()

    def type(self) -> ColumnType:
        kind, word = self.next()
        if kind != "ident":
            raise self.fail(f"expected a type, found {word!r}")
        name = _ALIASES.get(word.upper(), word.upper())
        if name == "ARRAY":
            return self._array()
        if name == "MAP":
            return self._map()
        if name == "STRUCT":
            return self._struct()
        if name == "DECIMAL":
            return self._decimal()
        if name not in _SCALARS:
            raise self.fail(f"unknown type {word!r}")
        if word.upper() in {"VARCHAR", "CHAR"}:
            self._length()
        return ColumnType(name)

    def _length(self) -> None:
        if self.accept("("):
            kind, value = self.next()
            if kind != "number":
                raise self.fail(f"expected a length, found {value!r}")
            self.expect(")")

    def _array(self) -> ColumnType:
        self.expect("<")
        element = self.type()
        self.expect(">")
        return ColumnType("ARRAY", element=element)

    def _map(self) -> ColumnType:
        self.expect("<")
        key = self.type()
        self.expect(",")
        value = self.type()
        self.expect(">")
        if key.name not in MAP_KEY_TYPES:
            raise self.fail(f"map keys must be integral, boolean or string, not {key}")
        return ColumnType("MAP", key=key, value=value)

    def _struct(self) -> ColumnType:
        self.expect("<")
        fields = [self._field(struct=True)]
        while self.accept(","):
            fields.append(self._field(struct=True))
        self.expect(">")
        _check_unique([f.name for f in fields], "struct field")
        return ColumnType("STRUCT", fields=tuple(fields))

    def _decimal(self) -> ColumnType:
        precision, scale = 10, 0
        if self.accept("("):
            precision = self._number()
            if self.accept(","):
                scale = self._number()
            self.expect(")")
        if not 1 <= precision <= 38 or not 0 <= scale <= precision:
            raise self.fail(f"DECIMAL({precision},{scale}) is out of range")
        return ColumnType("DECIMAL", precision=precision, scale=scale)

    def _number(self) -> int:
        kind, value = self.next()
        if kind != "number":
            raise self.fail(f"expected a number, found {value!r}")
        return int(value)

    def _field(self, struct: bool = False) -> Column:
        name = self.name()
        if struct:
            self.accept(":")
        column_type = self.type()
        nullable = not self.keyword("NOT", "NULL")
        comment = None
        if self.keyword("COMMENT"):
            kind, value = self.next()
            if kind != "string":
                raise self.fail(f"expected a quoted comment, found {value!r}")
            comment = value[1:-1].replace("\\'", "'")
        return Column(name, column_type, nullable, comment)


def _check_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise TypeSpecError(f"duplicate {what} {name!r}")
        seen.add(name.lower())


def parse_type(text: str) -> ColumnType:
    """Parse one type, e.g. ``ARRAY<STRUCT<a: INT>>``; raises TypeSpecError."""
    reader = _Reader(text)
    column_type = reader.type()
    if not reader.at_end():
        raise reader.fail("unexpected text after the type")
    return column_type


def parse_columns(spec: str) -> list[Column]:
    """Parse ``"name TYPE [NOT NULL] [COMMENT '...'], ..."`` into columns."""
    reader = _Reader(spec)
    if reader.at_end():
        raise TypeSpecError("the column list is empty")
    columns = [reader._field()]
    while reader.accept(","):
        columns.append(reader._field())
    if not reader.at_end():
        raise reader.fail("expected ',' between columns")
    _check_unique([c.name for c in columns], "column")
    return columns


def column_from_uc(info: dict[str, Any]) -> Column:
    """A Column from a Unity Catalog ColumnInfo object."""
    try:
        name, type_text = info["name"], info["type_text"]
    except KeyError as missing:
        key = missing.args[0]
        raise TypeSpecError(f"column info lacks {key!r}: {info!r}") from None
    return Column(
        name=name,
        type=parse_type(type_text),
        nullable=bool(info.get("nullable", True)),
        comment=info.get("comment"),
    )


def arrow_schema(columns: list[Column]) -> pa.Schema:
    """The Arrow schema of a table with these columns."""
    return pa.schema([c.arrow_field() for c in columns])


def proto_scalar(column_type: ColumnType) -> str:
    """The proto2 scalar type for a non-compound column type.

    Compound types map to ``repeated``, ``map<>`` and nested messages; their
    element types use this function too.
    """
    if column_type.name == "DECIMAL":
        raise TypeSpecError(
            "DECIMAL has no protobuf mapping: Zerobus streams cannot write it; "
            "use DOUBLE, or BIGINT in minor units"
        )
    scalar = _SCALARS.get(column_type.name)
    if scalar is None:
        raise TypeSpecError(f"{column_type} is not a scalar type")
    return scalar[2]
