#!/usr/bin/env bash
# Measures `zbca enterprise import` of ROWS (default 1,000,000) pre-hashed
# rows into a fresh SQLite data directory, then a re-run of the same file
# (every row already present). Target (issue 2): under 2 minutes.
#
#   scripts/bench/import.sh [ROWS]
set -euo pipefail
rows=${1:-1000000}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/zbca" ./cmd/zbca
# One real bcrypt hash (cost 10) for every row: the import checks the
# format, it does not verify passwords.
hash='$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy'
awk -v n="$rows" -v h="$hash" 'BEGIN {
  print "username,name,enterprise_id,password_hash";
  for (i = 0; i < n; i++) printf "ent%07d,Enterprise %d Ltd,,%s\n", i, i, h }' > "$work/accounts.csv"
echo "rows: $rows, file: $(du -h "$work/accounts.csv" | cut -f1)"
"$work/zbca" --data "$work/data" init > /dev/null
for run in first re-run; do
  start=$(date +%s.%N)
  "$work/zbca" --data "$work/data" enterprise import --quiet "$work/accounts.csv"
  end=$(date +%s.%N)
  printf '%s import: %.1f s\n' "$run" "$(echo "$end - $start" | bc)"
done
/usr/bin/time -f 'peak RSS of a re-run: %M KiB' "$work/zbca" --data "$work/data" enterprise import --quiet "$work/accounts.csv" > /dev/null
"$work/zbca" --data "$work/data" audit verify
