"""A client of Envoy's rate limit service that quota did not write: Python's
grpcio, with stubs compiled here by grpcio-tools from the .proto files that
the envoy-types crate ships (the same files Envoy is built from).

Usage: rls_client.py PROTO_ROOT ADDR OUT_DIR < calls.json

PROTO_ROOT is envoy-types' `proto` folder; OUT_DIR a scratch folder for the
generated modules. stdin is a JSON list of calls, each
{"domain": ..., "descriptors": [[[key, value], ...], ...], "hits_addend": N};
stdout is one JSON object per call: {"code": "OK"|"OVER_LIMIT"|...,
"statuses": [...], "headers": {...}, "body": "..."} or {"error": CODE,
"message": ...} for a gRPC error.
"""

import json
import os
import sys

import grpc

from envoy_protos import compile_stubs

RLS = "envoy/service/ratelimit/v3/rls.proto"


def main():
    proto_root, addr, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    compile_stubs(proto_root, out, RLS)
    from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
    from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2

    calls = json.load(sys.stdin)
    with grpc.insecure_channel(addr) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        for call in calls:
            req = rls_pb2.RateLimitRequest(
                domain=call["domain"], hits_addend=call.get("hits_addend", 0))
            for entries in call["descriptors"]:
                d = req.descriptors.add()
                for key, value in entries:
                    d.entries.add(key=key, value=value)
            try:
                res = stub.ShouldRateLimit(req, timeout=10)
            except grpc.RpcError as e:
                print(json.dumps({"error": e.code().name, "message": e.details()}))
                continue
            code = rls_pb2.RateLimitResponse.Code.Name
            statuses = []
            for s in res.statuses:
                status = {"code": code(s.code), "limit_remaining": s.limit_remaining}
                if s.HasField("current_limit"):
                    status["requests_per_unit"] = s.current_limit.requests_per_unit
                    status["unit"] = rls_pb2.RateLimitResponse.RateLimit.Unit.Name(
                        s.current_limit.unit)
                    status["name"] = s.current_limit.name
                if s.HasField("duration_until_reset"):
                    status["reset_seconds"] = s.duration_until_reset.seconds
                statuses.append(status)
            print(json.dumps({
                "code": code(res.overall_code),
                "statuses": statuses,
                "headers": {h.key: h.value for h in res.response_headers_to_add},
                "body": res.raw_body.decode("utf-8"),
            }))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
