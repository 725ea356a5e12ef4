#!/usr/bin/env bash
# The whole test suite: vet and race-enabled tests of every module in this
# repository. Tests that need Redis start their own redis-server on free
# loopback ports; without the binary they skip (TIERCACHE_REQUIRE_REDIS=1
# makes them fail instead).
set -euo pipefail
cd "$(dirname "$0")"
mods=$(find . -name go.mod -not -path './.git/*' -printf '%h\n' | sort)
for m in $mods; do
  echo "== $m"
  (cd "$m" && go vet ./... && go test -race -count=1 -timeout 15m ./...)
done
