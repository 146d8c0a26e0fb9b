#!/usr/bin/env bash
# Issue 16 (one feed of status changes): the verification API on SQLite and
# on PostgreSQL, alone and beside ~200 unrelated writes per second, for this
# tree and a base revision (default a0367fc, the code before the feed), all
# in one run on one machine. Everything listens on 127.0.0.1; every load
# run is bounded (DUR seconds, CONNS connections); every process started
# here is stopped on exit, the databases made here are dropped, the
# worktree of the base is removed.
#
#   scripts/bench/feed.sh [BASE_REV]          # ~12–15 minutes with the defaults
#
# "new" is NEW_REV (default HEAD), "base" is BASE_REV; each is built with
# its own fill and verifyload from a git worktree made here (or from
# NEW_TREE / BASE_TREE, checked-out trees given by the caller).
#
# For each binary (the working tree's as "new", BASE_REV's as "base") and
# each store in STORES, a node: zbca init, scripts/bench/fill (N client
# certificates, none revoked; on PostgreSQL straight into the database
# DB_<bin>), an API key, SEEN request bodies (verifyload prepare, each
# tree's own tools), 8 enterprises for the writer, zbca serve, then each of
# the SEEN certificates verified once (so that all are already seen). All
# the nodes are started first and stay up; the measurements then go round
# the nodes ROUNDS times (the order of "alone" and "writes" alternating
# between rounds), so that drift in the machine weighs on all of them:
#   alone:  wrk -t2 -cCONNS -dDURs --latency -s lua/verify.lua (closed loop,
#           as verify.sh phase 2) on the SEEN already-seen certificates;
#   writes: the same while scripts/bench/feedwrite commits unrelated writes
#           at a fixed schedule: NONCES/s ACME requests that each spend a
#           nonce (one INSERT into acme_used_nonces) and LOGINS/s password
#           logins (POST /api/v1/eab: a begin and a finish commit, argon2id).
#           The writes counted are the rows added to acme_used_nonces and
#           2 × the logins counted by zbca_logins_total{outcome="ok"},
#           between the start and the end of the wrk run.
# Before each run the script waits (up to QUIET_MAX seconds) until other
# processes use at most 10% of the cores and says how busy they were; after
# it, how the cores were shared. A summary table ends the output.
#
# Environment: N (20000), SEEN (1000), DUR (15), ROUNDS (2), CONNS (16),
# NONCES (190), LOGINS (5), STORES ("sqlite postgres"), BINS ("new base"),
# DB (database name prefix, zbca_bench16), PGHOST/PGPORT/PGUSER
# (127.0.0.1/5432/postgres), NEW_REV, NEW_TREE, BASE_TREE, QUIET_MAX (60),
# KEEP=1 keeps the work directory (not the databases).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
BASE_REV=${1:-a0367fc}
N=${N:-20000}
SEEN=${SEEN:-1000}
DUR=${DUR:-15}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-16}
NONCES=${NONCES:-190}
LOGINS=${LOGINS:-5}
STORES=${STORES:-sqlite postgres}
BINS=${BINS:-new base}
DB=${DB:-zbca_bench16}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
QUIET_MAX=${QUIET_MAX:-60}
export PGHOST PGPORT PGUSER

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "DB must be a plain lower-case name" >&2; exit 2; }
[[ $PGHOST == 127.0.0.1 || $PGHOST == localhost ]] || { echo "PGHOST must be 127.0.0.1 (loopback only)" >&2; exit 2; }
command -v wrk > /dev/null || { apt-get install -y -qq wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }; }
command -v sqlite3 > /dev/null || { echo "sqlite3 is needed (to count the used nonces)" >&2; exit 2; }
if [[ " $STORES " == *" postgres "* ]]; then
  command -v psql > /dev/null || { echo "psql is needed (postgresql-client)" >&2; exit 2; }
  pg_isready -q -h "$PGHOST" -p "$PGPORT" || { echo "no PostgreSQL at $PGHOST:$PGPORT" >&2; exit 2; }
fi
psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
pg_wait() { # other sessions may restart the shared PostgreSQL server: wait up to 2 minutes for it
  local i
  for i in $(seq 120); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && psql_admin -c 'SELECT 1' > /dev/null 2>&1 && return 0; sleep 1; done
  echo "PostgreSQL did not come back within 2 minutes" >&2; return 1
}
pg_started() { psql_admin -c 'SELECT pg_postmaster_start_time()' 2> /dev/null || echo down; }

work=$(mktemp -d /tmp/zbca-feed.XXXXXX)
pids=()      # process groups started here (servers)
nodes=()     # node names, in order
dbs=()       # databases created here
worktrees=()
stop_group() {
  kill -TERM -- "-$1" 2> /dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2> /dev/null || true
}
cleanup() {
  local p d
  for p in "${pids[@]}"; do stop_group "$p"; done
  for p in $(jobs -p); do kill "$p" 2> /dev/null || true; done
  for d in "${dbs[@]}"; do
    for _ in $(seq 15); do psql_admin -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" 2> /dev/null && break; sleep 2; done
  done
  for d in "${worktrees[@]}"; do git -C "$repo" worktree remove --force "$d" 2> /dev/null || true; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '\n== %s\n' "$*"; }

# --- trees and builds ---------------------------------------------------------
# Each binary and its tools are built from a worktree of its revision (made
# here, removed on exit), so that uncommitted edits in this tree stay out.
declare -A tree rev
rev[new]=$(git -C "$repo" rev-parse --verify "${NEW_REV:-HEAD}^{commit}")
rev[base]=$(git -C "$repo" rev-parse --verify "$BASE_REV^{commit}")
for b in $BINS; do
  t=$(eval echo "\${${b^^}_TREE:-}")
  if [[ -n $t ]]; then
    tree[$b]=$(cd "$t" && pwd); rev[$b]=$(git -C "${tree[$b]}" rev-parse HEAD)
  else
    worktrees+=("$work/$b-src")
    git -C "$repo" worktree add --detach "$work/$b-src" "${rev[$b]}" > /dev/null 2>&1
    tree[$b]=$work/$b-src
  fi
done
log "building ($(for b in $BINS; do printf '%s=%s ' "$b" "$(git -C "${tree[$b]}" rev-parse --short HEAD)$([[ -z $(git -C "${tree[$b]}" status --porcelain --untracked-files=no 2> /dev/null) ]] || echo +changes)"; done))"
for b in $BINS; do
  mkdir -p "$work/$b"
  (cd "${tree[$b]}" && go build -o "$work/$b/zbca" ./cmd/zbca &&
    for t in fill verifyload; do go build -o "$work/$b/$t" "./scripts/bench/$t"; done)
done
go build -o "$work/feedwrite" ./scripts/bench/feedwrite

# --- CPU accounting -------------------------------------------------------------
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
pgp=()
pg_backends() { # PostgreSQL backends of the databases made here
  local re
  re=$(IFS='|'; echo "${dbs[*]:-none_here}")
  pgp=($(pgrep -f "^postgres: (.*: )?[^ ]+ ($re) " || true))
}
srvp=()      # pids of the servers
jiffies() { # machine busy, our servers, our PostgreSQL backends, ns
  local a z=0 g=0
  a=($(head -1 /proc/stat))
  (( ${#srvp[@]} == 0 )) || z=$(for p in "${srvp[@]}"; do cat "/proc/$p/stat" 2> /dev/null; done | awk '{ s += $14 + $15 } END { print s + 0 }')
  (( ${#pgp[@]} == 0 )) || g=$(for p in "${pgp[@]}"; do cat "/proc/$p/stat" 2> /dev/null; done | awk '{ s += $14 + $15 } END { print s + 0 }')
  echo $(( a[1] + a[2] + a[3] + a[6] + a[7] + a[8] )) "$z" "$g" "$(date +%s%N)" "$(( a[6] + a[7] ))" "${a[8]}"
}
busy() { # % of all cores used over one second by processes other than our servers and their backends
  local a b
  a=($(jiffies)); sleep 1; b=($(jiffies))
  echo $(( 100 * (b[0] - a[0] - (b[1] - a[1]) - (b[2] - a[2])) / (ncpu * hz) ))
}
quiet() {
  local t0=$SECONDS b
  pg_backends
  while :; do
    b=$(busy)
    if (( b <= 10 )); then echo "   (other processes used ${b}% of the $ncpu cores before this run)"; qb=$b; return; fi
    if (( SECONDS - t0 >= QUIET_MAX )); then
      echo "   (WARNING: other processes still used ${b}% of the $ncpu cores after ${QUIET_MAX}s: the next number is disturbed)"
      ps -eo pcpu,comm --sort=-pcpu | awk 'NR > 1 && $2 != "ps"' | sed -n 1,3p | sed 's/^/   /'
      qb="$b!"; return
    fi
  done
}
cpu_mark() { pg_backends; mark=($(jiffies)); }
cpu_report() { # $1: CPU seconds of the load generators (wrk + writer); sets ob (others %)
  local now
  now=($(jiffies))
  read -r ob line < <(awk -v b="$(( now[0] - mark[0] ))" -v z="$(( now[1] - mark[1] ))" -v g="$(( now[2] - mark[2] ))" -v l="${1:-0}" \
      -v irq="$(( now[4] - mark[4] ))" -v st="$(( now[5] - mark[5] ))" -v hz="$hz" -v n="$ncpu" -v ns="$(( now[3] - mark[3] ))" '
    BEGIN { t = n * hz * ns / 1e9; o = (b - z - g - l * hz) / t * 100; if (o < 0) o = 0
            printf "%.0f (share of the %d cores: zbca %.0f%%, PostgreSQL %.0f%%, load generators %.0f%%, the rest %.0f%%, of which interrupts (loopback network) %.0f%% and steal %.0f%%)\n",
                   o, n, z / t * 100, g / t * 100, l * hz / t * 100, o, irq / t * 100, st / t * 100 }')
  echo "   $line"
}

# --- nodes ------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A sp ap cfg key srv dir dbof
setup_node() { # $1: bin (new|base), $2: store (sqlite|postgres)
  local b=$1 s=$2 name=$1-$2 d h bin=$work/$1 i
  d=$work/$name; mkdir -p "$d"; chmod 700 "$d"; dir[$name]=$d
  h=$(free_port); sp[$name]=$(free_port); ap[$name]=$(free_port)
  cat > "$d/zbca.yaml" << EOF
data_dir: $d/data
public_url: http://127.0.0.1:$h
listen: {http: "127.0.0.1:$h", https: "127.0.0.1:${sp[$name]}", admin: "127.0.0.1:${ap[$name]}"}
log: {level: warn}
enroll:
  rate: {per_ip_per_second: 10000, burst: 100000}
  acme_rate: {per_ip_per_second: 100000, burst: 1000000}
EOF
  if [[ $s == postgres ]]; then
    pg_wait
    dbof[$name]=${DB}_$b
    psql_admin -c "DROP DATABASE IF EXISTS ${dbof[$name]} WITH (FORCE)" -c "CREATE DATABASE ${dbof[$name]}"
    dbs+=("${dbof[$name]}")
    printf 'postgres://%s@%s:%s/%s\n' "$PGUSER" "$PGHOST" "$PGPORT" "${dbof[$name]}" > "$d/dsn"
    chmod 600 "$d/dsn"
    echo "store: {driver: postgres, dsn_file: $d/dsn}" >> "$d/zbca.yaml"
  fi
  chmod 600 "$d/zbca.yaml"
  cfg[$name]=$d/zbca.yaml
  log "node $name: init, fill $N certificates, API key, $SEEN request bodies"
  "$bin/zbca" --config "${cfg[$name]}" init > /dev/null
  "$bin/fill" -data "$d/data" -config "${cfg[$name]}" -n "$N" -revoked 0 2>&1 | tail -1
  key[$name]=$("$bin/zbca" --config "${cfg[$name]}" apikey add bench 2> /dev/null)
  "$bin/verifyload" prepare -data "$d/data" -config "${cfg[$name]}" -n "$SEEN" -out "$d/seen.txt" > /dev/null
  { echo "username,name,enterprise_id,password"
    for i in $(seq 0 7); do printf 'w%02d,Writer %d Ltd,,bench-password-123\n' "$i" "$i"; done; } > "$d/writers.csv"
  "$bin/zbca" --config "${cfg[$name]}" enterprise import --quiet "$d/writers.csv" > /dev/null
  setsid "$bin/zbca" --config "${cfg[$name]}" serve > "$d/serve.log" 2>&1 &
  srv[$name]=$!; pids+=("$!"); srvp+=("$!")
  for i in $(seq 600); do
    curl -sf "http://127.0.0.1:${ap[$name]}/readyz" > /dev/null && break
    kill -0 "${srv[$name]}" 2> /dev/null || { echo "node $name exited:" >&2; tail -20 "$d/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:${ap[$name]}/readyz" > /dev/null || { echo "node $name not ready after 60 s" >&2; exit 1; }
  "$bin/verifyload" once -url "https://127.0.0.1:${sp[$name]}" -key "${key[$name]}" -root "$d/data/ca/root.crt" -bodies "$d/seen.txt" -c 16 |
    sed 's/^/   warm-up (each already-seen certificate once): /'
  nodes+=("$name")
}
for b in $BINS; do for s in $STORES; do setup_node "$b" "$s"; done; done

used_nonces() { # $1: node
  if [[ -n ${dbof[$1]:-} ]]; then
    psql -X -At -d "${dbof[$1]}" -c 'SELECT count(*) FROM acme_used_nonces'
  else
    sqlite3 -cmd '.timeout 5000' "${dir[$1]}/data/zbca.db" 'SELECT count(*) FROM acme_used_nonces'
  fi
}
logins_ok() { curl -s "http://127.0.0.1:${ap[$1]}/metrics" | awk '/^zbca_logins_total\{.*outcome="ok"/ { s += $NF } END { print s + 0 }'; }
wrk_parse() { # FILE → "rate p50_ms p99_ms errors"
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { r = $2 } /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { e += $NF } /Socket errors/ { for (i = 3; i <= NF; i++) e += $i + 0 }
    END { printf "%.0f %.2f %.2f %d\n", r, p50, p99, e }' "$1"
}

declare -A res
measure() { # $1: node, $2: alone|writes, $3: round
  local n=$1 mode=$2 r=$3 d=${dir[$1]} w=() n0 n1 l0 l1 secs out gcpu wline="" wpid=
  [[ $mode != writesonly ]] || { printf -- '\n-- %s: feedwrite -nonces %s -logins %s alone for %ss (what the writes cost)\n' "$n" "$NONCES" "$LOGINS" "$DUR"; }
  [[ $mode == writesonly ]] || printf -- '\n-- %s, %s, round %s: wrk -t2 -c%s -d%ss --latency -s lua/verify.lua%s\n' "$n" "$mode" "$r" "$CONNS" "$DUR" \
    "$([[ $mode != alone ]] && echo " beside feedwrite -nonces $NONCES -logins $LOGINS" || true)"
  [[ -z ${dbof[$n]:-} ]] || pg_wait
  quiet
  local q=$qb pgm
  pgm=$(pg_started)
  rm -f "$d/writer.out" "$d/writer.err" "$d/writer.time"
  if [[ $mode != alone ]]; then
    /usr/bin/time -f '%U %S' -o "$d/writer.time" "$work/feedwrite" -url "https://127.0.0.1:${sp[$n]}" -root "$d/data/ca/root.crt" \
      -user 'w%02d' -accounts 8 -nonces "$NONCES" -logins "$LOGINS" -d "$((DUR + 4))s" > "$d/writer.out" 2> "$d/writer.err" &
    wpid=$!
    for _ in $(seq 300); do grep -q 'set up' "$d/writer.err" 2> /dev/null && break; kill -0 "$wpid" 2> /dev/null || break; sleep 0.1; done
    grep -q 'set up' "$d/writer.err" || { echo "   feedwrite failed:"; sed 's/^/   /' "$d/writer.err"; }
    sleep 1.5
  fi
  n0=$(used_nonces "$n"); l0=$(logins_ok "$n"); secs=$(date +%s%N)
  cpu_mark
  if [[ $mode == writesonly ]]; then
    local wp w0 w1; wp=$(pgrep -P "$wpid" feedwrite || true)
    w0=$(awk '{ print $14 + $15 }' "/proc/$wp/stat" 2> /dev/null || echo 0)
    sleep "$DUR"
    w1=$(awk '{ print $14 + $15 }' "/proc/$wp/stat" 2> /dev/null || echo 0)
    cpu_report "$(awk -v a="$w0" -v b="$w1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    n1=$(used_nonces "$n"); l1=$(logins_ok "$n"); secs=$(( $(date +%s%N) - secs ))
    wait "$wpid" || true
    printf '   the writes alone: %s nonces + %s logins = %s writes/s\n' "$(( n1 - n0 ))" "$(( l1 - l0 ))" \
      "$(awk -v a="$(( n1 - n0 ))" -v l="$(( l1 - l0 ))" -v ns="$secs" 'BEGIN { printf "%.0f", (a + 2 * l) / (ns / 1e9) }')"
    res[$n,writesonly]="$line"
    return
  fi
  VERIFY_KEY=${key[$n]} VERIFY_BODIES=$d/seen.txt /usr/bin/time -f '%U %S' -o "$d/wrk.time" \
    wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s "$repo/scripts/bench/lua/verify.lua" "https://127.0.0.1:${sp[$n]}" > "$d/wrk.out" 2>&1 || true
  # The writer's CPU during the window is estimated from its whole run (set-up aside, it writes at a fixed rate).
  gcpu=$(awk '{ print $1 + $2 }' "$d/wrk.time")
  if [[ -n $wpid && -r /proc/$wpid/stat ]]; then
    local wp; wp=$(pgrep -P "$wpid" feedwrite || true)
    [[ -z $wp ]] || gcpu=$(awk -v g="$gcpu" -v hz="$hz" '{ printf "%.2f", g + ($14 + $15) / hz }' "/proc/$wp/stat" 2> /dev/null || echo "$gcpu")
  fi
  cpu_report "$gcpu"
  if [[ -n ${dbof[$n]:-} && $(pg_started) != "$pgm" ]]; then
    echo "   (WARNING: PostgreSQL was restarted by another session during this run: the number is disturbed)"; q="$q,pg-restart"
  fi
  n1=$(used_nonces "$n"); l1=$(logins_ok "$n"); secs=$(( $(date +%s%N) - secs ))
  [[ -z $wpid ]] || { wait "$wpid" || true; wline=$(cat "$d/writer.out"); }
  out=($(wrk_parse "$d/wrk.out"))
  local writes
  writes=$(awk -v a="$(( n1 - n0 ))" -v l="$(( l1 - l0 ))" -v ns="$secs" 'BEGIN { printf "%.0f", (a + 2 * l) / (ns / 1e9) }')
  printf '   %s/s, p50 %s ms, p99 %s ms, errors %s; writes committed meanwhile: %s nonces + %s logins = %s writes/s\n' \
    "${out[0]}" "${out[1]}" "${out[2]}" "${out[3]}" "$(( n1 - n0 ))" "$(( l1 - l0 ))" "$writes"
  [[ -z $wline ]] || echo "   feedwrite: $wline"
  grep -v '^feedwrite: set up' "$d/writer.err" 2> /dev/null | sed 's/^/   /' || true
  res[$n,$mode]+="${out[0]}:${out[2]}:$writes:$q:$ob "
}
log "measurements: $ROUNDS rounds over ${nodes[*]}"
for r in $(seq "$ROUNDS"); do
  for n in "${nodes[@]}"; do
    (( r > 1 )) || measure "$n" writesonly 1
    if (( r % 2 )); then measure "$n" alone "$r"; measure "$n" writes "$r"; else measure "$n" writes "$r"; measure "$n" alone "$r"; fi
  done
done

log "server logs"
for n in "${nodes[@]}"; do
  echo "$n: $(grep -c 'level=WARN' "${dir[$n]}/serve.log" || true) warnings, $(grep -c 'level=ERROR' "${dir[$n]}/serve.log" || true) errors; $(curl -s "http://127.0.0.1:${ap[$n]}/metrics" | grep -E '^zbca_status_(feed_trusted|syncs_total)' | tr '\n' ' ')"
done

# --- summary ----------------------------------------------------------------------
mean() { tr ' ' '\n' | awk -F: 'NF { s += $1; n++ } END { if (n) printf "%.0f", s / n; else print 0 }'; }
runs() { tr ' ' '\n' | awk -F: 'NF { printf "%s%s/s p99 %s ms (%s w/s; busy %s%%/%s%%)", sep, $1, $2, $3, $4, $5; sep = "; " }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
log "summary: N=$N, SEEN=$SEEN, wrk -t2 -c$CONNS -d${DUR}s, writer -nonces $NONCES -logins $LOGINS; $ncpu cores shared by everything"
echo "(each run: verifications/s, p99, the writes/s counted, other processes' share before / during the run)"
echo "| node | alone | with writes | mean alone | mean with writes | with/alone (target ≥ 0.8) |"
echo "|---|---|---|---|---|---|"
declare -A m
for n in "${nodes[@]}"; do
  m[$n]=$(echo "${res[$n,alone]}" | mean)
  mw=$(echo "${res[$n,writes]}" | mean)
  echo "| $n | $(echo "${res[$n,alone]}" | runs) | $(echo "${res[$n,writes]}" | runs) | ${m[$n]} | $mw | $(ratio "$mw" "${m[$n]}") |"
done
echo "the writes alone (no verification load), CPU:"
for n in "${nodes[@]}"; do echo "  $n: ${res[$n,writesonly]:-}"; done
for b in $BINS; do
  [[ -n ${m[$b-postgres]:-} && -n ${m[$b-sqlite]:-} ]] && echo "$b: PostgreSQL / SQLite, alone = $(ratio "${m[$b-postgres]}" "${m[$b-sqlite]}") (target ≥ 0.8)"
done
[[ -n ${m[new-postgres]:-} && -n ${m[base-postgres]:-} ]] && echo "PostgreSQL: new / base, alone = $(ratio "${m[new-postgres]}" "${m[base-postgres]}")"
exit 0
