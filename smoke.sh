#!/usr/bin/env bash
# smoke.sh: the isolated up -> loop -> down proof. Builds orch, runs `orch demo` (a throwaway
# project on its own private tmux server), checks the loop completed and that nothing is left.
# Usage: ./smoke.sh          Exit: 0 and PASS, or non-zero with the reason.
set -euo pipefail

cd "$(dirname "$0")"
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

command -v tmux >/dev/null || fail "tmux is not installed"
command -v git >/dev/null || fail "git is not installed"

cargo build --release
bin="${CARGO_TARGET_DIR:-target}/release/orch"
[ -x "$bin" ] || fail "no binary at $bin after the build"

work="$(mktemp -d "${TMPDIR:-/tmp}/orch-smoke-XXXXXX")"
project="$work/project"
socket=""
cleanup() {
  # Only the demo's own private server, and only if it outlived the demo.
  if [ -n "$socket" ]; then
    tmux -L "$socket" kill-server 2>/dev/null || true
    tmux -L "$socket-watchdog" kill-server 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" demo --keep --dir "$project" --timeout 120 | tee "$work/demo.out" \
  || fail "orch demo exited non-zero (output above)"

socket="$(sed -n 's/^tmux_socket = "\([^"]*\)".*/\1/p' "$project/agents.toml")"
[ -n "$socket" ] || fail "no tmux_socket in $project/agents.toml"
logs="$project/.orch"

[ -f "$logs/SEQUENCE-COMPLETE" ] || fail "no $logs/SEQUENCE-COMPLETE"
grep -q '"event":"sequence_complete"' "$logs/events.jsonl" || fail "no sequence_complete event"
[ -s "$logs/task-finisher.done" ] || fail "the on-complete task did not run (no $logs/task-finisher.done)"
grep -q '^SEQUENCE-COMPLETE after' "$work/demo.out" || fail "the demo did not report SEQUENCE-COMPLETE"
# (captured first: `git log | grep -q` would fail under pipefail when grep exits early)
history="$(git -C "$project/remote.git" log --format=%s main)"
for phase in p1 p2; do
  grep -qx "status: $phase done" <<<"$history" || fail "the remote has no 'status: $phase done' commit"
done

if tmux -L "$socket" ls >/dev/null 2>&1; then
  fail "sessions are left on the demo's tmux server $socket: $(tmux -L "$socket" ls 2>&1)"
fi
if tmux -L "$socket" list-sessions -F x >/dev/null 2>&1 || tmux -L "$socket" info >/dev/null 2>&1; then
  fail "the demo's tmux server $socket is still running"
fi
if tmux -L "$socket-watchdog" list-sessions -F x >/dev/null 2>&1; then
  fail "the demo's watchdog tmux server $socket-watchdog is still running"
fi

echo "smoke: PASS"
