#!/bin/sh
# /tests/must SCRIPT...: runs the words as one shell script; if it exits non-zero, prints
# "must: SCRIPT: failed (status N)" (zcore-tests' failure pattern), so a test list line needs no
# "failed" of its own (the shell's echo of the typed command may reach the console output).
sh -c "$*"
status=$?
[ $status = 0 ] || echo "must: $*: failed (status $status)"
exit $status
