# A cm job inside a Slurm step or batch job, run as `sh -c THIS cm-slurm WORKDIR COMMAND`: it says
# on which node it started (the line the transports wait for), then runs the job in its working
# directory under $HOME, as over ssh. Comment lines are not sent.
printf 'cm-slurm-started %s\n' "$SLURMD_NODENAME" >&2
cd && mkdir -p "$1" && cd "$1" && exec sh -c "$2"
