#!/usr/bin/env bash
# The whole test suite: vet and race-enabled tests of every module in this
# repository (every directory with a go.mod), then, without the race
# detector, the tests that count allocations. Tests that need Redis start
# their own redis-server on free loopback ports; without the binary they
# skip (TIERCACHE_REQUIRE_REDIS=1 makes them fail instead). go-redis's own
# log lines are hidden; TIERCACHE_REDIS_LOG=1 shows them.
#
# Every module runs, even after one fails; the end is a table (module,
# result, seconds) and a last line "modules: N passed, M failed". The exit
# status is 1 when any module failed. Arguments are passed to go test
# (for example ./test.sh -run TestFetch). A package may take up to 30
# minutes: the tiered package takes about 15 on a 2-core machine whose
# cores are both busy with something else.
set -uo pipefail
cd "$(dirname "$0")"
mods=$(find . -name go.mod -not -path './.git/*' -printf '%h\n' | sort)
echo "Testing every module with -race. Each package prints one line when it ends;"
echo "the tiered package takes a couple of minutes (longer on a busy machine)."
results=()
passed=0
failed=0
for m in $mods; do
  echo
  echo "== $m: go vet, then go test"
  start=$(date +%s)
  ok=1
  (cd "$m" && go vet ./...) || ok=0
  (cd "$m" && go test -race -count=1 -timeout 30m "$@" ./...) || ok=0
  if [ $# -eq 0 ]; then
    # Allocation counts only mean something without the race detector,
    # which allocates on its own: those tests skip under -race.
    (cd "$m" && go test -count=1 -run 'Allocat' ./...) || ok=0
  fi
  secs=$(( $(date +%s) - start ))
  if [ "$ok" = 1 ]; then
    results+=("$(printf '%-14s %-5s %6ss' "$m" PASS "$secs")")
    passed=$((passed + 1))
  else
    results+=("$(printf '%-14s %-5s %6ss' "$m" FAIL "$secs")")
    failed=$((failed + 1))
  fi
done
echo
printf '%-14s %-5s %7s\n' module result time
printf '%s\n' "${results[@]}"
echo "modules: $passed passed, $failed failed"
[ "$failed" = 0 ]
