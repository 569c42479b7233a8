"""Checks a live gateway's admin API against its own OpenAPI document.

Run by `crates/quota-gateway/tests/admin_openapi.rs` with the venv's python
(`scripts/ensure-python-tools.sh`): `python check_live.py BASE_URL ADMIN_TOKEN`.

1. Fetches `/admin/openapi.json` from the gateway and validates it as
   OpenAPI 3.1 with openapi-spec-validator.
2. Sends requests covering every operation of the document, and checks
   each answer: its status is one the operation documents, its JSON body
   matches that response's schema (jsonschema, draft 2020-12, as OpenAPI 3.1
   has it), and a documented header such as `Allow` is there.
3. Fails if an operation of the document was never exercised.

Exits non-zero with every mismatch listed; prints `N passed, 0 failed`.
"""

import json
import sys
import urllib.error
import urllib.request

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

BASE, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]
failures = []
checked = 0
exercised = set()


def call(method, path, body=None, token=TOKEN, key=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    bearer = key if key is not None else token
    if bearer is not None:
        req.add_header("Authorization", f"Bearer {bearer}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


status, _, raw = call("GET", "/admin/openapi.json")
assert status == 200, f"GET /admin/openapi.json: {status}"
spec = json.loads(raw)
validate(spec)  # raises on an invalid OpenAPI 3.1 document
print("openapi-spec-validator: the document is valid OpenAPI", spec["openapi"])
checked += 1


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(method, template, status, headers, raw, label):
    """The answer `status`/`raw` to `method template`, against the document."""
    global checked
    checked += 1
    op = spec["paths"][template].get(method.lower())
    if op is None:
        # A method the path does not answer: 405, its body as documented,
        # and `Allow` naming exactly the documented methods (HEAD with GET).
        if status != 405:
            failures.append(f"{label}: {method} {template} is not in the document, yet answered {status}")
            return None
        documented = {m.upper() for m in spec["paths"][template]}
        if "GET" in documented:
            documented.add("HEAD")
        allow = {m.strip() for m in headers.get("Allow", headers.get("allow", "")).split(",") if m.strip()}
        if allow != documented:
            failures.append(f"{label}: Allow {sorted(allow)} is not the documented {sorted(documented)}")
        response = {"$ref": "#/components/responses/MethodNotAllowed"}
    else:
        exercised.add((method.lower(), template))
        response = op["responses"].get(str(status))
    if response is None:
        failures.append(f"{label}: {method} {template} answered {status}, not documented ({sorted(op['responses'])})")
        return None
    response = deref(response)
    for name in response.get("headers", {}):
        if name.lower() not in {h.lower() for h in headers}:
            failures.append(f"{label}: {status} without the documented header {name}")
    content = response.get("content", {}).get("application/json")
    if content is None:
        if raw.strip():
            failures.append(f"{label}: {status} has a body the document does not describe: {raw[:200]!r}")
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        failures.append(f"{label}: {status} body is not JSON: {raw[:200]!r}")
        return None
    schema = {"$ref": "#/$defs/root", "$defs": {"root": content["schema"]}, "components": spec["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    for e in errors:
        failures.append(f"{label}: {status} body does not match its schema: {e.message} at {list(e.absolute_path)}")
    return body


def run(method, path, template, want, body=None, **kw):
    status, headers, raw = call(method, path, body, **kw)
    label = f"{method} {path}"
    if status != want:
        failures.append(f"{label}: expected {want}, got {status}: {raw[:300]!r}")
    return check(method, template, status, headers, raw, label)


A = "/admin/accounts"
acct = run("POST", A, A, 201)
aid, key = acct["id"], acct["key"]
run("POST", A, A, 201)
page = run("GET", A + "?limit=1", A, 200)
run("GET", f"{A}?limit=1&cursor={page['next_cursor']}", A, 200)
run("GET", A + "?tier=basic", A, 200)
run("GET", A + "?limit=0", A, 400)
run("DELETE", A, A, 405)
run("GET", A, A, 401, token="wrong-token-0000000000")

ONE = A + "/{id}"
run("GET", f"{A}/{aid}", ONE, 200)
run("GET", f"{A}/acct_none", ONE, 404)
run("PATCH", f"{A}/{aid}", ONE, 200, {"tier": "premium", "credit": "12.50"})
run("PATCH", f"{A}/{aid}", ONE, 422, {"tier": "gold"})
run("PATCH", f"{A}/{aid}", ONE, 400, {})
run("PUT", f"{A}/{aid}", ONE, 405, {})

PAY = ONE + "/payments"
run("POST", f"{A}/{aid}/payments", PAY, 200, {"amount": "10.00"})
run("POST", f"{A}/{aid}/payments", PAY, 400, {"amount": "-1"})

KEYS = ONE + "/keys"
new = run("POST", f"{A}/{aid}/keys", KEYS, 201, {"name": "ci"})
run("POST", f"{A}/{aid}/keys", KEYS, 400, {"name": ""})
run("GET", f"{A}/{aid}/keys", KEYS, 200)
run("GET", f"{A}/acct_none/keys", KEYS, 404)

ROT = KEYS + "/{key_id}/rotate"
rotated = run("POST", f"{A}/{aid}/keys/{new['id']}/rotate", ROT, 201, {"grace_seconds": 60})
run("POST", f"{A}/{aid}/keys/key_none/rotate", ROT, 404)
run("GET", f"{A}/{aid}/keys/{new['id']}/rotate", ROT, 405)

LIMITS = "/v1/limits"
run("GET", LIMITS, LIMITS, 200, key=key)
run("GET", LIMITS, LIMITS, 401, key="qk_unknown")

KEY = KEYS + "/{key_id}"
run("DELETE", f"{A}/{aid}/keys/{rotated['id']}", KEY, 204)
run("DELETE", f"{A}/{aid}/keys/{rotated['id']}", KEY, 404)

USAGE = ONE + "/usage"
run("DELETE", f"{A}/{aid}/usage", USAGE, 204)
run("DELETE", f"{A}/acct_none/usage", USAGE, 404)

run("GET", "/admin/openapi.json", "/admin/openapi.json", 200)
run("DELETE", f"{A}/{aid}", ONE, 204)
run("DELETE", f"{A}/{aid}", ONE, 404)

for template, item in spec["paths"].items():
    for method in item:
        if (method, template) not in exercised:
            failures.append(f"{method.upper()} {template}: documented but never exercised")

for f in failures:
    print("FAIL", f)
print(f"{checked - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
