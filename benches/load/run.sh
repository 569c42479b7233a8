#!/usr/bin/env bash
# Load benchmark of the `quota` gateway, on loopback, in one run:
#
#   1. the upstream alone            (an nginx answering a small JSON body)
#   2. `quota serve` in front of it  (permissive policy: every request decided and admitted)
#   3. nginx `limit_req` in front    (permissive rate: every request limited and admitted)
#
# in ROUNDS rounds (default 3), the two proxies' order alternating, so that
# neither always runs after the other; the ratios are medians over the rounds.
#
# Same wrk settings and same requests for all three: each request kind of
# KINDS (GET without a body, POST with a small JSON body, POST with a 64 KiB
# body), with an X-API-Key header. Several gateway configurations (VARIANTS:
# each its own `quota serve`, e.g. the own HTTP/1.1 server against hyper's)
# can be measured side by side. Prints the machine, a Markdown table per kind
# (req/s, p50, p99, share of the upstream-alone throughput) and the medians
# of the ratios to the upstream, to nginx and to the first variant. Fails if
# any run had a non-2xx/3xx answer or a socket error.
#
# With TLS=1, the proxies terminate TLS (1.3, one ECDSA P-256 certificate
# made by tls-cert.sh for both) and wrk talks https to them, keep-alive; the
# upstream stays plain HTTP.
#
# Usage: benches/load/run.sh        (see benches/load/README.md for the knobs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PATH="$PATH:/usr/sbin:/sbin"

# --- settings (environment overrides) ----------------------------------------
DURATION=${DURATION:-10}              # seconds per recorded wrk run (at most 15)
WARMUP=${WARMUP:-2}                   # seconds of unrecorded warm-up before each run
CONNECTIONS=${CONNECTIONS:-32}        # wrk connections
WRK_THREADS=${WRK_THREADS:-1}         # wrk threads
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}  # nginx workers of the upstream
PIN=${PIN:-0}                         # 1: wrk and the upstream on CPU 0, the proxy on the other CPUs
PROXY_WORKERS=${PROXY_WORKERS:-}      # gateway worker threads (--workers) = nginx limit_req workers
NGINX_RATE=${NGINX_RATE:-1000000r/s}  # limit_req rate (permissive)
NGINX_BURST=${NGINX_BURST:-1000000}   # limit_req burst (permissive)
QUOTA_BIN=${QUOTA_BIN:-}              # a prebuilt quota binary; built with cargo when empty
STRICT=${STRICT:-0}                   # 1: exit 3 when a target is missed
ROUNDS=${ROUNDS:-3}                   # rounds of the runs (the proxies' order alternates)
KINDS=${KINDS:-get}                   # request kinds: get (no body), small (~200 B JSON POST), big (64 KiB POST)
# Gateway configurations, `;`-separated, each `label: words`; a word NAME=value
# is put in that gateway's environment (QUOTA_BIN=path: another binary), any
# other word is an argument of `quota serve` (e.g. `--http1 hyper`).
VARIANTS=${VARIANTS:-quota serve:}
TLS=${TLS:-0}                         # 1: the proxies terminate TLS 1.3, wrk over https
ENDPOINT=bench                        # the endpoint of permissive.toml

for kind in $KINDS; do
    case $kind in
    get | small | big) ;;
    *)
        echo "run.sh: unknown request kind '$kind' in KINDS (get, small, big)" >&2
        exit 2
        ;;
    esac
done
if ((DURATION > 15)); then
    echo "run.sh: DURATION=$DURATION is over 15 s per run" >&2
    exit 2
fi
# Where each process runs. Shared (the default): all on all CPUs. Pinned:
# the load generator and the upstream on CPU 0, the proxy under test alone
# on the others, with one worker per CPU it has (as a proxy is deployed with
# cores of its own).
CPUS=$(nproc)
if [ "$PIN" = 1 ]; then
    if ((CPUS < 2)); then
        echo "run.sh: PIN=1 needs at least 2 CPUs" >&2
        exit 2
    fi
    LOAD_CPUS=(taskset -c 0)
    PROXY_CPUS=(taskset -c "1-$((CPUS - 1))")
    PROXY_WORKERS=${PROXY_WORKERS:-$((CPUS - 1))}
else
    LOAD_CPUS=()
    PROXY_CPUS=()
    PROXY_WORKERS=${PROXY_WORKERS:-2}
fi
if [ "$TLS" != 0 ] && [ "$TLS" != 1 ]; then
    echo "run.sh: TLS=$TLS is not 0 or 1" >&2
    exit 2
fi
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 15)); then
    echo "run.sh: ROUNDS=$ROUNDS is not a number from 1 to 15" >&2
    exit 2
fi

# --- tools ---------------------------------------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$TLS" = 1 ]; then command -v openssl >/dev/null 2>&1 || missing+=(openssl); fi
if [ "$PIN" = 1 ]; then command -v taskset >/dev/null 2>&1 || missing+=(util-linux); fi
if ((${#missing[@]})); then
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    echo "run.sh: installing ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${missing[@]}"
fi

if [ -z "$QUOTA_BIN" ]; then
    echo "run.sh: building the gateway (cargo build --release -p quota-cli --locked)" >&2
    (cd "$ROOT" && cargo build --release -p quota-cli --locked)
    QUOTA_BIN="$ROOT/target/release/quota"
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then QUOTA_BIN="$CARGO_TARGET_DIR/release/quota"; fi
fi
[ -x "$QUOTA_BIN" ] || { echo "run.sh: no quota binary at $QUOTA_BIN" >&2; exit 2; }

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

# --- processes and cleanup -----------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/quota-load.XXXXXX")
PIDS=()

stop() { # stop PID: SIGTERM, then wait (SIGKILL after 10 s)
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Run a command (wrk) in the background and wait for it, so that a signal to
# the script stops it at once instead of after the run.
BG_PID=
bg_wait() {
    local rc=0
    "$@" &
    BG_PID=$!
    wait "$BG_PID" || rc=$?
    BG_PID=
    return "$rc"
}

cleanup() {
    local rc=$? pid
    trap - EXIT
    if [ -n "$BG_PID" ]; then stop "$BG_PID"; fi
    for pid in "${PIDS[@]}"; do stop "$pid"; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# TLS=1: the proxies' certificate, which curl trusts; their scheme.
CURL_TLS=()
SCHEME=http
if [ "$TLS" = 1 ]; then
    "$HERE/tls-cert.sh" "$TMP"
    CURL_TLS=(--cacert "$TMP/tls-cert.pem")
    SCHEME=https
fi

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# A loopback port nobody listens on (probed with bash's /dev/tcp).
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        # Nothing listening, and (where `ss` is there) no socket of any
        # state on it: a port still in TIME_WAIT cannot be bound by nginx.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            { ! command -v ss >/dev/null 2>&1 || [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; }; then
            echo "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

# Wait until URL answers (any HTTP status) while PID lives; at most 15 s.
wait_http() {
    local url=$1 pid=$2 log=$3
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "process $pid exited before $url answered"; }
        if curl -s -o /dev/null "${CURL_TLS[@]}" "$url"; then return 0; fi
        sleep 0.1
    done
    cat "$log" >&2
    die "$url did not answer within 15 s"
}

# Fill a template: render TEMPLATE OUT KEY=VALUE...
render() {
    local template=$1 out=$2 kv
    shift 2
    cp "$template" "$out"
    for kv in "$@"; do
        sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$out"
    done
    if grep -q '@[A-Z_]*@' "$out"; then die "unfilled placeholder in $out"; fi
}

# Start an nginx from a config in $TMP, in the foreground of a background job.
start_nginx() { # start_nginx NAME CONF SCHEME PORT [CPU PREFIX...] -> sets NGINX_PID
    local name=$1 conf=$2 scheme=$3 port=$4
    shift 4
    nginx -t -q -p "$TMP" -e "$TMP/$name.error.log" -c "$conf" || die "nginx config $conf is invalid"
    "$@" nginx -p "$TMP" -e "$TMP/$name.error.log" -c "$conf" -g 'daemon off;' >"$TMP/$name.out" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_http "$scheme://127.0.0.1:$port/" "$NGINX_PID" "$TMP/$name.error.log"
}

# Check that URL answers a KIND request with 200 and the upstream's body
# before loading it: check_ok URL KIND KEY.
check_ok() {
    local url=$1 kind=$2 key=$3 out code
    local -a req=()
    if [ "$kind" != get ]; then
        req=(-X POST -H 'Content-Type: application/json' --data-binary "@$TMP/body-$kind")
    fi
    out=$(curl -s -w '\n%{http_code}' "${CURL_TLS[@]}" "${req[@]}" -H "X-API-Key: $key" "$url") || die "curl $url failed"
    code=${out##*$'\n'}
    [ "$code" = 200 ] || die "$url answered $code, not 200, to a $kind request: ${out%$'\n'*}"
    [ "${out%$'\n'*}" = '{"ok":true}' ] || die "$url answered an unexpected body: ${out%$'\n'*}"
}

# CPU time (user + system, in clock ticks) used so far by PID and its
# children (an nginx master and its workers), from /proc.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0 t
    for pid in "$1" $(pgrep -P "$1" || true); do
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# One load run: warm-up (not recorded), then the recorded run.
# run_wrk ID KIND URL KEY [PROXY_PID] -> sets the RPS/P50/P99/REQS arrays at
# ID, and UP_CPU and PROXY_CPU (CPU µs per request of the upstream and of
# PROXY_PID, "-" without one).
declare -A RPS P50 P99 REQS UP_CPU PROXY_CPU
run_wrk() {
    local id=$1 kind=$2 url=$3 key=$4 proxy=${5:-} out line kv up0 up1 px0=0 px1=0
    local -A r
    check_ok "$url" "$kind" "$key"
    bg_wait timeout --kill-after=5 $((WARMUP + 10)) \
        "${LOAD_CPUS[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 5s \
        -s "$TMP/wrk-$kind.lua" -H "X-API-Key: $key" "$url" >/dev/null || die "wrk warm-up failed on $id"
    up0=$(cpu_ticks "$UP_PID")
    if [ -n "$proxy" ]; then px0=$(cpu_ticks "$proxy"); fi
    bg_wait timeout --kill-after=5 $((DURATION + 10)) \
        "${LOAD_CPUS[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency \
        -s "$TMP/wrk-$kind.lua" -H "X-API-Key: $key" "$url" >"$TMP/wrk.out" || die "wrk failed on $id"
    out=$(<"$TMP/wrk.out")
    up1=$(cpu_ticks "$UP_PID")
    if [ -n "$proxy" ]; then px1=$(cpu_ticks "$proxy"); fi
    # shellcheck disable=SC2016 # backticks are Markdown here
    printf '### %s: wrk output\n\n```text\n%s\n```\n\n' "$id" "$(grep -v '^RESULT ' <<<"$out")" >>"$TMP/raw.md"
    line=$(grep '^RESULT ' <<<"$out") || die "no RESULT line from wrk on $id"
    for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
    if ((r[non2xx3xx] + r[connect] + r[read] + r[write] + r[timeout] > 0)); then
        echo "$out" >&2
        die "$id: ${r[non2xx3xx]} non-2xx/3xx responses; socket errors connect ${r[connect]}, read ${r[read]}, write ${r[write]}, timeout ${r[timeout]}"
    fi
    ((r[requests] > 0)) || die "$id: no request completed"
    REQS[$id]=${r[requests]}
    RPS[$id]=$(awk -v n="${r[requests]}" -v us="${r[duration_us]}" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
    P50[$id]=${r[p50_us]}
    P99[$id]=${r[p99_us]}
    UP_CPU[$id]=$(awk -v t=$((up1 - up0)) -v hz="$CLK_TCK" -v n="${r[requests]}" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    PROXY_CPU[$id]=$(awk -v t=$((px1 - px0)) -v hz="$CLK_TCK" -v n="${r[requests]}" -v p="$proxy" 'BEGIN { if (p == "") print "-"; else printf "%.1f", t * 1e6 / hz / n }')
    echo "run.sh: $id: ${RPS[$id]} req/s, p50 ${r[p50_us]} us, p99 ${r[p99_us]} us, no errors" >&2
}

ms() { awk -v us="$1" 'BEGIN { printf "%.3f ms", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# The median of the numbers given (the mean of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- the request kinds: a wrk script each (the body, then report.lua) ----------
# small: a JSON body of about 200 bytes; big: a JSON body of 64 KiB
# (65,536 bytes), both with Content-Length, as wrk sends them.
printf '{"user":"u-7f3a9c21","action":"bench","items":[{"id":1,"qty":2,"sku":"A-1001"},{"id":2,"qty":1,"sku":"B-2002"},{"id":3,"qty":5,"sku":"C-3003"}],"note":"a small JSON request body","ts":"2026-12-07T00:00:00Z"}' \
    >"$TMP/body-small"
{ printf '{"data":"'; head -c $((65536 - 11)) /dev/zero | tr '\0' x; printf '"}'; } >"$TMP/body-big"
declare -A KIND_TEXT=(
    [get]="GET without a body"
    [small]="POST with a $(wc -c <"$TMP/body-small")-byte JSON body (Content-Length)"
    [big]="POST with a $(wc -c <"$TMP/body-big")-byte JSON body (Content-Length)"
)
for kind in $KINDS; do
    if [ "$kind" = get ]; then
        : >"$TMP/wrk-$kind.lua"
    else
        cat >"$TMP/wrk-$kind.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$TMP/body-$kind", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
    fi
    cat "$HERE/report.lua" >>"$TMP/wrk-$kind.lua"
done

# --- 1. the upstream alone -----------------------------------------------------
UP_PORT=$(free_port)
render "$HERE/nginx-upstream.conf.template" "$TMP/upstream.conf" \
    TMP="$TMP" PORT="$UP_PORT" WORKERS="$UPSTREAM_WORKERS"
start_nginx upstream "$TMP/upstream.conf" http "$UP_PORT" "${LOAD_CPUS[@]}"
UP_PID=$NGINX_PID
UPSTREAM_URL="http://127.0.0.1:$UP_PORT"

# --- 2. one gateway per variant ------------------------------------------------
# Each with its own data folder, and an account created through its admin
# API, whose key its runs send.
NAMES=() GW_PIDS=() GW_URLS=() GW_KEYS=() GW_DESC=()
IFS=';' read -r -a variant_specs <<<"$VARIANTS"
n=0
for spec in "${variant_specs[@]}"; do
    [[ "$spec" =~ ^[[:space:]]*$ ]] && continue
    [[ "$spec" == *:* ]] || die "VARIANTS: '$spec' has no 'label:'"
    label=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"${spec%%:*}")
    [ -n "$label" ] || die "VARIANTS: '$spec' has an empty label"
    env_words=() args=() bin=$QUOTA_BIN
    read -r -a words <<<"${spec#*:}"
    for w in "${words[@]}"; do
        if [[ "$w" =~ ^QUOTA_BIN= ]]; then
            bin=${w#QUOTA_BIN=}
        elif [[ "$w" =~ ^[A-Z_][A-Z0-9_]*= ]]; then
            env_words+=("$w")
        else
            args+=("$w")
        fi
    done
    [ -x "$bin" ] || die "VARIANTS: no quota binary at $bin"
    n=$((n + 1))
    mkdir -p "$TMP/quota-data-$n"
    ADMIN_TOKEN="bench-admin-$RANDOM$RANDOM$RANDOM"
    if [ "$TLS" = 1 ]; then args+=(--tls-cert "$TMP/tls-cert.pem" --tls-key "$TMP/tls-key.pem"); fi
    env RUST_LOG=warn "${env_words[@]}" "${PROXY_CPUS[@]}" "$bin" serve \
        --listen 127.0.0.1:0 \
        --workers "$PROXY_WORKERS" \
        --upstream "$UPSTREAM_URL" \
        --policy "$HERE/permissive.toml" \
        --admin-token "$ADMIN_TOKEN" \
        --data-dir "$TMP/quota-data-$n" \
        --store memory \
        --shutdown-timeout 5 \
        "${args[@]}" \
        >"$TMP/quota-$n.out" 2>"$TMP/quota-$n.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 150); do
        grep -q "^quota: listening on $SCHEME://" "$TMP/quota-$n.out" && break
        kill -0 "$pid" 2>/dev/null || { cat "$TMP/quota-$n.out" "$TMP/quota-$n.log" >&2; die "quota serve ($label) exited"; }
        sleep 0.1
    done
    url=$(sed -n 's/^quota: listening on \(https\{0,1\}:\/\/[0-9.:]*\).*/\1/p' "$TMP/quota-$n.out" | head -n 1)
    [ -n "$url" ] || { cat "$TMP/quota-$n.log" >&2; die "quota serve ($label) did not start within 15 s"; }
    account=$(curl -s -f "${CURL_TLS[@]}" -X POST "$url/admin/accounts" -H "Authorization: Bearer $ADMIN_TOKEN") ||
        die "creating an account through the admin API of $label failed"
    key=$(grep -o '"key" *: *"[^"]*"' <<<"$account" | sed 's/.*"\([^"]*\)"$/\1/')
    [ -n "$key" ] || die "no key in the admin API's answer ($label)"
    NAMES+=("$label") GW_PIDS+=("$pid") GW_URLS+=("$url") GW_KEYS+=("$key")
    GW_DESC+=("$label: \`${env_words[*]}${env_words[*]:+ }$(basename "$bin") serve ... ${args[*]}\`")
done
((${#NAMES[@]} > 0)) || die "VARIANTS names no gateway"

# --- 3. nginx limit_req, beside them ---------------------------------------------
LR_PORT=$(free_port)
LISTEN_TLS= TLS_DIRECTIVES=
if [ "$TLS" = 1 ]; then
    LISTEN_TLS=" ssl"
    TLS_DIRECTIVES="ssl_certificate $TMP/tls-cert.pem; ssl_certificate_key $TMP/tls-key.pem; ssl_protocols TLSv1.3; ssl_session_cache shared:SSL:1m;"
fi
render "$HERE/nginx-limit-req.conf.template" "$TMP/limit-req.conf" \
    TMP="$TMP" PORT="$LR_PORT" WORKERS="$PROXY_WORKERS" UPSTREAM_PORT="$UP_PORT" \
    RATE="$NGINX_RATE" BURST="$NGINX_BURST" LISTEN_TLS="$LISTEN_TLS" TLS="$TLS_DIRECTIVES"
start_nginx limit-req "$TMP/limit-req.conf" "$SCHEME" "$LR_PORT" "${PROXY_CPUS[@]}"
LR_PID=$NGINX_PID
NGINX="nginx limit_req"

# --- the runs --------------------------------------------------------------------
# Each round, for each kind: the upstream alone, then the proxies one after
# the other, the gateways in the order of VARIANTS and nginx last in odd
# rounds, the reverse order in even ones. All stay up throughout; only one
# is loaded at a time.
PROXIES=("${NAMES[@]}" "$NGINX")
declare -A P_URL P_KEY P_PID
for i in "${!NAMES[@]}"; do
    P_URL[${NAMES[$i]}]="${GW_URLS[$i]}/v1/$ENDPOINT"
    P_KEY[${NAMES[$i]}]=${GW_KEYS[$i]}
    P_PID[${NAMES[$i]}]=${GW_PIDS[$i]}
done
P_URL[$NGINX]="$SCHEME://127.0.0.1:$LR_PORT/v1/$ENDPOINT"
P_KEY[$NGINX]=${GW_KEYS[0]}
P_PID[$NGINX]=$LR_PID
for round in $(seq 1 "$ROUNDS"); do
    order=("${PROXIES[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#PROXIES[@]} - 1; i >= 0; i--)); do order+=("${PROXIES[$i]}"); done
    fi
    for kind in $KINDS; do
        run_wrk "$kind/upstream alone#$round" "$kind" "$UPSTREAM_URL/v1/$ENDPOINT" "${GW_KEYS[0]}"
        for p in "${order[@]}"; do
            run_wrk "$kind/$p#$round" "$kind" "${P_URL[$p]}" "${P_KEY[$p]}" "${P_PID[$p]}"
        done
    done
done

# Every decision of the runs must be an admission (nothing refused, no store error).
declare -A ADMITTED LOG_LINES
for i in "${!NAMES[@]}"; do
    metrics=$(curl -s "${CURL_TLS[@]}" "${GW_URLS[$i]}/metrics")
    others=$(grep '^quota_decisions_total{' <<<"$metrics" | grep -v 'outcome="admitted"' | awk '$NF != 0' || true)
    [ -z "$others" ] || die "${NAMES[$i]} decided something other than admitted: $others"
    ADMITTED[${NAMES[$i]}]=$(grep '^quota_decisions_total{' <<<"$metrics" | grep 'outcome="admitted"' | awk '{ s += $NF } END { printf "%d", s }')
    LOG_LINES[${NAMES[$i]}]=$(wc -l <"$TMP/quota-$((i + 1)).log")
done
if grep -q 'limiting requests' "$TMP/limit-req.error.log"; then
    die "nginx limit_req refused requests: $(grep -c 'limiting requests' "$TMP/limit-req.error.log") log lines"
fi

# --- report ----------------------------------------------------------------------
# TLS=1: what an OpenSSL client (wrk's library) negotiates with each proxy.
tls_of() { # tls_of PORT -> "TLSv1.3, CIPHER"
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        awk '/^New, / { print $2, $5; exit }'
}
TLS_LINE=
if [ "$TLS" = 1 ]; then
    TLS_LINE="- TLS (TLS=1): the proxies terminate TLS with one ECDSA P-256 certificate (benches/load/tls-cert.sh), wrk over https with keep-alive, the upstream plain HTTP; negotiated by openssl s_client: ${NAMES[0]} $(tls_of "$(sed 's/.*://' <<<"${GW_URLS[0]}")"), nginx $(tls_of "$LR_PORT") (nginx: ssl_protocols TLSv1.3)"
fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//' || echo unknown)
FIRST=${NAMES[0]}

cat <<EOF

## Load benchmark: quota serve vs nginx limit_req$(if [ "$TLS" = 1 ]; then echo ", both terminating TLS"; fi)

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(nproc) CPUs ($cpu), Linux $(uname -r), load average before the runs: $LOADAVG, after: $(cut -d' ' -f1-3 /proc/loadavg)
- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)'); $("$QUOTA_BIN" --version); $(nginx -v 2>&1 | sed 's/^nginx version: //'); wrk $(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p' | head -n 1)
- all on loopback, $(if [ "$PIN" = 1 ]; then echo "pinned (PIN=1): wrk and the upstream on CPU 0, the proxy under test on CPUs 1-$((CPUS - 1))"; else echo "all sharing the same $CPUS CPUs"; fi): wrk (${WRK_THREADS} thread, ${CONNECTIONS} connections,
  ${WARMUP} s warm-up then ${DURATION} s recorded), the upstream (nginx, ${UPSTREAM_WORKERS} worker, \`return 200 '{"ok":true}'\`),
  and the proxy under test (quota serve: ${PROXY_WORKERS} worker threads, RUST_LOG=warn, memory store,
  benches/load/permissive.toml; nginx limit_req: ${PROXY_WORKERS} workers, rate=${NGINX_RATE} burst=${NGINX_BURST} nodelay,
  HTTP/1.1 keep-alive to the upstream)
- gateways: $(IFS=';'; echo "${GW_DESC[*]}" | sed 's/;/; /g')
- ${ROUNDS} round(s); in each, for each kind, the upstream alone and then every proxy, the gateways in
  that order and nginx last in odd rounds, the reverse in even ones; all proxies stay up throughout and
  only one is loaded at a time
- requests: /v1/${ENDPOINT} with an X-API-Key header, the same in every run of a kind; every answer 200 (checked)
${TLS_LINE}
EOF
STRICT_MISSED=0
for kind in $KINDS; do
    cat <<EOF

### ${KIND_TEXT[$kind]} (\`$kind\`)

| round | setup | req/s | p50 | p99 | vs upstream | upstream CPU µs/req | proxy CPU µs/req |
|---:|---|---:|---:|---:|---:|---:|---:|
EOF
    for round in $(seq 1 "$ROUNDS"); do
        up=${RPS["$kind/upstream alone#$round"]}
        for name in "upstream alone" "${PROXIES[@]}"; do
            id="$kind/$name#$round"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$round" "$name" "${RPS[$id]}" "$(ms "${P50[$id]}")" \
                "$(ms "${P99[$id]}")" "$(ratio "${RPS[$id]}" "$up")" "${UP_CPU[$id]}" "${PROXY_CPU[$id]}"
        done
    done
    cat <<EOF

Medians over the rounds (ratios taken per round, then their median):

| setup | req/s | p99 | vs upstream | vs nginx limit_req | vs $FIRST | proxy CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|
EOF
    for name in "upstream alone" "${PROXIES[@]}"; do
        rps=() p99=() vs_up=() vs_ng=() vs_first=() pcpu=()
        for round in $(seq 1 "$ROUNDS"); do
            id="$kind/$name#$round"
            rps+=("${RPS[$id]}")
            p99+=("${P99[$id]}")
            vs_up+=("$(ratio "${RPS[$id]}" "${RPS["$kind/upstream alone#$round"]}")")
            vs_ng+=("$(ratio "${RPS[$id]}" "${RPS["$kind/$NGINX#$round"]}")")
            vs_first+=("$(ratio "${RPS[$id]}" "${RPS["$kind/$FIRST#$round"]}")")
            pcpu+=("${PROXY_CPU[$id]}")
        done
        cpu_med=-
        if [ "$name" != "upstream alone" ]; then cpu_med=$(median "${pcpu[@]}"); fi
        printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$name" "$(median "${rps[@]}")" "$(ms "$(median "${p99[@]}")")" \
            "$(median "${vs_up[@]}")" "$(median "${vs_ng[@]}")" "$(median "${vs_first[@]}")" "$cpu_med"
        if [ "$name" = "$FIRST" ]; then
            awk -v r="$(median "${vs_up[@]}")" -v s="$(median "${vs_ng[@]}")" 'BEGIN { exit !(r >= 0.9 && s > 1) }' ||
                STRICT_MISSED=1
        fi
    done
done
cat <<EOF

CPU time per request (user + system, from /proc; the kernel's loopback TCP
work is charged to the process that sends) is what bounds throughput when
everything shares $(nproc) CPUs. Targets for $FIRST: at least 0.90 of the
upstream alone, above 1 against nginx limit_req.

EOF
for name in "${NAMES[@]}"; do
    echo "- $name: ${ADMITTED[$name]} admitted in quota_decisions_total (warm-ups and checks included), none refused; ${LOG_LINES[$name]} log lines at warn level"
done
echo
if [ "${SHOW_RAW:-0}" = 1 ]; then cat "$TMP/raw.md"; fi
if [ "$STRICT" = 1 ] && [ "$STRICT_MISSED" = 1 ]; then
    exit 3
fi
