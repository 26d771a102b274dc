#!/bin/sh
# bench.sh SIZE: times SIZE turns of a shell loop and writes the microseconds to out/time.txt.
# Staged to the hosts by `cm-fetch --stage-in` (examples/bench.cm declares it with @inputs).
size=${1:?usage: bench.sh SIZE}
mkdir -p out
start=$(date +%s%N)
i=0
while [ "$i" -lt "$size" ]; do i=$((i + 1)); done
end=$(date +%s%N)
echo $(((end - start) / 1000)) >out/time.txt
