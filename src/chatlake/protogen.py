"""Regenerates the protobuf and gRPC modules from every .proto in the package.

Run as ``make proto`` (``python -m chatlake.protogen``). The generated files are
committed, so users never need grpcio-tools; it is pinned below 1.76 because
newer releases generate code for protobuf 7, which the Zerobus SDK cannot load.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_ROOT.parent


def proto_files() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.proto"))


def generate(path: Path) -> None:
    from grpc_tools import protoc  # a dev dependency, imported only here

    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{SOURCE_ROOT}",
        f"-I{include}",
        f"--python_out={SOURCE_ROOT}",
        f"--pyi_out={SOURCE_ROOT}",
        f"--grpc_python_out={SOURCE_ROOT}",
        str(path),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {path}")


def main() -> None:
    for path in proto_files():
        generate(path)
        print(f"generated code for {path.relative_to(SOURCE_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
