#!/usr/bin/env bash
# A/B of ACME issuances per second (the second half of enroll.sh) for two
# zbca binaries, in alternating runs, so that other work on the machine
# weighs on both alike. The set-up (1,280 enterprises, their logins and
# ACME accounts: minutes of argon2id) is made once, by the first binary,
# and each run starts from a copy of it; the second binary may migrate the
# copy further, never the other way round.
#
#   scripts/bench/enroll-ab.sh OLD_ZBCA NEW_ZBCA [rounds] [seconds]
set -euo pipefail
a=$(realpath "$1"); b=$(realpath "$2"); rounds=${3:-3}; secs=${4:-20}
cd "$(dirname "$0")/../.."
base=$(mktemp -d); w=$base/w; snap=$base/snap
stop() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$base"' EXIT
go build -o "$base/enrollload" ./scripts/bench/enrollload
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); https=$(port); admin=$(port)
mkdir -p "$w"
cat > "$w/zbca.yaml" <<YAML
data_dir: $w/data
public_url: http://127.0.0.1:$http
listen: {http: "127.0.0.1:$http", https: "127.0.0.1:$https", admin: "127.0.0.1:$admin"}
log: {level: warn}
enroll:
  rate: {per_ip_per_second: 10000, burst: 100000}
  acme_rate: {per_ip_per_second: 100000, burst: 1000000}
YAML
# A binary from before enroll.acme_rate (issue 15) refuses the key: it
# gets the same file without it (it has no ACME rate limit to raise).
grep -v acme_rate "$w/zbca.yaml" > "$base/zbca-old.yaml"
export ZBCA_CONFIG="$w/zbca.yaml"
config_for() {
	local out
	out=$(ZBCA_CONFIG="$w/zbca.yaml" "$1" ca list 2>&1 || true)
	if [[ $out == *"field acme_rate not found"* ]]; then echo "$base/zbca-old.yaml"; else echo "$w/zbca.yaml"; fi
}
start() {
	ZBCA_CONFIG=$(config_for "$1") "$1" serve > "$w/serve.out" 2> "$w/serve.err" &
	pid=$!
	for _ in $(seq 200); do curl -sf "http://127.0.0.1:$admin/readyz" > /dev/null && return; sleep 0.1; done
	echo "zbca serve did not start" >&2; exit 1
}
load() { "$base/enrollload" -url "https://localhost:$https" -root "$w/data/ca/root.crt" -mode acme -c 32 -enterprises 40 -accounts "$w/accounts.json" "$@"; }
ZBCA_CONFIG=$(config_for "$a") "$a" init > /dev/null
{ echo "username,name,enterprise_id,password"
  for i in $(seq 0 1279); do printf 'bench%04d,Bench %d Ltd,,bench-password-123\n' "$i" "$i"; done; } > "$base/accounts.csv"
ZBCA_CONFIG=$(config_for "$a") "$a" enterprise import --quiet "$base/accounts.csv" > /dev/null
start "$a"
load -d 0s > /dev/null
stop
cp -a "$w" "$snap"
for r in $(seq "$rounds"); do
	for bin in "$a" "$b"; do
		rm -rf "$w"; cp -a "$snap" "$w"
		start "$bin"
		echo "round $r $(basename "$bin"): $(load -d "${secs}s" 2>&1 | grep mode=) load=$(cut -d' ' -f1 /proc/loadavg)"
		stop
		ZBCA_CONFIG=$(config_for "$bin") "$bin" audit verify > /dev/null
	done
done
