#!/usr/bin/env bash
# OCSP responder and CRL benchmarks of issue 3, with 1,000,000 certificates
# (10% revoked) loaded, against 127.0.0.1 only; every load run is bounded in
# time and connections, and every server started here is stopped on exit.
#
#   scripts/bench/ocsp.sh [DATA_DIR]
#
# DATA_DIR: a data directory filled earlier (zbca init + scripts/bench/fill),
# reused as it is except for the few probe certificates this run revokes and
# the CRLs it publishes. Without it, a fresh one is filled in the work
# directory (N certificates, default 1,000,000: about 5 minutes) and deleted
# at the end unless KEEP=1.
#
# Environment: N (certificates to fill), DUR (seconds per wrk run, default
# 20), RATE (fixed rate for the latency run, default 20000), OPENSSL=0 skips
# the openssl responder, CRL_ALL=0 skips the CRL with every certificate
# revoked (it revokes all certificates of a copy of the data directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
N=${N:-1000000}
DUR=${DUR:-20}
RATE=${RATE:-20000}
PACED_CONNS=${PACED_CONNS:-66}
OPENSSL=${OPENSSL:-1}
CRL_ALL=${CRL_ALL:-1}

command -v wrk > /dev/null || { apt-get install -y -qq wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }; }

work=$(mktemp -d /tmp/zbca-ocsp.XXXXXX)
pids=()
stop_group() { # $1: a process group leader started here; TERM, then KILL after 5 s
  local i
  kill -TERM -- "-$1" 2> /dev/null || true
  for i in $(seq 50); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2> /dev/null || true
}
cleanup() {
  for p in "${pids[@]}"; do stop_group "$p"; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { printf '\n== %s\n' "$*"; }

# The machine may be shared (tests of other work): before each measurement
# wait, up to 2 minutes, until other processes than the server use at most
# 10% of the cores for a second, and say how busy they were; after it, say
# how much CPU others took meanwhile, so that a disturbed number can be
# recognised.
busy() { # percent of both cores busy over one second, not counting the server
  local a b hz
  a=($(jiffies)); sleep 1; b=($(jiffies))
  hz=$(getconf CLK_TCK)
  echo $(( 100 * (b[0] - a[0] - (b[1] - a[1])) / (2 * hz) ))
}
# cpu_mark / cpu_others: the share of both cores used by processes other
# than the ones measured (the server and the load generator, whose CPU time
# is passed to cpu_others in seconds) between the two calls.
jiffies() { # busy jiffies of the machine, and of the server and its children
  local a srv=0
  a=($(head -1 /proc/stat))
  if [[ -n ${server:-} && -r /proc/$server/stat ]]; then
    srv=$(cat "/proc/$server/stat" $(ps -o pid= --ppid "$server" | awk '{ print "/proc/" $1 "/stat" }') 2> /dev/null |
      awk '{ s += $14 + $15 } END { print s + 0 }')
  fi
  echo $(( a[1] + a[2] + a[3] + a[6] + a[7] + a[8] )) "$srv" "$(date +%s%N)"
}
cpu_mark() { mark=($(jiffies)); }
cpu_others() { # $1: CPU seconds of the load generator
  local now hz
  now=($(jiffies))
  hz=$(getconf CLK_TCK)
  awk -v b="$(( now[0] - mark[0] ))" -v s="$(( now[1] - mark[1] ))" -v g="${1:-0}" -v hz="$hz" -v ns="$(( now[2] - mark[2] ))" '
    BEGIN { o = (b - s - g * hz) / (2 * hz * ns / 1e9) * 100; if (o < 0) o = 0
            printf "(other processes used %.0f%% of the 2 cores meanwhile)\n", o }'
}
quiet() {
  local i b
  for i in $(seq 120); do
    b=$(busy)
    if (( b <= 10 )); then echo "(other processes used ${b}% of the 2 cores before this run)"; return; fi
  done
  echo "(WARNING: machine still ${b}% busy after 2 minutes: the next number is disturbed)"
  ps -eo pcpu,comm --sort=-pcpu | sed -n 2,4p
}

log "building"
go build -o "$work/zbca" ./cmd/zbca
for t in fill ocspreq ocspload crlpub fixedhttp; do go build -o "$work/$t" "./scripts/bench/$t"; done

data=${1:-}
if [[ -z $data ]]; then
  data=$work/data
  log "filling $data with $N certificates (10% revoked)"
  "$work/zbca" --data "$data" init > /dev/null
  /usr/bin/time -f 'fill: %e s, peak RSS %M KiB' "$work/fill" -data "$data" -n "$N" -revoked 0.10
fi
data=$(cd "$data" && pwd)

log "request files"
"$work/ocspreq" -data "$data" -out "$work/req"

free_port() { # a free loopback TCP port
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
hp=$(free_port); sp=$(free_port); ap=$(free_port); op=$(free_port)
cat > "$work/zbca.yaml" << EOF
data_dir: $data
public_url: http://127.0.0.1:$hp
listen: {http: "127.0.0.1:$hp", https: "127.0.0.1:$sp", admin: "127.0.0.1:$ap"}
log: {level: info}
EOF
chmod 600 "$work/zbca.yaml"
base=http://127.0.0.1:$hp
admin=http://127.0.0.1:$ap

server=
start_server() { # $1: log file; sets server and prints start to serving
  local t0
  t0=$(date +%s%N)
  setsid "$work/zbca" --config "$work/zbca.yaml" serve > "$1" 2>&1 &
  server=$!
  pids+=("$server")
  "$work/ocspload" ready -url "$base" -admin "$admin" -probes "$work/req/probe.txt" -since "$t0"
}
stop_server() { stop_group "$server"; }
wait_signed() { # $1: log file; waits for the first full signing pass
  local i
  for i in $(seq 1200); do
    if grep -q 'msg="signed OCSP responses"' "$1"; then
      grep 'msg="signed OCSP responses"' "$1" | head -1
      return
    fi
    sleep 0.1
  done
  echo "no 'signed OCSP responses' line after 120 s" >&2
  exit 1
}
rss() { awk '/VmRSS|VmHWM/ { printf "%s %d MB  ", $1, $2/1024 }' "/proc/$server/status"; echo; }

log "zbca serve, first start on the filled directory"
quiet
cpu_mark
start_server "$work/serve1.log"
wait_signed "$work/serve1.log"
cpu_others
grep -E 'msg="(OCSP responder loaded|published CRL|serving)"' "$work/serve1.log" || true
printf 'memory after signing: '; rss

wrk_run() { # $1: name, $2: lua script, rest: env
  local name=$1 script=$2
  shift 2
  quiet
  printf -- '-- %s: wrk -t2 -c64 -d%ss --latency -s %s\n' "$name" "$DUR" "$(basename "$script")"
  cpu_mark
  env "$@" /usr/bin/time -f '%U %S' -o "$work/time" wrk -t2 -c64 -d"${DUR}s" --latency -s "$script" "$base" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|  50%|  99%|requests in'
  cpu_others "$(awk '{ print $1 + $2 }' "$work/time")"
}
log "OCSP GET, POST and nonce, closed loop"
wrk_run GET "$repo/scripts/bench/lua/get.lua" OCSP_PATHS="$work/req/get.txt"
wrk_run POST "$repo/scripts/bench/lua/post.lua" OCSP_HEX="$work/req/post.hex"
wrk_run "POST with nonce" "$repo/scripts/bench/lua/post.lua" OCSP_HEX="$work/req/nonce.hex"
echo "warnings and errors in the log so far: $(grep -c 'level=WARN\|level=ERROR' "$work/serve1.log" || true)"
curl -s "$admin/metrics" | grep -E '^zbca_ocsp' || true

fixed_rate() { # $1: rate
  log "OCSP GET at a fixed $1/s for ${DUR}s (64 connections), latency from due time"
  quiet
  cpu_mark
  /usr/bin/time -f '%U %S' -o "$work/time" "$work/ocspload" rate -url "$base" -paths "$work/req/get.txt" -rate "$1" -duration "${DUR}s" -conns 64
  echo "load generator CPU: $(awk '{ print $1 + $2 }' "$work/time") s"
  cpu_others "$(awk '{ print $1 + $2 }' "$work/time")"
}
for rate in $RATE $((RATE / 2)); do fixed_rate "$rate"; done

# The same rate offered by wrk itself (C, far cheaper than ocspload on two
# shared cores): PACED_CONNS connections, each waiting 3 ms after every
# answer, about 20,000 requests a second.
paced() {
  log "OCSP GET paced by wrk: $PACED_CONNS connections, 3 ms between answer and next request, ${DUR}s"
  quiet
  cpu_mark
  OCSP_PATHS="$work/req/get.txt" OCSP_DELAY_MS=3 /usr/bin/time -f '%U %S' -o "$work/time" \
    wrk -t2 -c"$PACED_CONNS" -d"${DUR}s" --latency -s "$repo/scripts/bench/lua/get_paced.lua" "$base" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|  50%|  75%|  90%|  99%|requests in'
  echo "wrk CPU: $(awk '{ print $1 + $2 }' "$work/time") s"
  cpu_others "$(awk '{ print $1 + $2 }' "$work/time")"
}
paced

log "revoke through the admin API → OCSP GET says revoked"
"$work/ocspload" revoke -url "$base" -admin "$admin" -token "$data/secrets/admin-token" -probes "$work/req/probe.txt" -n 5
printf 'memory after the load runs: '; rss
stop_server

log "restart on the filled directory"
quiet
cpu_mark
start_server "$work/serve2.log"
wait_signed "$work/serve2.log"
cpu_others
grep -E 'msg="(OCSP responder loaded|serving)"' "$work/serve2.log" || true
printf 'memory after signing: '; rss
stop_server

if [[ $OPENSSL == 1 ]]; then
  log "openssl ocsp -multi 2 on the same certificates (index of every certificate)"
  ocsp_cert=$(grep -A3 '"ocsp"' "$data/ca/hierarchy.json" | sed -n 's/.*"cert": "\(.*\)".*/\1/p')
  ocsp_key=$(grep -A3 '"ocsp"' "$data/ca/hierarchy.json" | sed -n 's/.*"key": "\(.*\)".*/\1/p')
  # openssl's responder takes the whole path as the request: no /ocsp/.
  # (A malformed GET makes its -multi children stop accepting, here.)
  sed 's#^/ocsp##' "$work/req/get.txt" > "$work/req/get-openssl.txt"
  start_openssl() {
    local t0 i
    t0=$(date +%s.%N)
    # No setsid: with -multi, openssl makes its own process group (and
    # exits if it cannot, as a session leader); it ignores SIGTERM there,
    # hence the KILL of stop_group. openssl 3.0 takes a port only and
    # listens on [::] (all addresses); the load goes to 127.0.0.1 only.
    openssl ocsp -index "$work/req/index.txt" -port "$op" -CA "$data/ca/issuing-1.crt" \
      -rsigner "$data/ca/$ocsp_cert" -rkey "$data/ca/$ocsp_key" -passin "file:$data/secrets/ca-passphrase" \
      -nmin 60 -multi 2 > "$work/openssl.log" 2>&1 &
    server=$!
    pids+=("$server")
    for i in $(seq 600); do
      curl -sf -o /dev/null "http://127.0.0.1:$op$(head -1 "$work/req/get-openssl.txt")" && break
      sleep 0.1
    done
    printf 'openssl responder answering after %.1f s, ' "$(echo "$(date +%s.%N) - $t0" | bc)"
    ps -o rss= --ppid "$server" | awk '{ s += $1 } END { printf "children RSS %d MB\n", s/1024 }'
  }
  base_zbca=$base
  base=http://127.0.0.1:$op
  # A fresh responder for each run: when wrk closes its connections at the
  # end of a run, openssl 3.0's -multi children spin at full CPU and answer
  # nothing more.
  start_openssl
  wrk_run "openssl GET" "$repo/scripts/bench/lua/get.lua" OCSP_PATHS="$work/req/get-openssl.txt"
  stop_group "$server"
  start_openssl
  wrk_run "openssl POST" "$repo/scripts/bench/lua/post.lua" OCSP_HEX="$work/req/post.hex"
  stop_group "$server"
  base=$base_zbca
fi

log "ceiling: a plain Go handler returning 1,000 fixed octets (fixedhttp)"
setsid "$work/fixedhttp" "127.0.0.1:$op" &
server=$!
pids+=("$server")
sleep 0.5
base_zbca=$base
base=http://127.0.0.1:$op
wrk_run "fixed bytes GET" "$repo/scripts/bench/lua/get.lua" OCSP_PATHS="$work/req/get.txt"
fixed_rate "$RATE" # calibrates ocspload (its answers are not OCSP: "not successful" is expected)
paced
base=$base_zbca
stop_group "$server"

log "CRL publication (crlpub: reserve number, stream rows, sign, store), $(grep -c '^R' "$work/req/index.txt") revoked"
quiet
"$work/crlpub" -data "$data" -count 3

if [[ $CRL_ALL == 1 ]]; then
  log "CRL with every certificate revoked (a copy of the data directory)"
  cp -r "$data" "$work/all"
  rm -f "$work/all/run/"*
  "$work/fill" -data "$work/all" -revoke-rest
  quiet
  "$work/crlpub" -data "$work/all" -count 3
  rm -rf "$work/all"
fi
