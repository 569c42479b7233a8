#!/usr/bin/env bash
# Makes the certificate of the load bench's TLS mode (TLS=1 benches/load/run.sh):
# an ECDSA P-256 key and a self-signed certificate for localhost and
# 127.0.0.1, valid for 2 days, written to DIR/tls-cert.pem and DIR/tls-key.pem.
# quota and nginx terminate TLS with the same pair; curl trusts it with
# --cacert DIR/tls-cert.pem (wrk does not verify certificates).
#
# Usage: benches/load/tls-cert.sh DIR
set -euo pipefail
dir=${1:?usage: tls-cert.sh DIR}
command -v openssl >/dev/null 2>&1 || { echo "tls-cert.sh: openssl is not installed" >&2; exit 2; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$dir/tls-key.pem" -out "$dir/tls-cert.pem" 2>/dev/null
