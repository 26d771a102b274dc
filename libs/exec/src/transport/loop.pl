# The job loop of the persistent transport, in perl: one process runs every job of the session (one fork and
# one exec per job). It travels inside one sh single-quoted word, so it holds no single quote.
use strict;
# The wire format of the sh loop, from one process that runs every job of the session.
# No modules at start-up: POSIX alone costs 12 ms of CPU per session, which every host pays at
# once on the machine running cm-exec when the hosts are local, and in the latency of the first job.
# The stdout and stderr of a job are pipes that this loop reads as the job writes: no file is
# created on the host, and no output waits on a disk.
my ($M, $SH, $VERSION) = @ARGV;
my $LOOP = $$;
# WNOHANG is 1 wherever cm runs hosts (Linux, the BSDs, macOS); POSIX says so elsewhere
my $WNOHANG = $^O =~ /^(linux|darwin|freebsd|openbsd|netbsd|dragonfly|cygwin)$/ ? 1 : do { require POSIX; POSIX::WNOHANG() };
sub signame { require Config; (split / /, $Config::Config{sig_name})[$_[0]] || "-" }
my (%job, %pid_of, %pipe);    # pid => serial; serial => pid; fileno => [handle, serial, O|E, pid]
my %remove;                   # serial => the workdir to remove when the job ends
my $closing = 0;
sub put {
  my $s = $_[0];
  while (length $s) {
    my $w = syswrite STDOUT, $s;
    if (!defined $w) { next if $!{EINTR}; finish(141) }
    substr($s, 0, $w) = "";
  }
}
sub finish {
  # a forked job not yet in its exec gets the signal as its status, and must not touch the loop state
  exit $_[0] if $$ != $LOOP;
  return if $closing++;
  kill "KILL", -$_ for keys %job;
  exit $_[0];
}
# HUP, INT and TERM are caught and ignored: a job that signals its parent (kill PPID) must not
# end the session, and perl cannot tell the sender from a deferred handler. The session ends when
# its stdin closes (ssh gone) or stdout breaks. Caught, not ignored, so a job starts with the
# default handlers after its exec.
$SIG{$_} = sub {} for qw(HUP INT TERM);
$SIG{PIPE} = sub { finish(141) };
pipe(my $wake_r, my $wake_w) or finish(3);
# (blocking writes are fine: the loop drains it on every turn, one byte per SIGCHLD)
$SIG{CHLD} = sub { syswrite $wake_w, "c" if $$ == $LOOP };

sub words {
  my @w;
  for my $word ($_[0] =~ /((?:\x27[^\x27]*\x27|\\\x27|"\$_cmq_nl")+)/g) {
    my $v = "";
    $v .= defined $1 ? $1 : defined $2 ? "\x27" : "\n" while $word =~ /\G(?:\x27([^\x27]*)\x27|(\\\x27)|"\$_cmq_nl")/gc;
    push @w, $v;
  }
  return @w;
}

# mkdir -p: a single mkdir when the parent exists, as for every job after the first of a run (tried
# twice by start: the clean-up of another session may remove the folder of the run between the steps)
sub mkpath {
  return 1 if mkdir($_[0]) || -d $_[0];
  my $p = "";
  for my $part (split m{(?=/)}, $_[0]) {
    $p .= $part;
    next if $p eq "" || $p eq "/" || -d $p;
    mkdir $p or -d $p or return 0;
  }
  return 1;
}

# rm -rf without File::Path (no module at start-up). lstat: a symlink is removed, never followed.
sub rmtree {
  my $p = $_[0];
  lstat $p;
  return unlink $p unless -d _;
  chmod 0700, $p;
  if (opendir my $d, $p) {
    my @names = grep { $_ ne "." && $_ ne ".." } readdir $d;
    closedir $d;
    rmtree("$p/$_") for @names;
  }
  rmdir $p;
}

# Replies wait for a job to end (or for 64 KB of output), then leave in one write with those of
# the other jobs that ended in the same turn: a tiny job costs sshd and ssh part of one packet.
my ($reply, $ended) = ("", 0);
sub failed {
  my ($serial, $why) = @_;
  $reply .= "$M $serial E " . length($why) . "\n$why$M $serial x 1 -\n";
  $ended = 1;
}

sub start {
  my ($serial, $rm, $wd, $cmd, @env) = @_;
  # as the per-job transport: mkdir -p DIR && cd DIR, else status 1 with the reason on stderr
  return failed($serial, "mkdir: cannot create directory $wd: $!\n") if !mkpath($wd) && !mkpath($wd);
  # perl marks the pipes close-on-exec: a job holds its own two ends and nothing else of the loop
  my ($or, $ow, $er, $ew);
  pipe($or, $ow) && pipe($er, $ew) or return failed($serial, "cannot make a pipe for a new job: $!\n");
  my $pid = fork;
  return failed($serial, "cannot fork a new job: $!\n") if !defined $pid;
  if ($pid == 0) {
    setpgrp(0, 0);
    open STDIN, "<", "/dev/null";
    open STDOUT, ">&", $ow or exit 1;
    open STDERR, ">&", $ew or exit 1;
    if (!chdir $wd) { print STDERR "cd: $wd: $!\n"; exit 1 }
    while (@env) { my $k = shift @env; $ENV{$k} = shift @env }
    exec { $SH } "sh", "-c", $cmd;
    print STDERR "cannot run $SH: $!\n";
    exit 127;
  }
  close $ow;
  close $ew;
  $job{$pid} = $serial;
  $pid_of{$serial} = $pid;
  $remove{$serial} = $wd if $rm;
  $pipe{fileno $or} = [$or, $serial, "O", $pid];
  $pipe{fileno $er} = [$er, $serial, "E", $pid];
}

# Reads what the pipe of a job holds. Returns false at end of file, when the pipe is closed.
sub drain {
  my $p = $_[0];
  my $n = sysread $p->[0], my $buf, 65536;
  return 1 if !defined $n && $!{EINTR};
  if ($n) {
    $reply .= "$M $p->[1] $p->[2] $n\n" . $buf;
    if (length $reply > 1 << 20) { put($reply); $reply = "" }
    return 1;
  }
  delete $pipe{fileno $p->[0]};
  close $p->[0];
  return 0;
}

sub reap {
  while ((my $pid = waitpid(-1, $WNOHANG)) > 0) {
    my $status = $?;
    defined(my $serial = delete $job{$pid}) or next;
    delete $pid_of{$serial};
    # what the job left running in its process group ends with it, as with the sh loop
    kill "KILL", -$pid;
    # All the job wrote is in its pipes now. A process that left the group may still hold them:
    # take what is there and close them rather than wait for it.
    for my $p (grep { $_->[3] == $pid } values %pipe) {
      my $bits = "";
      vec($bits, fileno $p->[0], 1) = 1;
      1 while select(my $ready = $bits, undef, undef, 0) > 0 && drain($p);
      if ($pipe{fileno $p->[0]}) { delete $pipe{fileno $p->[0]}; close $p->[0] }
    }
    # a job nothing downstream reads from leaves nothing behind; the folder of its run goes once empty
    if (defined(my $wd = delete $remove{$serial})) {
      rmtree($wd);
      (my $run = $wd) =~ s{/+[^/]+/*$}{};
      rmdir $run if length $run;
    }
    my ($rc, $sig) = ($status >> 8, "-");
    if ($status & 127) { $rc = 128 + ($status & 127); $sig = signame($status & 127) }
    $reply .= "$M $serial x $rc $sig\n";
    $ended = 1;
  }
}

sub request {
  my $line = $_[0];
  if ($line =~ /^r (\d+) \d+ ([01]) (.*)$/s) { start($1, $2, words($3)) }
  elsif ($line =~ /^k (\d+) \d+ ([A-Z0-9]+)$/) {
    my $pid = $pid_of{$1};
    kill($2, -$pid) or kill($2, $pid) if $pid;
  }
}

put("$M hello $VERSION perl\n");
my $in = "";
for (;;) {
  reap();
  if ($ended || length $reply > 65536) { put($reply); ($reply, $ended) = ("", 0) }
  my $rin = "";
  vec($rin, 0, 1) = 1;
  vec($rin, fileno $wake_r, 1) = 1;
  vec($rin, $_, 1) = 1 for keys %pipe;
  # A SIGCHLD that lands between reap and select runs its (deferred) handler only after select
  # returns, so the self-pipe cannot always wake us: poll every 10 ms while jobs run.
  my $n = select(my $rout = $rin, undef, undef, %job ? 0.01 : undef);
  next if $n <= 0;
  sysread $wake_r, my $junk, 4096 if vec($rout, fileno $wake_r, 1);
  for my $fd (keys %pipe) { drain($pipe{$fd}) if vec($rout, $fd, 1) }
  next unless vec($rout, 0, 1);
  my $got = sysread STDIN, $in, 65536, length $in;
  next if !defined $got && $!{EINTR};
  finish(0) unless $got;
  while ((my $i = index $in, "\n") >= 0) {
    my $line = substr $in, 0, $i + 1, "";
    chop $line;
    request($line);
  }
}
