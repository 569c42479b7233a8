"""Stubs for Envoy's protos, compiled by grpcio-tools from the .proto files
the envoy-types crate ships (the files Envoy itself is built from), for the
tests' Python clients (rls_client.py, envoy_config.py)."""

import os
import re
import sys

from grpc_tools import protoc
import grpc_tools

IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)


def roots(proto_root):
    """Every include root under envoy-types' proto folder."""
    found = []
    for top in sorted(os.listdir(proto_root)):
        base = os.path.join(proto_root, top)
        for candidate in (base, os.path.join(base, "api")):
            if os.path.isdir(candidate):
                found.append(candidate)
    return found


def closure(start, include):
    """The .proto files `start` needs, transitively (google/protobuf's own
    come with grpcio-tools and the protobuf package)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith("google/protobuf/"):
            continue
        path = next((os.path.join(r, name) for r in include
                     if os.path.isfile(os.path.join(r, name))), None)
        if path is None:
            raise SystemExit(f"cannot find {name} under {include}")
        seen.add(name)
        with open(path, encoding="utf-8") as f:
            todo.extend(IMPORT.findall(f.read()))
    return sorted(seen)


def compile_stubs(proto_root, out, *starts):
    """Compiles `starts` and what they import into `out`, and makes them
    importable."""
    include = roots(proto_root)
    files = sorted({f for start in starts for f in closure(start, include)})
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"--proto_path={well_known}"]
    args += [f"--proto_path={r}" for r in include]
    args += [f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)
