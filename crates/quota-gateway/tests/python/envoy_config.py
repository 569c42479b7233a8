"""Checks an Envoy configuration (YAML) against Envoy's own protos: every
field name, type and enum value of the bootstrap, and of each typed_config
by its @type, as Envoy reads it (proto3 JSON mapping, unknown fields
refused). Not a running Envoy: what it proves is that Envoy's schema
accepts the file.

Usage: envoy_config.py PROTO_ROOT OUT_DIR CONFIG.yaml
"""

import importlib
import os
import sys

import yaml
from google.protobuf import json_format

from envoy_protos import compile_stubs

# The bootstrap, and the extensions docs/envoy/envoy.yaml names by @type.
PROTOS = [
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
]


def main():
    proto_root, out, config = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    compile_stubs(proto_root, out, *PROTOS)
    # Importing a generated module registers its types, so that `@type`
    # URLs in the file resolve.
    for folder, _, files in os.walk(out):
        for name in files:
            if name.endswith("_pb2.py"):
                rel = os.path.relpath(os.path.join(folder, name[:-3]), out)
                importlib.import_module(rel.replace(os.sep, "."))
    from envoy.config.bootstrap.v3 import bootstrap_pb2

    with open(config, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    bootstrap = json_format.ParseDict(doc, bootstrap_pb2.Bootstrap())
    listeners = len(bootstrap.static_resources.listeners)
    clusters = len(bootstrap.static_resources.clusters)
    print(f"ok: {listeners} listener(s), {clusters} cluster(s)")


if __name__ == "__main__":
    main()
