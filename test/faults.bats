#!/usr/bin/env bats
# Faults on real sshd test hosts: hosts that die, stop answering or crawl; jobs that hang, flood,
# fork or ignore TERM; cm-exec killed, interrupted or cut off; cm-fetch on a full disk or a missing
# file; and load. Each test is one scenario of test/faults/scenarios.bash, which counts every job's
# final events (in the stream and the joblog), the processes left on the hosts and the exit code.
# `bash test/faults/table.sh` runs the same scenarios (and the full-size load) and prints the table.

load helpers/common
load helpers/hosts
load faults/netns
load faults/scenarios
FAULT_ROWS=()
for f in "$BATS_TEST_DIRNAME"/faults/rows/*.bash; do source "$f"; done

setup_file() {
  faults_hosts_start
}

teardown_file() {
  faults_hosts_stop
}

setup() {
  FT=$BATS_TEST_TMPDIR
  export CM_FAULTS_TABLE=$BATS_FILE_TMPDIR/table.tsv
}

@test "a host down before the run: its jobs run elsewhere, none lost, exact sum, exit 0" {
  faults_run fault_host_down_before
}

@test "sshd killed mid-run (daemon and sessions): jobs move, none lost or doubled, exit 0" {
  faults_run fault_sshd_dies
}

@test "a host that drops every packet from the start is marked down; the jobs run elsewhere" {
  faults_run fault_drop_before
}

@test "a slow host (200 ms each way through a delay proxy) runs everything right" {
  faults_run fault_slow_host
}

@test "a hanging job gives up on its timeout; cm-reduce fails and names it; exit 1" {
  faults_run fault_hang_timeout
}

@test "a job printing 1 GB: the event holds the cap, the log all of it, cm-exec's RSS stays bounded" {
  faults_run fault_big_output
}

@test "a job that forks children and exits leaves nothing behind on the host" {
  faults_run fault_forks_children
}

@test "a job ignoring SIGTERM is SIGKILLed after the grace, nothing left behind" {
  faults_run fault_ignores_term
}

@test "cm-exec SIGKILLed mid-run, then --resume: each job once in the joblog and the stream, exact sum" {
  faults_run fault_sigkill_resume
}

@test "SIGINT to the process group: exit 130, every job final, cm-reduce refuses the sum, --resume completes it" {
  faults_run fault_sigint
}

@test "cm-exec | head -n 3: exit 0, quiet, no job left running" {
  faults_run fault_head
}

@test "cm-fetch onto a full 2 MB tmpfs: failed transfers say so, no cut or stray file, exit 1" {
  faults_run fault_fetch_disk_full
}

@test "a result file that vanishes before cm-fetch: an ok:false fetch record, cm-reduce names the job, exit 1" {
  faults_run fault_fetch_vanished
}

@test "a host that stops answering mid-run (packets dropped): its jobs move after ServerAlive, none lost" {
  faults_run fault_drop_mid_run
}

@test "load: 1,000 jobs over 50 hosts x 4 slots under ulimit -n 1024 (table.sh runs 10,000 over 200)" {
  faults_run fault_load 1000 50
}

@test "cm-exec SIGKILLed while 16 x 8 s jobs run on 4 hosts, then --resume: each ran once, collected, sum right, wall < 1.5 x uninterrupted, nothing left on the hosts" {
  faults_run fault_reattach_resume
}

@test "the same with a host cut off during the gap: its jobs are collected when it answers again, never run twice" {
  faults_run fault_reattach_cut_off
}

@test "the same with the host cut off past --reattach-within: its loop ends its jobs and removes its spool; they run once elsewhere" {
  faults_run fault_reattach_bound
}

@test "the same on the Slurm lab in jobs mode: --resume follows the Slurm ids in the joblog, submits nothing twice" {
  faults_run fault_reattach_slurm
}

@test "a host stops answering mid-run with --reattach-within: its jobs are waited for and collected there, not run twice" {
  faults_run fault_reattach_live_drop
}

@test "Slurm steps mode, cm-exec SIGKILLed with --reattach-within: the allocation outlives it, --resume collects the steps' spools, each job once" {
  faults_run fault_reattach_slurm_steps
}

@test "Slurm workers mode, the same: the loops in the allocation keep running, --resume collects, each job once" {
  faults_run fault_reattach_slurm_workers
}
