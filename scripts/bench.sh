#!/usr/bin/env bash
# Issuance throughput benchmark (issue 7): Sigil's HTTPS issuance and
# renewal against the in-process crypto floor and, when it can be
# installed, cfssl side by side. Everything on loopback, release build.
#
# Run with: scripts/bench.sh
#
# Environment:
#   N=5000     certificates per measurement (issue, renew, cfssl): about a
#              second each, long enough to include the store's checkpoints
#   RUNS=7     repetitions; medians are reported (on a shared host one
#              measurement of about a second can land in a slow spell)
#   FLOOR_N=20000  operations per floor measurement
#   CFSSL=1    set to 0 to skip the cfssl comparison
#   CFSSL_PORT=8888
#   SCALE=1    set to 0 to skip the scale runs (a store of SCALE_CERTS
#              certificates, SCALE_REVOKED of them revoked: about 1.1 GB
#              of disk and 30 s to fill at the defaults)
#   SCALE_CERTS=1000000  SCALE_REVOKED=100000
#   SCALE_RANDOM_SERIALS=0  set to 1 to seed uniformly random serials, as
#              Sigil drew them before they carried their issuance time (a
#              store upgraded from then)
#
# Needs: cargo, bash, getconf; for cfssl, the `cfssl` and `cfssljson`
# binaries or root with apt-get (Debian package golang-cfssl).
set -euo pipefail

N=${N:-5000}
RUNS=${RUNS:-7}
FLOOR_N=${FLOOR_N:-20000}
CFSSL=${CFSSL:-1}
CFSSL_PORT=${CFSSL_PORT:-8888}
SCALE=${SCALE:-1}
SCALE_CERTS=${SCALE_CERTS:-1000000}
SCALE_REVOKED=${SCALE_REVOKED:-100000}
SCALE_RANDOM_SERIALS=${SCALE_RANDOM_SERIALS:-0}
case "$SCALE_RANDOM_SERIALS" in
  0 | 1) ;;
  *) echo "bench: SCALE_RANDOM_SERIALS must be 0 or 1, not '$SCALE_RANDOM_SERIALS'" >&2; exit 2 ;;
esac
TRUST_DOMAIN=bench.example
AGENT_ID="spiffe://$TRUST_DOMAIN/bench/agent"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

echo "bench: building release binaries (sigil, sigil-bench)"
cargo build --release --quiet -p sigil -p sigil-bench
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$repo/target}
SIGIL=$target_dir/release/sigil
BENCH=$target_dir/release/sigil-bench

work=$(mktemp -d "${TMPDIR:-/tmp}/sigil-bench.XXXXXX")
server_pid=
cfssl_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$cfssl_pid" ]; then kill "$cfssl_pid" 2>/dev/null || true; wait "$cfssl_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# --- Sigil --------------------------------------------------------------------
# init_dir DIR: a fresh trust domain in DIR.
init_dir() {
  "$SIGIL" init --trust-domain "$TRUST_DOMAIN" --data-dir "$1" >/dev/null
  # The default rate limits (200/s per address, burst 2000) would throttle a
  # load generator on one address; this run measures the CA, not the limiter.
  printf '%s\n' 'rate_limit = 1000000' 'rate_burst = 1000000' \
    'renewal_limit = 1000000' 'renewal_burst = 1000000' >"$1/sigil.toml"
  echo "bench: wrote $1/sigil.toml raising the attestation and renewal rate limits to 1000000 (defaults 200/s, burst 2000)"
}

# start_server DIR: starts `sigil serve` on DIR; sets server_pid, url, data
# and startup_ms (from the exec to the "listening on" line).
start_server() {
  data=$1
  local out=$data.serve.out log=$data.serve.log started
  started=$(date +%s%N)
  "$SIGIL" serve --data-dir "$data" --listen 127.0.0.1:0 >"$out" 2>"$log" &
  server_pid=$!
  url=
  for _ in $(seq 1 2000); do
    url=$(sed -n 's/^listening on \(https:\/\/[^ ]*\).*/\1/p' "$out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; echo "bench: sigil serve exited" >&2; exit 1; }
    sleep 0.005
  done
  [ -n "$url" ] || { echo "bench: sigil serve printed no URL" >&2; exit 1; }
  startup_ms=$((($(date +%s%N) - started) / 1000000))
  echo "bench: sigil serve (pid $server_pid) listening on $url after $startup_ms ms"
}

# stop_server: stops it; sets peak_rss_mb (VmHWM, the resident peak).
stop_server() {
  peak_rss_mb=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status" 2>/dev/null || echo na)
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

token() {
  "$SIGIL" token create --data-dir "$data" --ca "$url" --spiffe-id "$AGENT_ID" \
    --uses "$1" --ttl 1h
}

# --- cfssl (the logic of the team's peers/cfssl.sh, inlined) -----------------
cfssl_url=
start_cfssl() {
  local dir=$work/cfssl
  mkdir -p "$dir"
  if ! command -v cfssl >/dev/null 2>&1 || ! command -v cfssljson >/dev/null 2>&1; then
    echo "bench: installing golang-cfssl"
    (apt-get update -qq && apt-get install -y -qq golang-cfssl) >/dev/null 2>&1 || return 1
  fi
  (
    cd "$dir"
    printf '%s\n' '{"CN":"peer cfssl root","key":{"algo":"ecdsa","size":256}}' >ca-csr.json
    printf '%s\n' '{"signing":{"default":{"expiry":"1h","usages":["digital signature","client auth","server auth"]}}}' >config.json
    cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
  ) || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$CFSSL_PORT") 2>/dev/null && {
    echo "bench: port $CFSSL_PORT is already in use" >&2
    return 1
  }
  cfssl serve -address 127.0.0.1 -port "$CFSSL_PORT" -ca "$dir/ca.pem" -ca-key "$dir/ca-key.pem" \
    -config "$dir/config.json" -loglevel 2 >"$dir/cfssl.log" 2>&1 &
  cfssl_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$CFSSL_PORT") 2>/dev/null; then
      cfssl_url=http://127.0.0.1:$CFSSL_PORT/api/v1/cfssl/sign
      printf '%s\n' '{"certificate_request": "{{csr}}"}' >"$work/cfssl-body.json"
      echo "bench: cfssl $(cfssl version 2>/dev/null | head -n 1 | sed 's/^Version: //') (pid $cfssl_pid) serving on http://127.0.0.1:$CFSSL_PORT"
      return 0
    fi
    sleep 0.1
  done
  echo "bench: cfssl did not start; see $dir/cfssl.log" >&2
  return 1
}
if [ "$CFSSL" = 1 ]; then
  start_cfssl || { echo "bench: cfssl unavailable; skipping the comparison" >&2; cfssl_url=; }
fi

# --- Measurements -------------------------------------------------------------
results=$work/results
: >"$results"

# measure LABEL COMMAND...: runs COMMAND, keeps its RESULT line under LABEL.
measure() {
  local label=$1 line
  shift
  line=$("$@" 2>"$work/last.err" | grep "^RESULT " | tail -n 1) || true
  if [ -z "$line" ]; then
    cat "$work/last.err" >&2
    echo "bench: $label produced no result" >&2
    exit 1
  fi
  grep -E '^(floor|issue|renew|target):' "$work/last.err" | sed "s/^/  [$label] /" >&2 || true
  echo "$label $line" >>"$results"
}

# Each run starts Sigil on a fresh, empty data dir, so that every run
# measures the same thing (one run adds 4 x N certificates to the store);
# the scale runs below measure a store of a million.
for run in $(seq 1 "$RUNS"); do
  echo "bench: run $run of $RUNS"
  measure floor "$BENCH" floor --count "$FLOOR_N"
  measure floor-renew "$BENCH" floor --handshake --count "$((FLOOR_N / 4))"
  init_dir "$work/data-$run"
  start_server "$work/data-$run"
  echo "startup-empty ms=$startup_ms" >>"$results"
  for c in 8 16; do
    measure "issue-c$c" "$BENCH" issue --ca "$url" --bundle "$data/bundle.pem" \
      --token "$(token "$N")" --spiffe-id "$AGENT_ID" --concurrency "$c" --count "$N" \
      --server-pid "$server_pid" --clk-tck "$CLK_TCK"
  done
  measure renew-c8 "$BENCH" renew --ca "$url" --bundle "$data/bundle.pem" \
    --token "$(token "$N")" --spiffe-id "$AGENT_ID" --concurrency 8 --count "$N" \
    --server-pid "$server_pid" --clk-tck "$CLK_TCK"
  stop_server
  echo "rss empty-store $peak_rss_mb" >>"$results"
  rm -rf "$work/data-$run"
  if [ -n "$cfssl_url" ]; then
    measure cfssl-c8 "$BENCH" target --url "$cfssl_url" --body-template "$work/cfssl-body.json" \
      --concurrency 8 --count "$N" --server-pid "$cfssl_pid" --clk-tck "$CLK_TCK"
  fi
done

# --- Scale: a store of SCALE_CERTS certificates ------------------------------
if [ "$SCALE" = 1 ]; then
  echo "bench: scale: filling a store with $SCALE_CERTS certificates ($SCALE_REVOKED revoked)"
  init_dir "$work/scale"
  seed_serials=()
  if [ "$SCALE_RANDOM_SERIALS" = 1 ]; then
    echo "bench: scale: the seeded certificates get uniformly random serials (SCALE_RANDOM_SERIALS=1)"
    seed_serials=(--random-serials)
  fi
  "$BENCH" seed --data-dir "$work/scale" --certificates "$SCALE_CERTS" --revoked "$SCALE_REVOKED" \
    "${seed_serials[@]}"
  measure crl "$BENCH" crl --data-dir "$work/scale" --runs 5
  start_server "$work/scale"
  echo "startup scale-store $startup_ms" >>"$results"
  for run in $(seq 1 "$RUNS"); do
    echo "bench: scale run $run of $RUNS"
    measure "issue-c8-1m" "$BENCH" issue --ca "$url" --bundle "$data/bundle.pem" \
      --token "$(token "$N")" --spiffe-id "$AGENT_ID" --concurrency 8 --count "$N" \
      --server-pid "$server_pid" --clk-tck "$CLK_TCK"
  done
  stop_server
  echo "rss scale-store $peak_rss_mb" >>"$results"
fi

# --- Report -------------------------------------------------------------------
# values LABEL KEY: that key of every run of LABEL, one a line.
values() { grep "^$1 " "$results" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
median() {
  local v
  v=$(values "$1" "$2" | grep -v '^na$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}')
  echo "${v:-na}"
}
# Three decimals, cut rather than rounded: rounded, 0.3298 would print as
# 0.330 beside "target >= 0.33".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b + 0 == 0) print "na"; else printf "%.3f", int(a / b * 1000) / 1000 }'; }
# target OP LIMIT VALUE: "(target OP LIMIT: met)", or "missed", or "na";
# LIMIT may carry a unit ("20 ms"), which awk's numbers ignore.
target() {
  awk -v op="$1" -v limit="$2" -v v="$3" 'BEGIN {
    if (v == "na" || v == "") verdict = "na"
    else if (op == ">=") verdict = (v + 0 >= limit + 0) ? "met" : "missed"
    else if (op == ">") verdict = (v + 0 > limit + 0) ? "met" : "missed"
    else verdict = (v + 0 < limit + 0) ? "met" : "missed"
    printf "(target %s %s: %s)", op, limit, verdict
  }'
}

echo
echo "Sigil issuance benchmark: N=$N per measurement, $RUNS runs, medians; $(nproc) cores;" \
  "CLK_TCK=$CLK_TCK; $(date -u)"
printf '%-10s %12s %9s %9s %9s %8s %14s %14s %s\n' measurement "certs/s" "p50 ms" "p99 ms" "max ms" errors "server CPU ms" "client CPU ms" "(per run: certs/s)"
for label in floor floor-renew issue-c8 issue-c16 renew-c8 cfssl-c8 issue-c8-1m; do
  grep -q "^$label " "$results" || continue
  errors=$(values "$label" errors | awk '{s += $1} END {print s + 0}')
  printf '%-10s %12s %9s %9s %9s %8s %14s %14s %s\n' "$label" "$(median "$label" rate)" \
    "$(median "$label" p50_ms)" "$(median "$label" p99_ms)" "$(median "$label" max_ms)" \
    "$errors" "$(median "$label" cpu_ms_per_cert)" "$(median "$label" client_cpu_ms_per_cert)" \
    "($(values "$label" rate | paste -sd ' ' -))"
done
echo "(floor: ops/s on $(values floor threads | head -n 1) threads; floor-renew: the same plus one full mTLS handshake, both ends; errors summed over runs; CPU ms = utime+stime"
echo " per certificate of the server process and of the load generator, which share the machine)"
issue8=$(median issue-c8 rate)
r=$(ratio "$issue8" "$(median floor rate)")
echo "ratio Sigil issue-c8 / floor: $r $(target '>=' 0.33 "$r")"
echo "ratio Sigil issue-c16 / floor: $(ratio "$(median issue-c16 rate)" "$(median floor rate)")"
r=$(ratio "$(median renew-c8 rate)" "$(median floor-renew rate)")
echo "ratio Sigil renew-c8 / floor-renew (with one mTLS handshake): $r $(target '>=' 0.33 "$r")"
if [ -n "$cfssl_url" ]; then
  r=$(ratio "$issue8" "$(median cfssl-c8 rate)")
  echo "ratio Sigil issue-c8 / cfssl-c8: $r $(target '>' 1 "$r")"
else
  echo "ratio Sigil issue-c8 / cfssl-c8: na (cfssl not run)"
fi
p99=$(median issue-c8 p99_ms)
echo "Sigil issue-c8 p99: $p99 ms $(target '<' '20 ms' "$p99")"
if grep -q "^issue-c8-1m " "$results"; then
  seeded="serials in issuance order"
  if [ "$SCALE_RANDOM_SERIALS" = 1 ]; then seeded="random serials, as upgraded"; fi
  r=$(ratio "$(median issue-c8-1m rate)" "$issue8")
  echo "ratio Sigil issue-c8 on a $SCALE_CERTS-certificate store ($seeded) / on an empty store:" \
    "$r $(target '>=' 0.90 "$r")"
  crl_ms=$(median crl median_ms)
  echo "CRL regeneration, $(values crl entries | head -n 1) entries (store query + signing + storing):" \
    "$crl_ms ms $(target '<' '200 ms' "$crl_ms")"
  startup=$(grep '^startup scale-store ' "$results" | cut -d' ' -f3)
  echo "sigil serve start-up on that store: $startup ms $(target '<' '2000 ms' "$startup")"
fi
echo "sigil serve start-up on an empty store: $(median startup-empty ms) ms (median of the runs)"
for store in empty-store scale-store; do
  # The highest of the runs; no line for a store that was not run (SCALE=0).
  rss=$(grep "^rss $store " "$results" | cut -d' ' -f3 | sort -g | tail -n 1 || true)
  if [ -n "$rss" ]; then
    echo "server peak resident memory (VmHWM), $store, the highest of its servers: $rss MB $(target '<' '150 MB' "$rss")"
  fi
done
