#!/usr/bin/env bash
# Verification API benchmarks (issue 6), against a zbca serve on 127.0.0.1
# only. Every load run is bounded in time (DUR seconds) or in requests, and
# with a fixed number of connections; the server started here is stopped
# on exit.
#
#   scripts/bench/verify.sh
#
# It fills a fresh data directory with N client certificates (default
# 20,000; scripts/bench/fill), makes an API key, writes one request body
# per certificate (scripts/bench/verifyload prepare), starts zbca serve and
# measures:
#   1. first-seen certificates: each of the N sent once (verifyload once,
#      16 connections) to a freshly started server: parse, chain check,
#      record lookup, then the cache;
#   2. already-seen certificates: SEEN (1,000) of them, in the cache,
#      closed loop with wrk (lua/verify.lua) at 16 and 64 connections;
#   3. already-seen, paced: wrk with C connections each waiting D ms after
#      an answer (lua/verify_paced.lua), for PACED="C/D …" (default
#      "16/1 24/1 32/1"): the latency below saturation;
#   4. with GO_RATE=1, an open-loop fixed RATE (15,000/s) with verifyload
#      rate (latency from the due time; the Go client is costly here);
#   5. unless CEILING=0, the paced runs of 3 against fixedhttp -tls, a
#      plain Go HTTPS handler answering fixed JSON: the harness's ceiling.
# The load generators run on the same two cores as the server.
#
# Environment: N, SEEN, DUR (default 20), PACED, GO_RATE, RATE (default 15000), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
N=${N:-20000}
SEEN=${SEEN:-1000}
DUR=${DUR:-20}
RATE=${RATE:-15000}
PACED=${PACED:-16/1 24/1 32/1}

command -v wrk > /dev/null || { apt-get install -y -qq wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }; }

work=$(mktemp -d /tmp/zbca-verify.XXXXXX)
server=
cleanup() {
  if [[ -n $server ]]; then
    kill -TERM -- "-$server" 2> /dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2> /dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server" 2> /dev/null || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { printf '\n== %s\n' "$*"; }

# The machine may be shared: before each measurement wait (up to a minute)
# until other processes use at most 10% of the two cores, and say how busy
# it was before and during the run.
busy() { # percent of both cores busy over one second, not counting the server
  local a b hz s1 s2
  hz=$(getconf CLK_TCK)
  a=($(head -1 /proc/stat)); s1=$(srv_jiffies); sleep 1; b=($(head -1 /proc/stat)); s2=$(srv_jiffies)
  echo $(( 100 * ((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8]) - (s2 - s1)) / (2 * hz) ))
}
srv_jiffies() { [[ -n $server && -r /proc/$server/stat ]] && awk '{ print $14 + $15 }' "/proc/$server/stat" || echo 0; }
quiet() {
  local i b
  for i in $(seq 60); do
    b=$(busy)
    if (( b <= 10 )); then echo "(other processes used ${b}% of the 2 cores before this run)"; return; fi
  done
  echo "(WARNING: other processes still used ${b}% of the 2 cores after a minute: the next number is disturbed; load average $(cut -d' ' -f1-3 /proc/loadavg))"
}
mark() { m_all=($(head -1 /proc/stat)); m_srv=$(srv_jiffies); m_t=$(date +%s%N); }
others() { # $1: CPU seconds of the load generator
  local now srv hz
  now=($(head -1 /proc/stat)); srv=$(srv_jiffies); hz=$(getconf CLK_TCK)
  awk -v b="$(( (now[1] + now[2] + now[3] + now[6] + now[7] + now[8]) - (m_all[1] + m_all[2] + m_all[3] + m_all[6] + m_all[7] + m_all[8]) ))" \
      -v s="$(( srv - m_srv ))" -v g="${1:-0}" -v hz="$hz" -v ns="$(( $(date +%s%N) - m_t ))" '
    BEGIN { o = (b - s - g * hz) / (2 * hz * ns / 1e9) * 100; if (o < 0) o = 0
            printf "(server used %.0f%% and other processes %.0f%% of the 2 cores meanwhile)\n", s / (2 * hz * ns / 1e9) * 100, o }'
}

log "building"
go build -o "$work/zbca" ./cmd/zbca
for t in fill verifyload fixedhttp; do go build -o "$work/$t" "./scripts/bench/$t"; done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hp=$(port); sp=$(port); ap=$(port)
cat > "$work/zbca.yaml" << YAML
data_dir: $work/data
public_url: http://127.0.0.1:$hp
listen: {http: "127.0.0.1:$hp", https: "127.0.0.1:$sp", admin: "127.0.0.1:$ap"}
log: {level: warn}
YAML
chmod 600 "$work/zbca.yaml"
export ZBCA_CONFIG=$work/zbca.yaml
base=https://127.0.0.1:$sp

log "filling $N client certificates"
"$work/zbca" init > /dev/null
"$work/fill" -data "$work/data" -config "$work/zbca.yaml" -n "$N" -revoked 0 | tail -2
key=$("$work/zbca" apikey add bench 2> /dev/null)
"$work/verifyload" prepare -data "$work/data" -out "$work/bodies.txt"
head -n "$SEEN" "$work/bodies.txt" > "$work/seen.txt"
cp "$work/data/ca/root.crt" "$work/root.pem"

log "zbca serve"
setsid "$work/zbca" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$ap/readyz" > /dev/null && break; sleep 0.1; done

log "1. first-seen certificates: each of $N once, 16 connections"
quiet
mark
/usr/bin/time -f '%U %S' -o "$work/time" "$work/verifyload" once -url "$base" -key "$key" -root "$work/root.pem" -bodies "$work/bodies.txt" -c 16
echo "load generator CPU: $(awk '{ print $1 + $2 }' "$work/time") s"; others "$(awk '{ print $1 + $2 }' "$work/time")"

wrk_run() { # $1: connections
  log "2. already-seen certificates ($SEEN, cached): wrk -t2 -c$1 -d${DUR}s --latency -s lua/verify.lua"
  quiet
  mark
  VERIFY_KEY=$key VERIFY_BODIES=$work/seen.txt /usr/bin/time -f '%U %S' -o "$work/time" \
    wrk -t2 -c"$1" -d"${DUR}s" --latency -s "$repo/scripts/bench/lua/verify.lua" "$base" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|  50%|  75%|  90%|  99%|requests in'
  echo "wrk CPU: $(awk '{ print $1 + $2 }' "$work/time") s"; others "$(awk '{ print $1 + $2 }' "$work/time")"
}
wrk_run 16
wrk_run 64

paced() { # $1: connections, $2: delay in ms after each answer
  log "3. already-seen certificates, paced: wrk -t2 -c$1, each connection waiting $2 ms after an answer, ${DUR}s"
  quiet
  mark
  VERIFY_KEY=$key VERIFY_BODIES=$work/seen.txt VERIFY_DELAY_MS=$2 /usr/bin/time -f '%U %S' -o "$work/time" \
    wrk -t2 -c"$1" -d"${DUR}s" --latency -s "$repo/scripts/bench/lua/verify_paced.lua" "$base" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|  50%|  75%|  90%|  99%|requests in'
  echo "wrk CPU: $(awk '{ print $1 + $2 }' "$work/time") s"; others "$(awk '{ print $1 + $2 }' "$work/time")"
}
for p in $PACED; do paced "${p%/*}" "${p#*/}"; done

if [[ ${GO_RATE:-0} == 1 ]]; then
  # The Go generator costs about as much CPU per request as the server on
  # these two cores (net/http client + TLS): its tail is its own.
  log "4. already-seen certificates at a fixed $RATE/s for ${DUR}s, 64 connections (verifyload rate)"
  quiet
  mark
  /usr/bin/time -f '%U %S' -o "$work/time" "$work/verifyload" rate -url "$base" -key "$key" -root "$work/root.pem" -bodies "$work/seen.txt" -rate "$RATE" -duration "${DUR}s" -c 64
  echo "load generator CPU: $(awk '{ print $1 + $2 }' "$work/time") s"; others "$(awk '{ print $1 + $2 }' "$work/time")"
fi

log "server"
curl -s "http://127.0.0.1:$ap/metrics" | grep -E '^zbca_(verify|status_syncs)' || true
awk '/VmRSS|VmHWM/ { printf "%s %d MB  ", $1, $2/1024 } END { print "" }' "/proc/$server/status"
echo "warnings and errors in the server log: $(grep -c 'level=WARN\|level=ERROR' "$work/serve.log" || true)"
kill -TERM -- "-$server" 2> /dev/null || true
for _ in $(seq 50); do kill -0 "$server" 2> /dev/null || break; sleep 0.1; done

# The ceiling of the harness: a plain Go HTTPS handler that reads the body
# and writes 500 fixed octets of JSON, under the same pacing.
if [[ ${CEILING:-1} == 1 ]]; then
  fp=$(port)
  setsid "$work/fixedhttp" -tls "127.0.0.1:$fp" > /dev/null 2>&1 &
  server=$!
  sleep 0.5
  base_zbca=$base
  base=https://127.0.0.1:$fp
  log "ceiling: fixedhttp -tls (plain Go handler, fixed JSON), same pacing"
  for p in $PACED; do paced "${p%/*}" "${p#*/}"; done
  base=$base_zbca
fi
