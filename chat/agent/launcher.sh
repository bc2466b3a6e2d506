#!/bin/bash
# Starts the bundled Claude Code CLI for one chat session (given to the SDK as cli_path).
#
# - Clean environment: the SDK passes the whole server environment down; only the
#   variables named in DASHBOARD_AI_ENV_KEEP survive, so SECRET_KEY, DATABASE_URL and
#   the rest never reach the CLI (nor the model, through /proc/self/environ).
# - Own process group (setsid, in place: we are not a group leader), so a stop that
#   escalates can kill the CLI together with any child it started.
# - Parent-death signal (setpriv --pdeathsig KILL): the CLI dies with the server.
# - Its pid (== its process group id after exec) goes to DASHBOARD_AI_PIDFILE.
# - Lower CPU priority (nice 10), so the server's event loop wins a busy CPU against
#   the CLIs (/health and handshakes stayed slow while 16 CLIs worked on 2 cores). Where
#   the kernel groups scheduling by session (autogroup), setsid gave the CLI a group of
#   its own, weighted like the server's whatever the process's nice: so the group's nice
#   is set to 10 too, after setsid (before it would lower the server's own group). Best
#   effort: without CAP_SYS_ADMIN the kernel takes one such change per 100 ms, machine-wide.
set -u
cli=${DASHBOARD_AI_CLAUDE_CLI:?}
pidfile=${DASHBOARD_AI_PIDFILE:-}
keep=" ${DASHBOARD_AI_ENV_KEEP:-} "
while IFS= read -r name; do
  case "$keep" in
    *" $name "*) ;;
    *) unset "$name" 2>/dev/null ;;
  esac
done < <(compgen -e)
unset OLDPWD
export PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
[ -n "$pidfile" ] && echo $$ > "$pidfile"
# bash's exec puts SHLVL back; env -u takes it out again.
renice_group='{ echo 10 > /proc/self/autogroup; } 2>/dev/null; exec "$@"'
exec /usr/bin/env -u SHLVL /usr/bin/nice -n 10 /usr/bin/setsid /bin/sh -c "$renice_group" sh \
  /usr/bin/setpriv --pdeathsig KILL -- "$cli" "$@"
