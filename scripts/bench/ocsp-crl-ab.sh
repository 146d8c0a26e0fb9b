#!/usr/bin/env bash
# A/B of the OCSP responder's GET throughput and of the 1,000,000-entry
# CRL for two source trees (issue 16: the status feed must not make either
# worse), in alternating runs on copies of one data directory, so that
# other work on the machine weighs on both alike. Everything listens on
# 127.0.0.1; every run is bounded; every process started here is stopped
# on exit and the work directory (about 5 GB) removed.
#
#   scripts/bench/ocsp-crl-ab.sh OLD_TREE NEW_TREE [rounds]     # ~20 minutes with N=1000000
#
# OLD_TREE and NEW_TREE are checked-out zbca trees (e.g. `git worktree add
# /tmp/base a0367fc`); each is built with its own tools. The data: OLD's
# zbca init and scripts/bench/fill -n N (10% revoked), then fill
# -revoke-rest (every certificate revoked: the CRL has N entries), made
# once and copied for each binary (NEW migrates its copy at first open).
# Then, ROUNDS times, OLD then NEW:
#   - CRL: scripts/bench/crlpub -count 1 on the binary's copy (a fresh
#     process each time: one publication, its time and peak RSS);
#   - OCSP GET: zbca serve on its copy, after the log line "signed OCSP
#     responses", wrk -t2 -c64 -dDURs --latency -s lua/get.lua on 100,000
#     known serials (scripts/bench/ocspreq), then the server is stopped.
# Before each measurement it waits (up to QUIET_MAX seconds) until other
# processes use at most 10% of the cores, and says how busy they were.
#
# Environment: N (1000000), DUR (20), QUIET_MAX (60), WORK (work directory;
# default a fresh one under /tmp), KEEP=1 keeps it.
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); ROUNDS=${3:-2}
cd "$(dirname "$0")/../.."
repo=$PWD
N=${N:-1000000}
DUR=${DUR:-20}
QUIET_MAX=${QUIET_MAX:-60}
command -v wrk > /dev/null || { apt-get install -y -qq wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }; }
work=${WORK:-$(mktemp -d /tmp/zbca-ocsp-ab.XXXXXX)}
mkdir -p "$work"
# The work directory is removed on exit: refuse one that holds anything not made here.
[[ -z $(ls -A "$work") || -f $work/.zbca-ocsp-ab ]] || { echo "$work is not empty and not ours" >&2; exit 2; }
touch "$work/.zbca-ocsp-ab"
server=
stop_server() {
  [[ -n $server ]] || return 0
  kill -TERM -- "-$server" 2> /dev/null || true
  for _ in $(seq 100); do kill -0 "$server" 2> /dev/null || break; sleep 0.1; done
  kill -KILL -- "-$server" 2> /dev/null || true
  server=
}
cleanup() { stop_server; if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '\n== %s\n' "$*"; }
hz=$(getconf CLK_TCK); ncpu=$(nproc)
srv_j() { [[ -n $server && -r /proc/$server/stat ]] && awk '{ print $14 + $15 }' "/proc/$server/stat" || echo 0; }
busy() {
  local a b s1 s2
  a=($(head -1 /proc/stat)); s1=$(srv_j); sleep 1; b=($(head -1 /proc/stat)); s2=$(srv_j)
  echo $(( 100 * ((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8]) - (s2 - s1)) / (ncpu * hz) ))
}
quiet() {
  local t0=$SECONDS b
  while :; do
    b=$(busy)
    if (( b <= 10 )); then echo "   (other processes used ${b}% of the $ncpu cores before this run)"; return; fi
    if (( SECONDS - t0 >= QUIET_MAX )); then
      echo "   (WARNING: other processes still used ${b}% of the $ncpu cores after ${QUIET_MAX}s: the next number is disturbed)"; return
    fi
  done
}
mark() { m_all=($(head -1 /proc/stat)); m_srv=$(srv_j); m_t=$(date +%s%N); }
others() { # $1: CPU seconds of the load generator
  local now srv
  now=($(head -1 /proc/stat)); srv=$(srv_j)
  awk -v b="$(( (now[1] + now[2] + now[3] + now[6] + now[7] + now[8]) - (m_all[1] + m_all[2] + m_all[3] + m_all[6] + m_all[7] + m_all[8]) ))" \
      -v s="$(( srv - m_srv ))" -v g="${1:-0}" -v hz="$hz" -v n="$ncpu" -v ns="$(( $(date +%s%N) - m_t ))" '
    BEGIN { t = n * hz * ns / 1e9; o = (b - s - g * hz) / t * 100; if (o < 0) o = 0
            printf "   (server %.0f%%, load generator %.0f%%, others %.0f%% of the cores meanwhile)\n", s / t * 100, g * hz / t * 100, o }'
}

log "building OLD=$(git -C "$old" rev-parse --short HEAD) NEW=$(git -C "$new" rev-parse --short HEAD)"
for side in old new; do
  t=${!side}
  mkdir -p "$work/$side"
  (cd "$t" && go build -o "$work/$side/zbca" ./cmd/zbca && for b in fill ocspreq crlpub; do go build -o "$work/$side/$b" "./scripts/bench/$b"; done)
done

src=$work/src
if [[ ! -f $work/filled ]]; then
  rm -rf "$src"; mkdir -p "$src"
  log "OLD: zbca init, fill -n $N -revoked 0.10, fill -revoke-rest"
  "$work/old/zbca" --data "$src/data" init > /dev/null
  /usr/bin/time -f 'fill: %e s, peak RSS %M KiB' "$work/old/fill" -data "$src/data" -n "$N" -revoked 0.10 2>&1 | tail -2
  /usr/bin/time -f 'revoke-rest: %e s' "$work/old/fill" -data "$src/data" -revoke-rest 2>&1 | tail -2
  "$work/old/ocspreq" -data "$src/data" -out "$work/req" -index=false > /dev/null
  touch "$work/filled"
fi
for side in old new; do rm -rf "$work/$side-data"; cp -a "$src/data" "$work/$side-data"; done
sync

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hp=$(free_port); sp=$(free_port); ap=$(free_port)
declare -A res
crl() { # $1: side, $2: round
  log "CRL, round $2, $1: crlpub -count 1"
  quiet
  /usr/bin/time -f '   process peak RSS %M KiB, %e s wall (including opening the store)' "$work/$1/crlpub" -data "$work/$1-data" -count 1 2>&1 |
    tee "$work/crl.out" | grep -E '^run|peak RSS' | sed 's/^run/   run/'
  res[$1,crl]+="$(sed -n 's/.*took \([^,]*\),.*/\1/p' "$work/crl.out") "
}
ocsp() { # $1: side, $2: round
  local cfg=$work/$1.yaml
  cat > "$cfg" << EOF
data_dir: $work/$1-data
public_url: http://127.0.0.1:$hp
listen: {http: "127.0.0.1:$hp", https: "127.0.0.1:$sp", admin: "127.0.0.1:$ap"}
log: {level: info}
EOF
  chmod 600 "$cfg"
  log "OCSP GET, round $2, $1: zbca serve, then wrk -t2 -c64 -d${DUR}s --latency -s lua/get.lua"
  setsid "$work/$1/zbca" --config "$cfg" serve > "$work/serve-$1.log" 2>&1 &
  server=$!
  for _ in $(seq 3000); do
    grep -q 'msg="signed OCSP responses"' "$work/serve-$1.log" && break
    kill -0 "$server" 2> /dev/null || { tail -20 "$work/serve-$1.log"; exit 1; }
    sleep 0.1
  done
  grep -m1 'msg="signed OCSP responses"' "$work/serve-$1.log" | sed 's/^/   /'
  quiet
  mark
  OCSP_PATHS=$work/req/get.txt /usr/bin/time -f '%U %S' -o "$work/time" \
    wrk -t2 -c64 -d"${DUR}s" --latency -s "$repo/scripts/bench/lua/get.lua" "http://127.0.0.1:$hp" > "$work/wrk.out" 2>&1 || true
  others "$(awk '{ print $1 + $2 }' "$work/time")"
  grep -E 'Requests/sec|Non-2xx|Socket errors|  50%|  99%' "$work/wrk.out" | sed 's/^/   /'
  awk '/VmRSS|VmHWM/ { printf "   %s %d MB", $1, $2 / 1024 } END { print "" }' "/proc/$server/status"
  res[$1,ocsp]+="$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$work/wrk.out") "
  stop_server
}
for r in $(seq "$ROUNDS"); do
  for side in old new; do crl "$side" "$r"; done
  for side in old new; do ocsp "$side" "$r"; done
done
log "summary (N=$N, all revoked; OLD=$(git -C "$old" rev-parse --short HEAD), NEW=$(git -C "$new" rev-parse --short HEAD))"
for side in old new; do
  echo "$side: CRL of $N entries: ${res[$side,crl]}; OCSP GET/s: ${res[$side,ocsp]}"
done
