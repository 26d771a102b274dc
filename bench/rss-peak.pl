#!/usr/bin/perl
# rss-peak.pl OUT PIDFILE -- COMMAND [ARGS...]
#
# Runs COMMAND and samples, every 0.5 s (RSS_EVERY) until it exits, the resident set of every process
# of its tree (the controller side; this process is their subreaper, so ssh masters that daemonise
# themselves stay in the tree) and of the trees under the test sshd listeners in PIDFILE ("pid
# starttime" lines: the hosts' sessions, loops and jobs). Writes to OUT one line per command seen:
# "side name peak_kB processes", name being the script a node or perl process runs, else its comm.
# Every RSS_REPORT_EVERY seconds (default 60) a line on stderr gives the largest peaks so far, so a
# long run shows it is alive. Exits with COMMAND's status.
use strict;
use warnings;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my ($out, $pidfile, $sep, @cmd) = @ARGV;
die "usage: rss-peak.pl OUT PIDFILE -- COMMAND [ARGS...]\n" unless defined $sep && $sep eq '--' && @cmd;
my $every = $ENV{RSS_EVERY} || 0.5;
my $prctl = { x86_64 => 157, aarch64 => 167 }->{ (POSIX::uname())[4] };
warn "rss-peak.pl: no subreaper on this architecture: daemonised helpers are not sampled\n"
  unless defined $prctl && syscall($prctl, 36, 1, 0, 0, 0) == 0;

sub slurp {
  open my $fh, '<', $_[0] or return undef;
  local $/;
  return <$fh>;
}

my @listeners = grep { /^\d+ \d+$/ } map { chomp; $_ } split /\n/, slurp($pidfile) // '';

# pid => [ppid, starttime, comm]
sub processes {
  my %p;
  opendir my $dh, '/proc' or die;
  for my $pid (grep { /^\d+$/ } readdir $dh) {
    my $stat = slurp("/proc/$pid/stat") // next;
    my ($comm) = $stat =~ /\((.*)\)/s;
    my @f = split ' ', substr($stat, rindex($stat, ')') + 2);
    $p{$pid} = [$f[1], $f[19], $comm];
  }
  return \%p;
}

sub tree {
  my ($procs, $kids, @roots) = @_;
  my (%in, @queue);
  @queue = @roots;
  while (defined(my $pid = shift @queue)) {
    next if $in{$pid}++;
    push @queue, @{ $kids->{$pid} // [] };
  }
  return keys %in;
}

# what a process runs: node's or perl's script file (cm-exec, ...), "perl -e" for a program given
# inline (the hosts' loop), else its comm; one word
sub name_of {
  my ($pid, $comm) = @_;
  my @argv = split /\0/, slurp("/proc/$pid/cmdline") // '';
  my $name = $comm;
  if (@argv > 1 && $argv[0] =~ m{(?:^|/)(node|perl)$}) {
    my $interpreter = $1;
    for my $arg (@argv[1 .. $#argv]) {
      if ($arg =~ /^-[eE]$/) { $name = "$interpreter-e"; last }
      next if $arg =~ /^-/;
      $name = $arg =~ s{.*/}{}r;
      last;
    }
  }
  return $name =~ s/\s+/_/gr;
}

my (%peak, %seen);
sub sample {
  my $procs = processes();
  my %kids;
  push @{ $kids{ $procs->{$_}[0] } }, $_ for keys %$procs;
  my %side;
  $side{$_} = 'controller' for grep { $_ != $$ } tree($procs, \%kids, $$);
  for my $l (@listeners) {
    my ($pid, $start) = split ' ', $l;
    next unless $procs->{$pid} && $procs->{$pid}[1] eq $start;
    $side{$_} = 'host' for tree($procs, \%kids, $pid);
  }
  for my $pid (keys %side) {
    my ($rss) = (slurp("/proc/$pid/status") // '') =~ /^VmRSS:\s+(\d+)/m or next;
    my $key = "$side{$pid} " . name_of($pid, $procs->{$pid}[2]);
    $peak{$key} = $rss if $rss > ($peak{$key} // 0);
    $seen{$key}{"$pid $procs->{$pid}[1]"} = 1;
  }
}

my $child = fork // die "rss-peak.pl: fork: $!\n";
if (!$child) {
  exec { $cmd[0] } @cmd or die "rss-peak.pl: $cmd[0]: $!\n";
}
my ($status, $t0) = (undef, time);
my $report_every = $ENV{RSS_REPORT_EVERY} || 60;
my $next_report = $t0 + $report_every;
for (;;) {
  sample();
  if (time >= $next_report) {
    my @top = (sort { $peak{$b} <=> $peak{$a} } keys %peak)[0 .. 2];
    printf STDERR "rss-peak: %.0f s, largest peaks: %s\n", time - $t0,
      join(', ', map { sprintf '%s %.0f MB', $_, $peak{$_} / 1024 } grep { defined } @top);
    $next_report = time + $report_every;
  }
  my $r = waitpid $child, WNOHANG;
  if ($r == $child) { $status = $? & 127 ? 128 + ($? & 127) : $? >> 8; last }
  sleep $every;
}
1 while waitpid(-1, WNOHANG) > 0;
open my $fh, '>', $out or die "rss-peak.pl: $out: $!\n";
printf $fh "%s %d %d\n", $_, $peak{$_}, scalar keys %{ $seen{$_} } for sort keys %peak;
close $fh;
exit $status;
