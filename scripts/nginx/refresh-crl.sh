#!/usr/bin/env bash
# Refresh the CRL file of an nginx that uses ssl_crl with zbca (see
# zbca-mtls.conf), then reload nginx. Run it from cron more often than
# zbca republishes (crl.interval, 6h by default), e.g. every 15 minutes;
# a revocation reaches this nginx at the next run after zbca's CRL has it
# (within crl.delay, 60 s by default).
#
#   ZBCA_URL=http://ca.example DIR=/etc/nginx/zbca ./refresh-crl.sh
#
# The new file replaces the old one only if both CRLs verify against
# chain.pem, so a failed download never makes nginx refuse everyone.
set -euo pipefail
: "${ZBCA_URL:?set ZBCA_URL to the public_url of zbca}"
DIR="${DIR:-/etc/nginx/zbca}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for name in issuing-1 root; do
  curl -fsS --max-time 30 -o "$tmp/$name.pem" "$ZBCA_URL/crl/$name.pem"
  # Signed by a CA of our chain, and not past its nextUpdate.
  openssl crl -in "$tmp/$name.pem" -CAfile "$DIR/chain.pem" -noout 2>&1 | grep -q 'verify OK' \
    || { echo "refresh-crl: $name CRL does not verify against $DIR/chain.pem" >&2; exit 1; }
  next=$(openssl crl -in "$tmp/$name.pem" -noout -nextupdate | cut -d= -f2)
  if (( $(date -d "$next" +%s) <= $(date +%s) )); then
    echo "refresh-crl: $name CRL expired at $next" >&2; exit 1
  fi
done

cat "$tmp/issuing-1.pem" "$tmp/root.pem" > "$tmp/crl.pem"
if cmp -s "$tmp/crl.pem" "$DIR/crl.pem"; then
  exit 0
fi
install -m 0644 "$tmp/crl.pem" "$DIR/crl.pem.new"
mv -f "$DIR/crl.pem.new" "$DIR/crl.pem"
nginx -t -q && nginx -s reload
