#!/usr/bin/perl
# cpu-split.pl OUT PIDFILE MATCH -- COMMAND [ARGS...]
#
# Runs COMMAND and writes to OUT one line: "wall_ms host_ms controller_ms machine_ms status".
#   host        every process under the test sshd listeners recorded in PIDFILE ("pid starttime"
#               lines, test/helpers/hosts.bash's pids file): utime+stime+cutime+cstime summed over
#               the live processes of each listener's tree, after minus before. A session that ended
#               meanwhile was reaped inside the tree, so its time is in its parent's cutime.
#   controller  COMMAND's tree (getrusage of its reaped children: this process is their subreaper, so
#               ssh masters that daemonise themselves with -f are reaped here too, not by init), plus
#               the live processes outside the host trees whose command line holds MATCH (masters
#               opened before COMMAND, as the xargs floor and --keep-connections use), after minus
#               before.
#   machine     /proc/stat: user, nice, system, irq and softirq time of every CPU, after minus before;
#               whatever else runs on the machine lands here and only here.
# The wall time ends when COMMAND exits; the CPU is read once the host trees are back to the processes
# they had before (at most 3 s later), so the hosts' work on COMMAND's last jobs is not cut off.
use strict;
use warnings;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my ($out, $pidfile, $match, $sep, @cmd) = @ARGV;
die "usage: cpu-split.pl OUT PIDFILE MATCH -- COMMAND [ARGS...]\n" unless defined $sep && $sep eq '--' && @cmd;
my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

# PR_SET_CHILD_SUBREAPER (36) through prctl (157 on x86_64, 167 on aarch64)
my $prctl = { x86_64 => 157, aarch64 => 167 }->{ (POSIX::uname())[4] };
warn "cpu-split.pl: no subreaper on this architecture: daemonised helpers' CPU is not counted\n"
  unless defined $prctl && syscall($prctl, 36, 1, 0, 0, 0) == 0;

sub machine_ticks {
  open my $fh, '<', '/proc/stat' or die "cpu-split.pl: /proc/stat: $!\n";
  my @f = split ' ', scalar <$fh>;
  return $f[1] + $f[2] + $f[3] + $f[6] + $f[7];
}

# every process: "pid starttime" => [ppid, ticks, pid]
sub processes {
  my %p;
  opendir my $dh, '/proc' or die;
  for my $pid (grep { /^\d+$/ } readdir $dh) {
    open my $fh, '<', "/proc/$pid/stat" or next;
    my $stat = <$fh> // next;
    my @f = split ' ', substr($stat, rindex($stat, ')') + 2);
    # after the command name: state ppid ... utime(11) stime cutime cstime ... starttime(19)
    $p{"$pid $f[19]"} = [$f[1], $f[11] + $f[12] + $f[13] + $f[14], $pid];
  }
  return \%p;
}

sub listeners {
  open my $fh, '<', $pidfile or return ();
  return grep { /^\d+ \d+$/ } map { chomp; $_ } <$fh>;
}

# keys of the processes in the trees under the roots, in one snapshot
sub trees {
  my ($procs, @roots) = @_;
  my (%kids, %in);
  $kids{ $procs->{$_}[0] }{$_} = 1 for keys %$procs;
  my @queue = grep { $procs->{$_} } @roots;
  while (defined(my $k = shift @queue)) {
    next if $in{$k}++;
    push @queue, keys %{ $kids{ $procs->{$k}[2] } // {} };
  }
  return \%in;
}

sub cmdline {
  open my $fh, '<', "/proc/$_[0]/cmdline" or return '';
  local $/;
  return <$fh> // '';
}

# (host ticks, controller ticks outside COMMAND's reaped tree, host tree keys)
sub snapshot {
  my $procs = processes();
  my $host = trees($procs, listeners());
  my $mine = trees($procs, grep { $procs->{$_}[2] == $$ } keys %$procs);
  my ($h, $c) = (0, 0);
  for my $k (keys %$procs) {
    my $pid = $procs->{$k}[2];
    if ($host->{$k}) { $h += $procs->{$k}[1] }
    elsif ($pid != $$ && ($mine->{$k} || index(cmdline($pid), $match) >= 0)) { $c += $procs->{$k}[1] }
  }
  return ($h, $c, $host);
}

my ($h0, $c0, $before) = snapshot();
my $m0 = machine_ticks();
my $t0 = time;
my $child = fork // die "cpu-split.pl: fork: $!\n";
if (!$child) {
  exec { $cmd[0] } @cmd or die "cpu-split.pl: $cmd[0]: $!\n";
}
waitpid $child, 0;
my $status = $? & 127 ? 128 + ($? & 127) : $? >> 8;
my $wall = time - $t0;
my ($h1, $c1, $after);
for (my $deadline = time + 3; ; sleep 0.02) {
  1 while waitpid(-1, WNOHANG) > 0;
  ($h1, $c1, $after) = snapshot();
  last if time > $deadline || join(',', sort keys %$after) eq join(',', sort keys %$before);
}
my $m1 = machine_ticks();
my ($u, $s, $cu, $cs) = times;
my $ms = 1000 / $hz;
open my $fh, '>', $out or die "cpu-split.pl: $out: $!\n";
printf $fh "%d %d %d %d %d %d\n", $wall * 1000, ($h1 - $h0) * $ms, ($cu + $cs) * 1000 + ($c1 - $c0) * $ms,
  ($m1 - $m0) * $ms, $status, ($u + $s) * 1000;
close $fh;
exit $status;
