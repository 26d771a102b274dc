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
# Detached runs (cm-exec --reattach-within): a job sent with a spool keeps its first <cap> bytes of
# stdout and stderr, its start, end and status in files of that folder on the host, so that a later
# session can collect them (request a) if this one loses its controller. The folder goes when the
# controller says it has the job (request c), or <linger> s after the last controller was seen.
my %spool;                    # serial => [dir, cap, out fh, err fh, out bytes, err bytes, start ms, ended]
my %want_spool;               # serial => [dir, cap]: the spool of the job its next r request starts
my %watch;                    # serial => dir of a job another loop runs, whose end this one waits for
my %collect;                  # serial => a spool folder to remove when the controller has the job
my ($linger, $detached, $checked) = (0, 0, 0);
my ($reply, $ended) = ("", 0);
sub now_ms { int(Time::HiRes::time() * 1000) }
sub put {
  return if $detached;
  my $s = $_[0];
  while (length $s) {
    my $w = syswrite STDOUT, $s;
    if (!defined $w) { next if $!{EINTR}; return lost(141) }
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
$SIG{PIPE} = sub { lost(141) };
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

# The spool folder, then the folder of its run and the spool root once empty (other jobs may be in them).
sub unspool {
  my $dir = $_[0];
  rmtree($dir);
  (my $up = $dir) =~ s{/+[^/]+/*$}{};
  rmdir $up and $up =~ s{/+[^/]+/*$}{} and rmdir $up if length $up;
}

# The controller is gone (stdin closed or stdout broken). Jobs with a spool keep running and keep
# their results; the rest end as before.
sub lost {
  my $code = $_[0];
  finish($code) if $$ != $LOOP || !%spool;
  return if $detached;
  $detached = time;
  ($reply, $ended) = ("", 0);
  %watch = ();
  for my $pid (keys %job) { kill "KILL", -$pid unless $spool{$job{$pid}} }
  open STDIN, "<", "/dev/null";
  open STDOUT, ">", "/dev/null";
  open STDERR, ">", "/dev/null";
}

# Once a second while detached: end when every kept result was collected, or when no controller
# was seen for <linger> s (a collecting session touches the spool folders it waits on).
sub detached_turn {
  return if time == $checked;
  $checked = time;
  for my $s (keys %collect) { delete $collect{$s} unless -d $collect{$s} }
  for my $s (keys %spool) { delete $spool{$s} if $spool{$s}[7] && !-d $spool{$s}[0] }
  exit 0 if !%job && !%spool;
  my $seen = $detached;
  for my $sp (values %spool) { my $m = (stat $sp->[0])[9]; $seen = $m if defined $m && $m > $seen }
  return if time - $seen <= $linger;
  kill "KILL", -$_ for keys %job;
  unspool($_->[0]) for values %spool;
  for my $wd (values %remove) { rmtree($wd); (my $run = $wd) =~ s{/+[^/]+/*$}{}; rmdir $run if length $run }
  exit 0;
}

# A job another loop ran (request a): its results once it has ended, "l" when that loop is gone.
my $watched = 0;
sub watch_turn {
  my $t = Time::HiRes::time();
  return if $t - $watched < 0.2;
  $watched = $t;
  for my $serial (keys %watch) {
    my $dir = $watch{$serial};
    if (open my $st, "<", "$dir/status") {
      my ($rc, $sig, $t0, $t1, $ob, $eb) = split / /, scalar <$st>;
      close $st;
      delete $watch{$serial};
      $collect{$serial} = $dir;
      for (["out", "O"], ["err", "E"]) {
        open my $f, "<", "$dir/$_->[0]" or next;
        while ((my $n = sysread $f, my $buf, 65536) > 0) { $reply .= "$M $serial $_->[1] $n\n" . $buf }
        close $f;
      }
      chomp $eb;
      $reply .= "$M $serial t $t0 $t1 $ob $eb\n$M $serial x $rc $sig\n";
      $ended = 1;
      next;
    }
    my ($loop, $pgid) = (0, 0);
    if (open my $p, "<", "$dir/pid") { ($loop, $pgid) = split / /, scalar <$p>; close $p }
    if (!-d $dir || !$loop || !kill 0, $loop) {
      # the loop that ran it is gone (the host restarted, or it was killed): so is the job
      kill "KILL", -$pgid if $pgid;
      delete $watch{$serial};
      $collect{$serial} = $dir;
      $reply .= "$M $serial l " . (-d $dir ? "its loop on the host is gone" : "nothing kept on the host") . "\n";
      $ended = 1;
      next;
    }
    utime undef, undef, $dir;
  }
}

# Replies wait for a job to end (or for 64 KB of output), then leave in one write with those of
# the other jobs that ended in the same turn: a tiny job costs sshd and ssh part of one packet.
sub failed {
  my ($serial, $why) = @_;
  $reply .= "$M $serial E " . length($why) . "\n$why$M $serial x 1 -\n";
  $ended = 1;
}

sub start {
  my ($serial, $rm, $wd, $cmd, @env) = @_;
  # as the per-job transport: mkdir -p DIR && cd DIR, else status 1 with the reason on stderr
  return failed($serial, "mkdir: cannot create directory $wd: $!\n") if !mkpath($wd) && !mkpath($wd);
  my $sp = delete $want_spool{$serial};
  my ($sout, $serr);
  if ($sp) {
    return failed($serial, "mkdir: cannot create directory $sp->[0]: $!\n") if !mkpath($sp->[0]) && !mkpath($sp->[0]);
    open $sout, ">", "$sp->[0]/out" and open $serr, ">", "$sp->[0]/err" or return failed($serial, "cannot write in $sp->[0]: $!\n");
  }
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
  if ($sp) {
    my $t0 = now_ms();
    $spool{$serial} = [$sp->[0], $sp->[1], $sout, $serr, 0, 0, $t0, 0];
    if (open my $p, ">", "$sp->[0]/pid") { print $p "$LOOP $pid $t0\n"; close $p }
  }
  $pipe{fileno $or} = [$or, $serial, "O", $pid];
  $pipe{fileno $er} = [$er, $serial, "E", $pid];
}

# Reads what the pipe of a job holds. Returns false at end of file, when the pipe is closed.
sub drain {
  my $p = $_[0];
  my $n = sysread $p->[0], my $buf, 65536;
  return 1 if !defined $n && $!{EINTR};
  if ($n) {
    if (my $sp = $spool{$p->[1]}) {
      my $i = $p->[2] eq "O" ? 4 : 5;
      my $room = $sp->[1] - $sp->[$i];
      syswrite $sp->[$i - 2], $buf, $room < $n ? $room : $n if $room > 0;
      $sp->[$i] += $n;
    }
    return 1 if $detached;
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
    if (my $sp = $spool{$serial}) {
      # written whole, then renamed: a collecting loop sees a status line or none
      close $sp->[2];
      close $sp->[3];
      $sp->[7] = 1;
      if (open my $st, ">", "$sp->[0]/status.new") {
        print $st "$rc $sig $sp->[6] " . now_ms() . " $sp->[4] $sp->[5]\n";
        close $st;
        rename "$sp->[0]/status.new", "$sp->[0]/status";
      }
    }
    $reply .= "$M $serial x $rc $sig\n";
    $ended = 1;
  }
}

sub request {
  my $line = $_[0];
  if ($line =~ /^r (\d+) \d+ ([01]) (.*)$/s) { start($1, $2, words($3)) }
  elsif ($line =~ /^k (\d+) \d+ ([A-Z0-9]+)$/) {
    my $pid = $pid_of{$1};
    if (!$pid && $watch{$1} && open my $p, "<", "$watch{$1}/pid") { (undef, $pid) = split / /, scalar <$p>; close $p }
    kill($2, -$pid) or kill($2, $pid) if $pid;
  }
  elsif ($line =~ /^s (\d+) (\d+) (\d+) (.*)$/s) {
    require Time::HiRes;
    $want_spool{$1} = [(words($4))[0], $2];
    $linger = $3 if $3 > $linger;
  }
  elsif ($line =~ /^a (\d+) (.*)$/s) {
    require Time::HiRes;
    $watch{$1} = (words($2))[0];
  }
  elsif ($line =~ /^c (\d+)$/) {
    my $dir = delete $collect{$1};
    if (my $sp = delete $spool{$1}) { $dir = $sp->[0] }
    unspool($dir) if defined $dir;
  }
}

put("$M hello $VERSION perl\n");
my $in = "";
for (;;) {
  reap();
  watch_turn() if %watch;
  detached_turn() if $detached;
  if ($ended || length $reply > 65536) { put($reply); ($reply, $ended) = ("", 0) }
  my $rin = "";
  vec($rin, 0, 1) = 1;
  vec($rin, fileno $wake_r, 1) = 1;
  vec($rin, $_, 1) = 1 for keys %pipe;
  # A SIGCHLD that lands between reap and select runs its (deferred) handler only after select
  # returns, so the self-pipe cannot always wake us: poll every 10 ms while jobs run.
  vec($rin, 0, 1) = 0 if $detached;
  my $n = select(my $rout = $rin, undef, undef, $detached ? 0.25 : %job ? 0.01 : %watch ? 0.2 : undef);
  next if $n <= 0;
  sysread $wake_r, my $junk, 4096 if vec($rout, fileno $wake_r, 1);
  for my $fd (keys %pipe) { drain($pipe{$fd}) if vec($rout, $fd, 1) }
  next unless vec($rout, 0, 1);
  my $got = sysread STDIN, $in, 65536, length $in;
  next if !defined $got && $!{EINTR};
  lost(0), next unless $got;
  while ((my $i = index $in, "\n") >= 0) {
    my $line = substr $in, 0, $i + 1, "";
    chop $line;
    request($line);
  }
}
