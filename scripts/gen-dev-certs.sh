#!/usr/bin/env bash
# Regenerates certs-dev/, the public development trust domain dev.sigil.test,
# with `sigil init`. Its keys are committed on purpose: never use them in
# production. Its issuing CA lives as long as its root (10 years), so that
# `sigil serve --dev` keeps working. Run from anywhere: scripts/gen-dev-certs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet -- init --trust-domain dev.sigil.test --issuing-ttl 3650d --data-dir "$tmp/data" >"$tmp/fingerprint"
mkdir -p certs-dev/ca
cp "$tmp"/data/ca/root.pem "$tmp"/data/ca/root.key \
   "$tmp"/data/ca/issuing.pem "$tmp"/data/ca/issuing.key certs-dev/ca/
cp "$tmp"/data/bundle.pem certs-dev/bundle.pem
cp "$tmp/fingerprint" certs-dev/FINGERPRINT
echo "certs-dev/ regenerated; root $(cat certs-dev/FINGERPRINT)"
echo "rebuild sigil so that it embeds (and refuses outside --dev) the new dev CA"
