#!/usr/bin/env bash
# Installs what is needed, builds tinyc and the test fixtures, then runs the whole test suite.
# Extra arguments go to `bun test` (a path filter, -t PATTERN, --bail, ...).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/setup.sh
npm run build --silent
bash scripts/fixtures.sh

# The suite's exit status is this script's; its counts end the output as one plain line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
node_modules/.bin/bun test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
count() { grep -Eo "^ *[0-9]+ $1\b" "$log" | tail -n 1 | tr -dc 0-9 || true; }
pass=$(count pass) fail=$(count fail) skip=$(count skip)
echo "${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
if [ "${pass:-0}" = 0 ] && [ "$status" = 0 ]; then
  echo "test: no test ran" >&2
  exit 1
fi
exit "$status"
