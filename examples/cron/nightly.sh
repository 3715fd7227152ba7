#!/usr/bin/env bash
# Nightly audiobook builds: every job file in jobs/ is run (finished work is skipped), with one log
# per book and night, a JSON event log per book, and one summary line per book in logs/nightly.log.
# A failure is mailed when MAILTO_ADDR is set and `mail` exists; the exit code is 0 only if every
# book finished (a book that is busy because last night's run still holds it does not count).
#
#   BATCHTTS_HOME  checkout with jobs/ and .venv (default: two folders up from this script)
#   BATCHTTS       the batchtts command (default: $BATCHTTS_HOME/.venv/bin/batchtts)
#   OUT_ROOT       where books go (default: $BATCHTTS_HOME/out), LOG_DIR (default: $BATCHTTS_HOME/logs)
set -u
home=${BATCHTTS_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$home" || exit 4
bin=${BATCHTTS:-$home/.venv/bin/batchtts}
out_root=${OUT_ROOT:-$home/out}
log_dir=${LOG_DIR:-$home/logs}
mkdir -p "$log_dir"
status=0
for jobs in jobs/*.jsonl; do
  [ -e "$jobs" ] || continue
  name=$(basename "$jobs" .jsonl)
  log="$log_dir/$name.$(date +%F).log"
  "$bin" run "$jobs" --out "$out_root/$name" --log-json "$log_dir/$name.events.jsonl" -v >>"$log" 2>&1
  rc=$?
  case $rc in
    0) what="done" ;;
    1) what="some chunks failed: batchtts status $jobs, then batchtts retry $jobs" ;;
    2) what="bad input: fix the job file (see $log)" ;;
    3) what="busy: another run still holds $out_root/$name" ;;
    4) what="environment: missing program or model, or disk full (see $log)" ;;
    *) what="stopped by signal $((rc - 128)); the next run resumes" ;;
  esac
  echo "$(date -Is) $jobs rc=$rc $what" >>"$log_dir/nightly.log"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    status=1
    if [ -n "${MAILTO_ADDR:-}" ] && command -v mail >/dev/null; then
      tail -n 40 "$log" | mail -s "batchtts $name: $what" "$MAILTO_ADDR"
    fi
  fi
done
exit $status
