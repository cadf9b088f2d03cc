#!/usr/bin/env bash
# Builds the image `portreap:${TAG:-latest}` from docker/Dockerfile: a static-pie binary
# (glibc, crt-static; portreap needs no NSS) on scratch. Offline: nothing is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${TAG:-latest}
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release --target "$target" --target-dir target/static >&2
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "target/static/$target/release/portreap" "$context/portreap"
docker build -q -f docker/Dockerfile -t "portreap:$tag" "$context" >&2
echo "portreap:$tag"
