#!/usr/bin/env bash
# Issue 8: the OCSP, verification and issuance benchmarks of issues 3, 4
# and 6 re-run on PostgreSQL with N enterprises and certificates (default
# 1,000,000, 10% revoked), on one node and then on two nodes sharing the
# database. Everything runs on 127.0.0.1; every load run is bounded in time
# and connections; every process started here is stopped on exit (each in
# its own process group).
#
#   scripts/bench/pg.sh                      # fill, measure, drop everything
#   KEEP=1 scripts/bench/pg.sh               # … and keep the work directory and the database
#   REUSE=1 KEEP=1 scripts/bench/pg.sh       # measure again on the kept ones (no fill)
#
# What it does:
#  1. creates the PostgreSQL database DB (default zbca_bench) on the local
#     server (127.0.0.1:5432, user postgres, trust authentication);
#  2. fills it with N enterprises and one client certificate each, 10%
#     revoked, timed (/usr/bin/time: seconds and peak RSS). FILL=migrate
#     (the default): scripts/bench/fill into a SQLite data directory, then
#     `zbca store migrate --to postgres` (both timed: the move of a
#     SQLite deployment measured at this size). FILL=direct: fill -config
#     straight into PostgreSQL;
#  3. node 1 alone: start to serving (readyz + an OCSP answer), the first
#     signing pass, RSS; OCSP GET closed loop (wrk, lua/get.lua, CONNS
#     connections, DUR seconds); the verification API on SEEN
#     already-seen certificates (wrk, lua/verify.lua, an API key from
#     `zbca apikey add`); as scripts/bench/enroll.sh, password logins
#     (enrollload -mode login, LOGIN_C clients) and complete ACME
#     issuances over HTTPS (enrollload -mode acme, ENROLL_C clients ×
#     ENROLL_ENTS fresh enterprises, default issuance policy; the accounts
#     are set up untimed before the timed run);
#  4. node 2 added: a second `zbca serve` with its own data directory (the
#     CA material and secrets copied from node 1's), its own ports and
#     node_name, the same database; a revocation through node 1's admin API
#     timed until node 2's OCSP answers "revoked"; then the same four
#     loads spread over both nodes (one load generator per node, half of
#     the connections or clients each; the rates summed);
#  5. `zbca audit verify` on the shared database, and a summary table.
#
# The two nodes, PostgreSQL and the load generators all share this
# machine's cores (2 here): the second node adds no CPU, so the 2-node
# numbers show that the nodes work side by side on one database, not a
# scale-out. Before each measurement the script waits (up to QUIET_MAX
# seconds) until other processes use at most 10% of the cores, and after
# it says how the cores were shared.
#
# Environment: N (default 1000000), DUR (seconds per load run, default 20),
# CONNS (wrk connections, default 64), SEEN (already-seen certificates,
# default 1000), LOGIN_C (login clients, default 32), ENROLL_C (ACME
# clients, default 32), ENROLL_ENTS (enterprises per ACME client, default
# 40; each gets at most 10 certificates a day), DB (default zbca_bench),
# PGHOST/PGPORT/PGUSER (default 127.0.0.1/5432/postgres), FILL
# (migrate|direct), WORK (work directory; default /tmp/zbca-pg-bench with
# KEEP=1 or REUSE=1, else a fresh temporary one), KEEP=1, REUSE=1,
# QUIET_MAX (default 120), AUDIT=0 skips `zbca audit verify`.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
N=${N:-1000000}
DUR=${DUR:-20}
CONNS=${CONNS:-64}
SEEN=${SEEN:-1000}
ENROLL_C=${ENROLL_C:-32}
LOGIN_C=${LOGIN_C:-32}
ENROLL_ENTS=${ENROLL_ENTS:-40}
DB=${DB:-zbca_bench}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
FILL=${FILL:-migrate}
KEEP=${KEEP:-0}
REUSE=${REUSE:-0}
QUIET_MAX=${QUIET_MAX:-120}
AUDIT=${AUDIT:-1}
export PGHOST PGPORT PGUSER

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "DB must be a plain lower-case name" >&2; exit 2; }
[[ $PGHOST == 127.0.0.1 || $PGHOST == localhost ]] || { echo "PGHOST must be 127.0.0.1 (loopback only)" >&2; exit 2; }
[[ $FILL == migrate || $FILL == direct ]] || { echo "FILL is migrate or direct" >&2; exit 2; }
(( CONNS >= 2 && CONNS % 2 == 0 && ENROLL_C >= 2 && ENROLL_C % 2 == 0 && LOGIN_C >= 2 && LOGIN_C % 2 == 0 )) ||
  { echo "CONNS, ENROLL_C and LOGIN_C must be even" >&2; exit 2; }
command -v wrk > /dev/null || { apt-get install -y -qq wrk > /dev/null || { apt-get update -qq && apt-get install -y -qq wrk > /dev/null; }; }
command -v psql > /dev/null || { echo "psql is needed (postgresql-client)" >&2; exit 2; }
pg_isready -q -h "$PGHOST" -p "$PGPORT" || { echo "no PostgreSQL at $PGHOST:$PGPORT" >&2; exit 2; }
psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
psql_db() { retry psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
retry() { # a command that may meet a PostgreSQL restarted by another session: up to a minute
  local i
  for i in $(seq 30); do
    "$@" && return 0
    (( i < 30 )) || return 1
    echo "(retrying in 2 s: $1 failed)" >&2
    sleep 2
  done
}

marker=.zbca-pg-bench
if [[ $KEEP == 1 || $REUSE == 1 ]]; then
  work=${WORK:-/tmp/zbca-pg-bench}
else
  work=${WORK:-$(mktemp -d /tmp/zbca-pg.XXXXXX)}
fi
if [[ $REUSE == 1 ]]; then
  [[ -f $work/$marker && -f $work/filled ]] || { echo "REUSE=1: $work holds no finished fill (run KEEP=1 $0 first)" >&2; exit 2; }
  [[ $(psql_admin -At -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") == 1 ]] || { echo "REUSE=1: no database $DB" >&2; exit 2; }
else
  if [[ -e $work && -n $(ls -A "$work") ]]; then
    [[ -f $work/$marker ]] || { echo "$work is not empty and not ours: refusing to reuse it" >&2; exit 2; }
    rm -rf "$work"
  fi
  mkdir -p "$work"
  touch "$work/$marker"
fi
work=$(cd "$work" && pwd)

pids=()   # process group leaders started here
nodes=()  # server pids (node 1, node 2) while they run
stop_group() { # $1: a process group leader started here; TERM, then KILL after 5 s
  local i
  kill -TERM -- "-$1" 2> /dev/null || true
  for i in $(seq 50); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2> /dev/null || true
}
created_db=0
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_group "$p"; done
  for p in $(jobs -p); do kill "$p" 2> /dev/null || true; done # load generators, readiness waiters
  if [[ $KEEP == 1 ]]; then
    if [[ -f $work/filled ]]; then
      printf '\nkept %s and the database %s; measure again without filling:\n  REUSE=1 KEEP=1 %s\n' \
        "$work" "$DB" "$(printf '%q ' ${WORK:+WORK=$work} N=$N DUR=$DUR)scripts/bench/pg.sh"
    else
      printf '\nkept %s and the database %s (the fill did not finish: REUSE=1 will refuse them)\n' "$work" "$DB"
    fi
  else
    if [[ $created_db == 1 || $REUSE == 1 ]]; then
      # Retried for a minute: other sessions may be restarting the server.
      for p in $(seq 30); do
        psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2> /dev/null && break
        (( p < 30 )) || echo "could not drop the database $DB: drop it with psql -h $PGHOST -U $PGUSER -d postgres -c 'DROP DATABASE $DB'" >&2
        sleep 2
      done
    fi
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '\n== %s\n' "$*"; }

# --- CPU accounting -------------------------------------------------------
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
# jiffies: busy jiffies of the machine, of the zbca nodes, of PostgreSQL's
# backends connected to $DB, and the time in ns.
# The backends are looked up (pg_backends) outside the sampled intervals,
# so that the look-up's own CPU does not count as "others".
pgp=()
pg_backends() { pgp=($(pgrep -f "^postgres: (.*: )?[^ ]+ $DB " || true)); }
jiffies() {
  local a z=0 g=0 p
  a=($(head -1 /proc/stat))
  for p in "${nodes[@]}"; do
    [[ -r /proc/$p/stat ]] && z=$(( z + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2> /dev/null || echo 0) ))
  done
  if (( ${#pgp[@]} )); then
    g=$(for p in "${pgp[@]}"; do cat "/proc/$p/stat" 2> /dev/null; done | awk '{ s += $14 + $15 } END { print s + 0 }')
  fi
  echo $(( a[1] + a[2] + a[3] + a[6] + a[7] + a[8] )) "$z" "$g" "$(date +%s%N)"
}
busy() { # percent of all cores used by processes other than ours over one second
  local a b
  a=($(jiffies)); sleep 1; b=($(jiffies))
  echo $(( 100 * (b[0] - a[0] - (b[1] - a[1]) - (b[2] - a[2])) / (ncpu * hz) ))
}
quiet() {
  local t0=$SECONDS b
  pg_backends
  while :; do
    b=$(busy)
    if (( b <= 10 )); then echo "(other processes used ${b}% of the $ncpu cores before this run)"; return; fi
    if (( SECONDS - t0 >= QUIET_MAX )); then
      echo "(WARNING: other processes still used ${b}% of the $ncpu cores after ${QUIET_MAX}s: the next number is disturbed)"
      ps -eo pcpu,comm --sort=-pcpu | awk 'NR > 1 && $2 != "ps"' | sed -n 1,3p
      return
    fi
  done
}
# Other sessions may restart the shared PostgreSQL server: say so when it
# happened during a measurement.
pg_started() { psql_admin -At -c 'SELECT pg_postmaster_start_time()' 2> /dev/null || echo down; }
cpu_mark() { pg_mark=$(pg_started); pg_backends; mark=($(jiffies)); }
cpu_report() { # $1: CPU seconds of the load generators
  local now
  now=($(jiffies))
  # Backends that appeared meanwhile: all their CPU time is in the run.
  local before=" ${pgp[*]} " p extra=0
  pg_backends
  for p in "${pgp[@]}"; do
    [[ $before == *" $p "* ]] || extra=$(( extra + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2> /dev/null || echo 0) ))
  done
  now[2]=$(( now[2] + extra ))
  awk -v b="$(( now[0] - mark[0] ))" -v z="$(( now[1] - mark[1] ))" -v g="$(( now[2] - mark[2] ))" -v l="${1:-0}" \
      -v hz="$hz" -v n="$ncpu" -v ns="$(( now[3] - mark[3] ))" '
    BEGIN { t = n * hz * ns / 1e9; if (g < 0) g = 0; o = (b - z - g - l * hz) / t * 100; if (o < 0) o = 0
            printf "(share of the %d cores: zbca %.0f%%, PostgreSQL %.0f%%, load generator %.0f%%, others %.0f%%)\n",
                   n, z / t * 100, g / t * 100, l * hz / t * 100, o }'
  if [[ $(pg_started) != "$pg_mark" ]]; then
    echo "(WARNING: the PostgreSQL server was restarted or down during this run, by another session: the next number is disturbed)"
    disturbed=1
  fi
}
gen_cpu() { cat "$@" | awk '{ s += $1 + $2 } END { printf "%.2f", s }'; } # /usr/bin/time -f '%U %S' files

# --- build ------------------------------------------------------------------
log "building"
mkdir -p "$work/bin"
go build -o "$work/bin/zbca" ./cmd/zbca
for t in fill ocspreq ocspload verifyload enrollload; do go build -o "$work/bin/$t" "./scripts/bench/$t"; done
bin=$work/bin
if [[ $FILL == direct && $REUSE != 1 ]]; then
  h1=$("$bin/ocspreq" -h 2>&1 || true); h2=$("$bin/verifyload" prepare -h 2>&1 || true)
  grep -q DSNFile scripts/bench/internal/benchenv/benchenv.go && [[ $h1 == *-config* && $h2 == *-config* ]] ||
    { echo "FILL=direct needs scripts/bench/internal/benchenv to read store.dsn_file and -config in ocspreq and verifyload prepare: use FILL=migrate" >&2; exit 2; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data1=$work/node1
data2=$work/node2
printf 'postgres://%s@%s:%s/%s\n' "$PGUSER" "$PGHOST" "$PGPORT" "$DB" > "$work/dsn"
chmod 600 "$work/dsn"
# public_url is written into the certificates: one fixed address for both
# nodes (in production, the load balancer's), never contacted here.
public_url=http://127.0.0.1:18080
node_config() { # $1: node number, $2: data dir; sets hp$1 sp$1 ap$1
  local h s a
  h=$(free_port); s=$(free_port); a=$(free_port)
  printf -v "hp$1" %s "$h"; printf -v "sp$1" %s "$s"; printf -v "ap$1" %s "$a"
  cat > "$work/node$1.yaml" << EOF
data_dir: $2
node_name: bench-node$1
public_url: $public_url
listen: {http: "127.0.0.1:$h", https: "127.0.0.1:$s", admin: "127.0.0.1:$a"}
log: {level: info}
store: {driver: postgres, dsn_file: $work/dsn}
enroll:
  rate: {per_ip_per_second: 10000, burst: 100000}
EOF
  chmod 600 "$work/node$1.yaml"
}
node_config 1 "$data1"
node_config 2 "$data2"

log "PostgreSQL $(psql_admin -At -c 'SHOW server_version') at $PGHOST:$PGPORT: $(psql_admin -At -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_level')")"

# --- 1, 2: database and fill ------------------------------------------------
fill_line="(reused: filled by an earlier run)"
migrate_line=""
if [[ $REUSE != 1 ]]; then
  log "fresh database $DB"
  psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  created_db=1
  if [[ $FILL == direct ]]; then
    log "zbca init on PostgreSQL, then fill $N enterprises + certificates (10% revoked) straight into it"
    "$bin/zbca" --config "$work/node1.yaml" init > /dev/null
    /usr/bin/time -f '%e s, peak RSS %M KiB' -o "$work/fill.time" "$bin/fill" -data "$data1" -config "$work/node1.yaml" -n "$N" -revoked 0.10
    fill_line="fill into PostgreSQL: $(cat "$work/fill.time")"
    cfgflag=(-config "$work/node1.yaml")
  else
    log "zbca init (SQLite), fill $N enterprises + certificates (10% revoked), then zbca store migrate --to postgres"
    sed -e '/^store:/d' -e '/^node_name:/d' "$work/node1.yaml" > "$work/sqlite.yaml"
    chmod 600 "$work/sqlite.yaml"
    "$bin/zbca" --config "$work/sqlite.yaml" init > /dev/null
    /usr/bin/time -f '%e s, peak RSS %M KiB' -o "$work/fill.time" "$bin/fill" -data "$data1" -config "$work/sqlite.yaml" -n "$N" -revoked 0.10
    fill_line="fill (SQLite): $(cat "$work/fill.time")"
    /usr/bin/time -f '%e s, peak RSS %M KiB' -o "$work/migrate.time" "$bin/zbca" --config "$work/sqlite.yaml" store migrate --to postgres --dsn-file "$work/dsn" |
      grep -v '^ *\(store:\|driver:\|dsn_file:\|Now set\)' || true
    migrate_line="zbca store migrate --to postgres: $(cat "$work/migrate.time")"
    cfgflag=()
  fi
  echo "$fill_line"
  [[ -z $migrate_line ]] || echo "$migrate_line"
  log "request files (OCSP: ocspreq; verification: verifyload prepare)"
  "$bin/ocspreq" -data "$data1" "${cfgflag[@]}" -out "$work/req" -index=false
  "$bin/verifyload" prepare -data "$data1" "${cfgflag[@]}" -n "$SEEN" -out "$work/seen.txt"
  { echo "$fill_line"; [[ -z $migrate_line ]] || echo "$migrate_line"; } > "$work/filled"
else
  fill_line="reused ($(head -1 "$work/filled"))"
  migrate_line=$(sed -n 2p "$work/filled")
  [[ -z $migrate_line ]] || migrate_line="reused ($migrate_line)"
  rm -rf "$data2" "$work/logs"
fi
mkdir -p "$work/logs"
echo "database $DB: $(psql_db -c "SELECT pg_size_pretty(pg_database_size('$DB'))"), $(psql_db -c "SELECT count(*) FROM certificates") certificates, $(psql_db -c "SELECT count(*) FROM enterprises") enterprises"

# --- API key and fresh enterprises for the ACME runs --------------------------
run=$(date +%s)
log "API key and $((3 * ENROLL_C * ENROLL_ENTS)) fresh enterprises for the login and ACME runs (prefix e$run)"
apikey=$(retry "$bin/zbca" --config "$work/node1.yaml" apikey add "bench-$run" 2> /dev/null)
# One plain password hashed by zbca (argon2id, the default parameters), then
# that hash for every account: the import costs no hashing, the logins of
# the set-up cost what a real one does.
{ echo "username,name,enterprise_id,password"; echo "e${run}seed,Seed Ltd,,bench-password-123"; } > "$work/seed.csv"
retry "$bin/zbca" --config "$work/node1.yaml" enterprise import --quiet "$work/seed.csv" > /dev/null
hash=$(psql_db -c "SELECT password_hash FROM enterprises WHERE username = 'e${run}seed'")
{ echo "username,name,enterprise_id,password_hash"
  for set in a b c; do
    for i in $(seq 0 $((ENROLL_C * ENROLL_ENTS - 1))); do printf 'e%s%s%04d,Bench %s %d Ltd,,"%s"\n' "$run" "$set" "$i" "$set" "$i" "$hash"; done
  done; } > "$work/accounts.csv"
retry "$bin/zbca" --config "$work/node1.yaml" enterprise import --quiet "$work/accounts.csv" > /dev/null

# --- servers ----------------------------------------------------------------
start_node() { # $1: node number; prints start to serving and the first signing pass
  local n=$1 t0 i hp ap
  hp=hp$n; ap=ap$n
  t0=$(date +%s%N)
  setsid "$bin/zbca" --config "$work/node$n.yaml" serve > "$work/logs/node$n.log" 2>&1 &
  eval "node$n=$!"
  pids+=("$!")
  nodes+=("$!")
  "$bin/ocspload" ready -url "http://127.0.0.1:${!hp}" -admin "http://127.0.0.1:${!ap}" -probes "$work/req/probe.txt" -since "$t0" -timeout 300s \
    > "$work/logs/ready$n" 2>&1 &
  local waiter=$!
  while kill -0 "$waiter" 2> /dev/null; do
    if ! kill -0 "$(eval echo "\$node$n")" 2> /dev/null; then
      kill "$waiter" 2> /dev/null || true
      echo "node $n exited while starting:" >&2; tail -20 "$work/logs/node$n.log" >&2; exit 1
    fi
    sleep 0.05
  done
  wait "$waiter" || { cat "$work/logs/ready$n"; echo "node $n is not serving:" >&2; tail -20 "$work/logs/node$n.log" >&2; exit 1; }
  cat "$work/logs/ready$n"
  for i in $(seq 3000); do
    grep -q 'msg="signed OCSP responses"' "$work/logs/node$n.log" && break
    kill -0 "$(eval echo "\$node$n")" 2> /dev/null || { echo "node $n died:" >&2; tail -20 "$work/logs/node$n.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q 'msg="signed OCSP responses"' "$work/logs/node$n.log" || echo "(node $n: no first signing pass after 300 s)"
  grep -E 'msg="(OCSP responder loaded|signed OCSP responses|serving)"' "$work/logs/node$n.log" | head -3
  sign[$n]=$(grep -m1 'msg="signed OCSP responses"' "$work/logs/node$n.log" | sed -n 's/.* took=\([^ ]*\).*/\1/p')
  ready[$n]=$(sed -n 's/.*OCSP GET answered after \(.*\)$/\1/p' "$work/logs/ready$n")
}
rss() { # $1: pid; "RSS x MB, peak y MB"
  awk '/VmRSS/ { r = $2 } /VmHWM/ { h = $2 } END { printf "RSS %d MB, peak %d MB", r / 1024, h / 1024 }' "/proc/$1/status"
}
declare -A res sign ready mem

# --- loads ------------------------------------------------------------------
# wrk_parse FILE: "rate p50_ms p99_ms errors" (errors: non-2xx + socket errors)
wrk_parse() {
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { r = $2 } /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { e += $NF } /Socket errors/ { for (i = 3; i <= NF; i++) e += $i + 0 }
    END { printf "%.0f %.2f %.2f %d\n", r, p50, p99, e }' "$1"
}
# wrk_load NAME KEY SCRIPT SCHEME K [ENV…]: wrk against nodes 1..K (SCHEME
# http: the public listener; https: the HTTPS one), with CONNS/K
# connections and 2/K threads each, at once; stores res[KEY,K].
wrk_load() {
  local name=$1 key=$2 script=$3 scheme=$4 k=$5 i port out rate=0 p50s="" p99s="" errs=0
  shift 5
  local c=$(( CONNS / k )) t=$(( k == 1 ? 2 : 1 )) gens=()
  quiet
  printf -- '-- %s on %d node(s): wrk -t%d -c%d -d%ss --latency -s %s per node\n' "$name" "$k" "$t" "$c" "$DUR" "$(basename "$script")"
  cpu_mark
  for i in $(seq "$k"); do
    if [[ $scheme == http ]]; then port=hp$i; else port=sp$i; fi
    env "$@" /usr/bin/time -f '%U %S' -o "$work/logs/$key$k-$i.time" \
      wrk -t"$t" -c"$c" -d"${DUR}s" --latency -s "$script" "$scheme://127.0.0.1:${!port}" > "$work/logs/$key$k-$i.wrk" 2>&1 &
    gens+=($!)
  done
  wait "${gens[@]}" || true
  cpu_report "$(gen_cpu "$work/logs/$key$k"-*.time)"
  for i in $(seq "$k"); do
    out=($(wrk_parse "$work/logs/$key$k-$i.wrk"))
    printf '   node %d: %s/s, p50 %s ms, p99 %s ms, errors %s\n' "$i" "${out[0]}" "${out[1]}" "${out[2]}" "${out[3]}"
    rate=$(( rate + out[0] )); errs=$(( errs + out[3] ))
    p50s+=${p50s:+/}${out[1]}; p99s+=${p99s:+/}${out[2]}
  done
  (( k == 1 )) || echo "   sum: $rate/s"
  res[$key,$k]="$rate $p50s $p99s $errs"
}
# enroll_load MODE K: enrollload -mode MODE (login or acme) on each of
# nodes 1..K at once, with CLIENTS/K clients each (LOGIN_C or ENROLL_C);
# stores res[MODE,K]. Each node's clients use their own fresh enterprises
# (set a with one node; b and c with two). For acme, the accounts (an EAB
# login and a registration per enterprise) are set up first, untimed
# (enrollload -accounts), one node after the other: logins on two nodes at
# once can fail (a deadlock between the nodes' writers, see the password
# login run), and one failed login would stop enrollload's set-up.
enroll_load() {
  local mode=$1 k=$2 i out rate=0 p50s="" p99s="" errs=0 gens=() port c extra acct
  if [[ $mode == acme ]]; then c=$(( ENROLL_C / k )); extra=(-enterprises "$ENROLL_ENTS"); else c=$(( LOGIN_C / k )); extra=(); fi
  setof() { if (( k == 1 )); then echo a; elif [[ $1 == 1 ]]; then echo b; else echo c; fi; }
  if [[ $mode == acme ]]; then
    for i in $(seq "$k"); do
      port=sp$i
      "$bin/enrollload" -url "https://127.0.0.1:${!port}" -root "$data1/ca/root.crt" -mode acme -c "$c" "${extra[@]}" \
        -user "e${run}$(setof "$i")%04d" -accounts "$work/logs/accounts$k-$i.json" -d 1ms > "$work/logs/setup$k-$i.out" 2>&1 ||
        { echo "   node $i: ACME account set-up failed:"; sed 's/^/     /' "$work/logs/setup$k-$i.out"; }
    done
  fi
  quiet
  printf -- '-- %s on %d node(s): enrollload -mode %s -c %d %s-d %ss per node\n' \
    "$([[ $mode == acme ]] && echo 'ACME issuance' || echo 'password logins (POST /api/v1/eab)')" "$k" "$mode" "$c" "${extra[*]}${extra:+ }" "$DUR"
  cpu_mark
  for i in $(seq "$k"); do
    port=sp$i
    acct=(); [[ $mode != acme ]] || acct=(-accounts "$work/logs/accounts$k-$i.json")
    /usr/bin/time -f '%U %S' -o "$work/logs/$mode$k-$i.time" \
      "$bin/enrollload" -url "https://127.0.0.1:${!port}" -root "$data1/ca/root.crt" -mode "$mode" -c "$c" "${extra[@]}" \
      -user "e${run}$(setof "$i")%04d" "${acct[@]}" -d "${DUR}s" > "$work/logs/$mode$k-$i.out" 2>&1 &
    gens+=($!)
  done
  wait "${gens[@]}" || true
  cpu_report "$(gen_cpu "$work/logs/$mode$k"-*.time)"
  for i in $(seq "$k"); do
    grep -v '^mode=\|^.\{20\}read [0-9]* accounts' "$work/logs/$mode$k-$i.out" | sed 's/^/   /' || true
    out=($(awk '/^mode=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      sub("/s", "", v["rate"]); printf "%s %s %s %s\n", v["rate"], v["p50"], v["p99"], v["errors"] }' "$work/logs/$mode$k-$i.out"))
    (( ${#out[@]} == 4 )) || { echo "   node $i: enrollload failed"; out=(0 - - 1); }
    printf '   node %d: %s/s, p50 %s, p99 %s, errors %s\n' "$i" "${out[0]}" "${out[1]}" "${out[2]}" "${out[3]}"
    rate=$(awk -v a="$rate" -v b="${out[0]}" 'BEGIN { printf "%.1f", a + b }'); errs=$(( errs + out[3] ))
    p50s+=${p50s:+/}${out[1]}; p99s+=${p99s:+/}${out[2]}
  done
  (( k == 1 )) || echo "   sum: $rate/s"
  res[$mode,$k]="$rate $p50s $p99s $errs"
}
warm_verify() { # $1: node; each already-seen certificate once (verifyload once), not measured
  local port=sp$1
  "$bin/verifyload" once -url "https://127.0.0.1:${!port}" -key "$apikey" -root "$data1/ca/root.crt" -bodies "$work/seen.txt" -c 16 > /dev/null
}
loads() { # $1: number of nodes
  wrk_load "OCSP GET" ocsp "$repo/scripts/bench/lua/get.lua" http "$1" OCSP_PATHS="$work/req/get.txt"
  wrk_load "verification, $SEEN already-seen certificates" verify "$repo/scripts/bench/lua/verify.lua" https "$1" \
    VERIFY_KEY="$apikey" VERIFY_BODIES="$work/seen.txt"
  enroll_load login "$1"
  enroll_load acme "$1"
}

# --- 3: node 1 alone ----------------------------------------------------------
log "node 1: zbca serve on PostgreSQL"
quiet
start_node 1
mem[1,start]=$(rss "$node1"); echo "node 1 memory after signing: ${mem[1,start]}"
warm_verify 1
log "node 1 alone: OCSP GET, verification, logins, ACME issuance"
loads 1
mem[1,after1]=$(rss "$node1"); echo "node 1 memory after the loads: ${mem[1,after1]}"

# --- 4: node 2 added ---------------------------------------------------------
log "node 2: its own data directory (CA material and secrets copied from node 1), same database"
mkdir -p "$data2"
chmod 700 "$data2"
cp -a "$data1/ca" "$data1/secrets" "$data2/"
quiet
start_node 2
mem[2,start]=$(rss "$node2"); echo "node 2 memory after signing: ${mem[2,start]}"
log "a revocation through node 1's admin API, seen by node 2's OCSP responder"
"$bin/ocspload" revoke -url "http://127.0.0.1:$hp2" -admin "http://127.0.0.1:$ap1" -token "$data1/secrets/admin-token" \
  -probes "$work/req/probe.txt" -n 3 | tee "$work/logs/cross" || echo "(cross-node revocation check failed)"
cross=$(sed -n 's/^revoke → OCSP revoked: \(.*\) over.*/\1/p' "$work/logs/cross")
warm_verify 2
log "two nodes: the same loads, one load generator per node, half the connections each"
loads 2
mem[1,after2]=$(rss "$node1"); mem[2,after2]=$(rss "$node2")
echo "node 1 memory: ${mem[1,after2]}; node 2 memory: ${mem[2,after2]}"
for n in 1 2; do
  echo "node $n log: $(grep -c 'level=WARN' "$work/logs/node$n.log" || true) warnings, $(grep -c 'level=ERROR' "$work/logs/node$n.log" || true) errors"
  grep -E 'level=(WARN|ERROR)' "$work/logs/node$n.log" | sed -E 's/^time=[^ ]+ //; s/ (serial|took|in)=[^ ]+//g' | cut -c1-240 |
    sort | uniq -c | sort -rn | head -8 || true
done
for n in 1 2; do eval "p=\$node$n"; stop_group "$p"; done
nodes=()

audit_line="skipped (AUDIT=0)"
if [[ $AUDIT == 1 ]]; then
  log "zbca audit verify (the chain both nodes wrote to)"
  if /usr/bin/time -f '%e s' -o "$work/audit.time" timeout 900 "$bin/zbca" --config "$work/node1.yaml" audit verify > "$work/logs/audit" 2>&1; then
    audit_line="$(tail -1 "$work/logs/audit") ($(cat "$work/audit.time"))"
  else
    audit_line="FAILED: $(tail -3 "$work/logs/audit" | tr '\n' ' ')"
  fi
  echo "$audit_line"
fi

# --- 5: summary ---------------------------------------------------------------
row() { # $1: label, $2: key, $3: unit suffix of p50/p99
  local a b
  a=(${res[$2,1]:-- - - -}); b=(${res[$2,2]:-- - - -})
  printf '| %s | %s/s, p50 %s%s, p99 %s%s, %s errors | %s/s, p50 %s%s, p99 %s%s, %s errors |\n' "$1" \
    "${a[0]}" "${a[1]}" "$3" "${a[2]}" "$3" "${a[3]}" "${b[0]}" "${b[1]}" "$3" "${b[2]}" "$3" "${b[3]}"
}
log "summary: N=$N, DUR=${DUR}s, PostgreSQL $DB; $ncpu cores shared by the nodes, PostgreSQL and the load generators"
cat << EOF
| | 1 node | 2 nodes (node 1 / node 2; rates summed) |
|---|---|---|
$(row "OCSP GET, wrk $CONNS conns (2 nodes: $((CONNS / 2)) each)" ocsp " ms")
$(row "verify, $SEEN already seen, wrk $CONNS conns" verify " ms")
$(row "password logins, $LOGIN_C clients (2 nodes: $((LOGIN_C / 2)) each)" login "")
$(row "ACME issuances, $ENROLL_C clients (2 nodes: $((ENROLL_C / 2)) each)" acme "")
| start to serving (OCSP answered) | ${ready[1]} (first signing pass ${sign[1]}) | node 2: ${ready[2]} (first signing pass ${sign[2]}) |
| memory after signing | ${mem[1,start]} | node 2: ${mem[2,start]} |
| memory after the loads | ${mem[1,after1]} | ${mem[1,after2]} / ${mem[2,after2]} |
| revocation on node 1 → "revoked" on node 2's OCSP | | ${cross:-failed} |
EOF
echo "$fill_line"
[[ -z $migrate_line ]] || echo "$migrate_line"
echo "audit verify: $audit_line"
(( ${disturbed:-0} == 0 )) || echo "WARNING: PostgreSQL was restarted by another session during at least one measurement (see above)"
echo "(on $ncpu shared cores the second node adds no CPU: two nodes show that they share the database correctly, not a scale-out)"
