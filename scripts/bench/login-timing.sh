#!/usr/bin/env bash
# Username enumeration by timing (issue 15, point 6), against a real
# `zbca serve` on loopback with the default argon2id parameters (19 MiB,
# t=2): a wrong password, N times each (default 50), for an unknown
# username, an argon2id account and an account imported with a bcrypt
# hash (cost 10), through POST /api/v1/eab. Prints median, min and max per
# kind. The lockout threshold and the per-address rate are raised so that
# every try reaches the password check; everything else is the default.
#
#   scripts/bench/login-timing.sh [N] [REV]
#
# REV (a git revision, e.g. HEAD~5) builds zbca from that revision instead
# of the work tree, for a before/after comparison.
set -euo pipefail
n=${1:-50}
rev=${2:-}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
cleanup() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if [[ -n "$rev" ]]; then
  mkdir "$work/src"
  git archive "$rev" | tar -x -C "$work/src"
  (cd "$work/src" && go build -o "$work/zbca" ./cmd/zbca)
  echo "zbca built from $(git rev-parse --short "$rev")"
else
  go build -o "$work/zbca" ./cmd/zbca
  echo "zbca built from the work tree ($(git rev-parse --short HEAD)$(git diff --quiet -- . || echo ', modified'))"
fi
go build -o "$work/logintiming" ./scripts/bench/logintiming
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port); admin=$(port)
cat > "$work/zbca.yaml" <<YAML
data_dir: $work/data
public_url: http://127.0.0.1:$http
listen: {http: "127.0.0.1:$http", https: "127.0.0.1:$https", admin: "127.0.0.1:$admin"}
log: {level: warn}
enroll:
  rate: {per_ip_per_second: 10000, burst: 100000}
  lockout: {threshold: 100}
YAML
export ZBCA_CONFIG="$work/zbca.yaml"
"$work/zbca" init > /dev/null
printf 'username,name,enterprise_id,password\nargon-acct,Argon Ltd,,argon-password-123\n' > "$work/plain.csv"
# A real bcrypt hash, cost 10; the password does not matter, every try is wrong.
printf 'username,name,enterprise_id,password_hash\nbcrypt-acct,Bcrypt Ltd,,%s\n' \
  '$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy' > "$work/hashed.csv"
"$work/zbca" enterprise import --quiet "$work/plain.csv" > /dev/null
"$work/zbca" enterprise import --quiet "$work/hashed.csv" > /dev/null
"$work/zbca" serve > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null && break; sleep 0.1; done
cp "$work/data/ca/root.crt" "$work/root.pem"
"$work/logintiming" -url "https://localhost:$https" -root "$work/root.pem" -n "$n"
