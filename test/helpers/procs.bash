# Process identity for helpers that stop exactly what they started: a pid alone can be recycled, so
# every recorded process is "pid starttime" (field 22 of /proc/PID/stat) and is signalled only while
# both still match. Sourced by hosts.bash and slurm-lab.sh.

# "pid starttime" of a live (non-zombie) process, or nothing.
_cm_proc_id() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  [[ $1 != Z && $1 != X ]] || return 1
  echo "${stat%% *} ${20}"
}

# true when the process recorded as "pid starttime" is still the same live process.
_cm_alive() {
  local now
  now=$(_cm_proc_id "$1") || return 1
  [[ $now == "$1 $2" ]]
}
