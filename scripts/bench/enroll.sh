#!/usr/bin/env bash
# Enrollment benchmarks (issue 4), against a zbca serve on loopback:
#  - successful password logins per second (argon2id, 19 MiB, t=2) and the
#    server's peak memory with 200 concurrent logins;
#  - complete ACME issuances per second over HTTPS with 32 clients.
# The per-address login limit is raised (all clients share 127.0.0.1);
# everything else is the default, the issuance policy included. Each run is bounded (-d).
#
#   scripts/bench/enroll.sh [seconds]
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
cleanup() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/zbca" ./cmd/zbca
go build -o "$work/enrollload" ./scripts/bench/enrollload
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port); admin=$(port)
cat > "$work/zbca.yaml" <<YAML
data_dir: $work/data
public_url: http://127.0.0.1:$http
listen: {http: "127.0.0.1:$http", https: "127.0.0.1:$https", admin: "127.0.0.1:$admin"}
log: {level: warn}
enroll:
  rate: {per_ip_per_second: 10000, burst: 100000}
  acme_rate: {per_ip_per_second: 100000, burst: 1000000}
YAML
export ZBCA_CONFIG="$work/zbca.yaml"
"$work/zbca" init > /dev/null
{ echo "username,name,enterprise_id,password"
  for i in $(seq 0 1279); do printf 'bench%04d,Bench %d Ltd,,bench-password-123\n' "$i" "$i"; done; } > "$work/accounts.csv"
"$work/zbca" enterprise import --quiet "$work/accounts.csv" > /dev/null
"$work/zbca" serve > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null && break; sleep 0.1; done
cp "$work/data/ca/root.crt" "$work/root.pem"
url="https://localhost:$https"
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MB  ", $1, $2/1024}' "/proc/$pid/status"; echo; }
echo "server memory at start: $(rss)"
"$work/enrollload" -url "$url" -root "$work/root.pem" -mode login -c 200 -d "${secs}s"
echo "server memory after 200 concurrent logins: $(rss)"
# Each of the 32 clients uses 40 enterprises in turn (default policy: at
# most 10 certificates a day each, one active: every issuance supersedes).
"$work/enrollload" -url "$url" -root "$work/root.pem" -mode acme -c 32 -enterprises 40 -d "${secs}s"
echo "server memory after ACME load: $(rss)"
"$work/zbca" audit verify
