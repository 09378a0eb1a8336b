#!/usr/bin/env bash
# Runs every Lua suite in scripts/dev/tests with the given luagan binary (for make test-asan, where
# the XCTest runner is not built). Exits 1 if any suite fails.
set -u
luagan=${1:?usage: run_lua_suites.sh path/to/luagan}
cd "$(dirname "$0")/../.."
export LSAN_OPTIONS="suppressions=$PWD/scripts/dev/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=()
for f in scripts/dev/tests/*.lua; do
  name=$(basename "$f" .lua)
  env=()
  [ "$name" = never_crash ] && env=(LUAGAN_LUA_HEAP_LIMIT=512M)
  start=$(date +%s)
  if env "${env[@]}" "$luagan" "$f" > "/tmp/luagan-suite-$name.log" 2>&1; then
    echo "ok   $name ($(( $(date +%s) - start )) s)"
  else
    echo "FAIL $name ($(( $(date +%s) - start )) s): see /tmp/luagan-suite-$name.log"
    tail -20 "/tmp/luagan-suite-$name.log"
    failed+=("$name")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
echo "all Lua suites passed"
