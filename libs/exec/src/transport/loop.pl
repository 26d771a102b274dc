# The job loop of the persistent transport, in perl: one process runs every job of the session. A job
# runs as a subshell of a long-lived sh per lane (a slot shell): a fork of an already started shell,
# with no exec, where a fork and an exec of sh -c per job cost about 4x as much CPU. Jobs that need a
# shell of their own ($$, a spool) and hosts where orphans cannot be found (no child subreaper) take
# the fork and exec path. It travels inside one sh single-quoted word, so it holds no single quote.
use strict;
# The wire format of the sh loop, from one process that runs every job of the session.
# No modules at start-up: POSIX alone costs 12 ms of CPU per session, which every host pays at
# once on the machine running cm-exec when the hosts are local, and in the latency of the first job.
# The stdout and stderr of a job are pipes that this loop reads as the job writes: no file is
# created on the host, and no output waits on a disk.
my ($M, $SH, $VERSION, $LANES) = @ARGV;
$LANES = 0 unless defined $LANES && $LANES =~ /^\d{1,4}$/;
my $LOOP = $$;
# Errno (%!) and Config would cost a few ms of CPU per session: EINTR is 4 on every Unix cm runs
# hosts on, EAGAIN 11 on Linux (the slot shells run only there)
my ($EINTR, $EAGAIN) = (4, 11);
# WNOHANG is 1 wherever cm runs hosts (Linux, the BSDs, macOS); POSIX says so elsewhere
my $WNOHANG = $^O =~ /^(linux|darwin|freebsd|openbsd|netbsd|dragonfly|cygwin)$/ ? 1 : do { require POSIX; POSIX::WNOHANG() };
sub signame { require Config; (split / /, $Config::Config{sig_name})[$_[0]] || "-" }
my (%job, %pid_of, %pipe);    # pid => serial; serial => pid; fileno => [handle, serial, O|E, pid]
my %remove;                   # serial => the workdir to remove when the job ends
# lane => [shell pid, its script pipe, stdout, stderr, serial of its job or undef, KILL sent, gone,
#          spare folder, title, [[stdout, lane, "O"], [stderr, lane, "E"]]]
my %slot;
my %shell;        # shell pid => lane, while it runs the lane
my %slot_job;     # serial => lane
my %stray;        # adopted orphans that left their group: left running, as by the fork and exec path
my $status_in = "";
my $closing = 0;
# what the loop selects on but the pipes of lanes, built again when a pipe of a forked job comes or goes
my $watched_fds;
# The output pipes of a lane are watched once its job has run a while (5 ms, or 4 turns of a busy
# loop), never while it is idle: a tiny job wakes the loop once, by its status line, and what it
# wrote is read then. A job that fills a pipe before that waits that long. (A shell that dies is
# seen by its SIGCHLD.)
my %young;        # lane => turns its job has run unwatched
my %watched;      # lane => the output pipes of its job, now watched
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
    if (!defined $w) { next if $! == $EINTR; return lost(141) }
    substr($s, 0, $w) = "";
  }
}
sub finish {
  # a forked job not yet in its exec gets the signal as its status, and must not touch the loop state
  exit $_[0] if $$ != $LOOP;
  return if $closing++;
  kill "KILL", -$_ for keys %job, keys %shell;
  # reaped, not left to init: their CPU time is accounted to the session
  waitpid $_, 0 for keys %shell;
  unspare($_->[7]) for values %slot;
  exit $_[0];
}
# HUP, INT and TERM are caught and ignored: a job that signals its parent (kill PPID) must not
# end the session, and perl cannot tell the sender from a deferred handler. The session ends when
# its stdin closes (ssh gone) or stdout breaks. Caught, not ignored, so a job starts with the
# default handlers after its exec.
$SIG{$_} = sub {} for qw(HUP INT TERM);
# (a slot shell that died breaks its script pipe: slot_send sees EPIPE and drops the lane)
my $to_slot = 0;
$SIG{PIPE} = sub { lost(141) unless $to_slot };
pipe(my $wake_r, my $wake_w) or finish(3);
# (blocking writes are fine: the loop drains it on every turn, one byte per SIGCHLD)
# waitpid only after a SIGCHLD: slot jobs end without one (their parent is the slot shell)
my $chld = 1;
$SIG{CHLD} = sub { $chld = 1, syswrite $wake_w, "c" if $$ == $LOOP };

# Slot shells need to find what a job leaves running once its subshell has ended: as the child
# subreaper of its session, the loop adopts every orphan and lists them in /proc (Linux 3.5+).
# Elsewhere, the process group of a job, which the fork and exec path kills at its end, does that.
my $CHILDREN = "/proc/$$/task/$$/children";
my ($status_r, $status_w, $S, $O, $E, $children, $NR);
my $SLOTS = $^O eq "linux" && do {
  # the machine perl was built for (its ELF header): prctl, pread64, pwrite64 there
  my ($exe, $elf);
  sysopen $exe, "/proc/self/exe", 0 and sysread $exe, $elf, 20;
  $NR = { 62 => [157, 17, 18], 183 => [167, 67, 68] }->{unpack "v", substr($elf // "", 18, 2) . "\0\0"};
  # PR_SET_CHILD_SUBREAPER
  $NR && syscall($NR->[0], 36, 1, 0, 0, 0) == 0 && sysopen $children, $CHILDREN, 0
} && pipe($status_r, $status_w) && fileno $status_w <= 9;
if ($SLOTS) {
  # every slot shell writes "<lane> <status>" there when a job ends: a line is one atomic write
  $S = fileno $status_w;
  ($O, $E) = grep { $_ != $S } 7, 8, 9;
}

sub words {
  # (a copy: the argument is often $4 of the request, which the next match resets)
  my $s = $_[0];
  # most requests: plain quoted words, one regex takes them
  return $s =~ /\x27([^\x27]*)\x27/g if $s =~ /^\x27[^\x27]*\x27(?: \x27[^\x27]*\x27)*\z/;
  my @w;
  for my $word ($s =~ /((?:\x27[^\x27]*\x27|\\\x27|"\$_cmq_nl")+)/g) {
    my $v = "";
    $v .= defined $1 ? $1 : defined $2 ? "\x27" : "\n" while $word =~ /\G(?:\x27([^\x27]*)\x27|(\\\x27)|"\$_cmq_nl")/gc;
    push @w, $v;
  }
  return @w;
}

# mkdir -p: a single mkdir when the parent exists, as for every job after the first of a run. Up to
# MKDIR_TRIES times: the clean-up of another job or session removes the folder of the run whenever it
# is empty, which can fall between the steps again and again when the hosts are busy with tiny jobs
# (twice was not enough: 2 of 6 runs of 2,000 jobs lost one with the sh loop, at load 11).
my $MKDIR_TRIES = 10;
sub mkpath {
  return 1 if mkdir($_[0]) || -d $_[0];
  TRY: for (1 .. $MKDIR_TRIES) {
    my $p = "";
    for my $part (split m{(?=/)}, $_[0]) {
      $p .= $part;
      next if $p eq "" || $p eq "/" || -d $p;
      mkdir $p or -d $p or next TRY;
    }
    return 1;
  }
  return 0;
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
  my $run = up($dir);
  rmdir $run and rmdir_run($run) if length $run;
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
  slot_drop($_) for keys %slot;
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
  for my $wd (values %remove) { rmtree($wd); rmdir_run($wd) }
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
  my ($serial, $lane, $rm, $wd, $cmd, @env) = @_;
  my $sp = delete $want_spool{$serial};
  # $$ is the slot shell in a subshell: a job that names it gets a shell of its own. A spooled job
  # must outlive the session, and so the slots of its loop.
  return if !$sp && $SLOTS && $cmd !~ /\$\{?\$/ && slot_start($serial, $lane, $rm, $wd, $cmd, @env);
  # as the per-job transport: mkdir -p DIR && cd DIR, else status 1 with the reason on stderr
  return failed($serial, "mkdir: cannot create directory $wd: $!\n") if !mkpath($wd);
  my ($sout, $serr);
  if ($sp) {
    return failed($serial, "mkdir: cannot create directory $sp->[0]: $!\n") if !mkpath($sp->[0]);
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
  $watched_fds = undef;
}

sub shq { my $v = $_[0]; $v =~ s/\x27/\x27\\\x27\x27/g; "\x27$v\x27" }

# sh -s reads the jobs of its lane as script. HUP, INT and TERM are caught (a subshell starts with
# the default handlers) so that signalling the process group of the lane reaches the job, not the shell.
# Its stdout is the status pipe (a builtin writes there with no redirection to undo), its messages
# (Terminated...) go to /dev/null, open for reading too: the stdin of a job is that descriptor, with
# no open per job. The stdout and stderr of a job are on fds O and E.
sub slot_spawn { return slot_fork($_[0]) && slot_ready($_[0]) }

# Starts the shell of a lane and hands it its set-up; slot_ready waits for it.
sub slot_fork {
  my $lane = $_[0];
  my ($cr, $cw, $or, $ow, $er, $ew, $xr, $xw);
  pipe($cr, $cw) && pipe($or, $ow) && pipe($er, $ew) && pipe($xr, $xw) or return;
  my $pid = fork;
  return if !defined $pid;
  if ($pid == 0) {
    setpgrp(0, 0);
    open STDIN, "<&", $cr or exit 1;
    open STDOUT, ">&", $ow or exit 1;
    open STDERR, ">&", $ew or exit 1;
    # F_SETFD 0: the status pipe stays open across the exec
    fcntl($status_w, 2, 0) or exit 1;
    # the room its arguments take is where ps reads the command line of the job (see title)
    exec { $SH } "sh", "-s", " " x 4000;
    syswrite $xw, "x";
    exit 127;
  }
  close $cr;
  close $ow;
  close $ew;
  close $xw;
  # end of file once the exec is done (close-on-exec), and the memory of the shell is its own
  my $failed = sysread $xr, my $junk, 1;
  close $xr;
  if ($failed) { waitpid $pid, 0; return 0 }
  # O_NONBLOCK: when the job of the lane has ended, one read takes all it left there
  fcntl($_, 4, 2048) for $or, $er;
  $shell{$pid} = $lane;
  # the last: [handle, lane, O|E] of each output pipe
  $slot{$lane} = [$pid, $cw, $or, $er, undef, 0, 0, undef, undef, [[$or, $lane, "O"], [$er, $lane, "E"]]];
  slot_send($lane, "set --\ntrap : HUP INT TERM\nexec $O>&1 $E>&2 >&$S 2<>/dev/null $S>&-\necho $lane -\n") or return 0;
  return 1;
}

# Waits for the shell of the lane to say it is ready (after slot_fork).
sub slot_ready {
  my $lane = $_[0];
  my $pid = $slot{$lane}[0];
  # Its arguments are read once it says so: from then on they are only what ps shows. (Lines of
  # other lanes that come first wait in status_in.)
  until ($status_in =~ s/(^|\n)$lane -\n/$1/) {
    my $bits = "";
    vec($bits, fileno $status_r, 1) = 1;
    if (select(my $ready = $bits, undef, undef, 1) > 0) { sysread $status_r, $status_in, 4096, length $status_in; next }
    # (the other shells hold the status pipe: no end of file tells that this one is gone)
    if (waitpid($pid, $WNOHANG) == $pid) { slot_drop($lane); return 0 }
  }
  $slot{$lane}[8] = title_of($pid);
  title($slot{$lane}, "sh\0-s");
  return 1;
}

# ps shows a job as sh -c CMD, as on the fork and exec path (people and tests find jobs by their
# command line): the loop writes it where the shell keeps its arguments, which the subshell of the
# job inherits, then puts sh -s back when the job ends. Best effort: without ptrace rights over its
# own children (Yama scope 2 or 3), ps shows sh -s.
sub title_of {
  my $pid = $_[0];
  open my $st, "<", "/proc/$pid/stat" or return;
  my $stat = <$st>;
  close $st;
  my ($from, $to) = (split / /, substr($stat, rindex($stat, ")") + 2))[45, 46];
  open my $mem, "+<", "/proc/$pid/mem" or return;
  # [handle, where, room, how much of it the last title took: all of it at first (the spaces)]
  return $from && $to > $from ? [$mem, $from + 0, $to - $from, $to - $from] : undef;
}

# Only the bytes that change: the text, and NULs over what is left of the previous one.
sub title {
  my ($sl, $text) = @_;
  my $t = $sl->[8] or return;
  $text = substr($text, 0, $t->[2] - 1) if length $text >= $t->[2];
  my $was = $t->[3];
  $t->[3] = length $text;
  $text .= "\0" x ($was - length $text) if $was > length $text;
  syscall($NR->[2], fileno $t->[0], $text, length $text, $t->[1]);
}

sub slot_send {
  my ($lane, $s) = @_;
  while (length $s) {
    $to_slot = 1;
    my $w = syswrite $slot{$lane}[1], $s;
    $to_slot = 0;
    if (!defined $w) { next if $! == $EINTR; slot_drop($lane); return 0 }
    substr($s, 0, $w) = "";
  }
  return 1;
}

# The shell of the lane and whatever is left in its group go; the next job of the lane starts a new one.
sub slot_drop {
  my $lane = $_[0];
  my $sl = delete $slot{$lane} or return;
  delete $young{$lane};
  delete $watched{$lane};
  kill "KILL", -$sl->[0];
  delete $shell{$sl->[0]};
  unspare($sl->[7]);
  close $sl->[1];
  close $_ for @$sl[2, 3];
}

sub slot_start {
  my ($serial, $lane, $rm, $wd, $cmd, @env) = @_;
  my $sl = $slot{$lane};
  return 0 if $sl && defined $sl->[4];
  my $script = "( cd -- " . shq($wd =~ m{^/} ? $wd : "./$wd") . " || exit 1\n";
  while (@env) {
    my ($k, $v) = splice @env, 0, 2;
    return 0 unless $k =~ /^[A-Za-z_][A-Za-z0-9_]*$/;
    $script .= "export $k=" . shq($v) . "\n";
  }
  $script .= "eval " . shq($cmd) . "\n) <&2 >&$O 2>&$E $O>&- $E>&-; echo $lane \$?\n";
  $sl || slot_spawn($lane) or return 0;
  $sl = $slot{$lane};
  # The empty folder the previous job of the lane left becomes this one (one rename, where mkdir
  # and rmdir cost several times as much on a journalling file system).
  my $spare = $sl->[7];
  $sl->[7] = undef;
  if (!defined $spare || up($spare) ne up($wd) || !rename $spare, $wd) {
    unspare($spare);
    return failed($serial, "mkdir: cannot create directory $wd: $!\n") || 1 if !mkpath($wd);
  }
  title($sl, "sh\0-c\0$cmd");
  slot_send($lane, $script) or return 0;
  $slot{$lane}[4] = $serial;
  $young{$lane} = 0;
  $slot_job{$serial} = $lane;
  $remove{$serial} = $wd if $rm;
  return 1;
}

# All a pipe holds now, without waiting.
sub drain_now {
  my ($p, $reader) = @_;
  my $bits = "";
  vec($bits, fileno $p->[0], 1) = 1;
  1 while select(my $ready = $bits, undef, undef, 0) > 0 && $reader->($p);
}

sub up { (my $up = $_[0]) =~ s{/+[^/]+/*$}{}; $up }

# The folder above a job folder (its run folder), once empty: other jobs may still be in it.
sub rmdir_run { my $run = up($_[0]); rmdir $run if length $run }

# A spare folder goes, and its run folder once empty.
sub unspare {
  defined(my $d = $_[0]) or return;
  rmdir $d;
  rmdir_run($d);
}

sub remove_workdir {
  defined(my $wd = delete $remove{$_[0]}) or return;
  rmdir $wd or rmtree($wd);
  rmdir_run($wd);
}

# The job of the lane ended with status rc: all its output is in the pipes of the lane already.
sub slot_end {
  my ($lane, $rc, $sig) = @_;
  my $sl = $slot{$lane} or return;
  defined(my $serial = $sl->[4]) or return;
  for my $p (@{$sl->[9]}) { 1 while sdrain($p) }
  # (the end of its pipes, met there, may have ended the job already)
  return if !defined $sl->[4];
  $sl->[4] = undef;
  delete $young{$lane};
  delete $watched{$lane};
  title($sl, "sh\0-s");
  delete $slot_job{$serial};
  my $wd = $remove{$serial};
  if (defined $wd && !$sl->[6] && opendir my $d, $wd) {
    my $names = 0;
    $names++ while $names < 3 && defined readdir $d;
    closedir $d;
    # empty: kept for the next job of the lane, under its name until then
    ($sl->[7], $wd) = ($wd, delete $remove{$serial}) if $names == 2;
  }
  remove_workdir($serial);
  $sig //= $rc > 128 && $rc < 160 ? signame($rc - 128) : "-";
  $reply .= "$M $serial x $rc $sig\n";
  $ended = 1;
  return 1;
}

sub read_status {
  sysread $status_r, $status_in, 4096, length $status_in if !@_;
  my @lanes;
  while ((my $i = index $status_in, "\n") >= 0) {
    my ($lane, $rc) = split / /, substr($status_in, 0, $i + 1, "");
    push @lanes, $lane if slot_end($lane, $rc + 0);
  }
  adopted(@lanes) if @lanes;
}

# What the jobs that just ended left running: the loop adopted it (child subreaper). In the group of
# a lane, it ends with the shell of the lane, as the group of a job did on the fork and exec path; a process
# that left its group runs on, but the lanes that ended now take new pipes, so it writes in no job.
my $kids = "\0" x 65536;
sub adopted {
  my %ended = map { $_ => 1 } @_;
  # (the file stays open: one pread at 0 reads the list anew)
  my $n = syscall($NR->[1], fileno $children, $kids, 65536, 0);
  return if $n <= 0;
  my $strays = 0;
  for my $pid (split " ", substr($kids, 0, $n)) {
    next if exists $shell{$pid} || exists $job{$pid} || $stray{$pid};
    open my $st, "<", "/proc/$pid/stat" or next;
    my $stat = <$st>;
    close $st;
    my $pgid = (split / /, substr($stat, rindex($stat, ")") + 2))[2];
    my $lane = $shell{$pgid};
    if (defined $lane) { slot_drop($lane) if !defined $slot{$lane}[4] }
    elsif (!$job{$pgid}) { $stray{$pid} = 1; $strays = 1 }
  }
  if ($strays) { slot_drop($_) for keys %ended }
}

# A block of the stdout (O) or stderr (E) of a job into the reply, which leaves once it holds 1 MB.
sub frame {
  $reply .= "$M $_[0] $_[1] " . length($_[2]) . "\n" . $_[2];
  if (length $reply > 1 << 20) { put($reply); $reply = "" }
}

# Output of the job a lane runs; output while the lane is idle has no job to go to. True when the
# pipe may hold more: a full buffer was read, or the read was interrupted.
sub sdrain {
  my $p = $_[0];
  my $n = sysread $p->[0], my $buf, 65536;
  if (!defined $n) {
    return 1 if $! == $EINTR;
    return 0 if $! == $EAGAIN;
  }
  if ($n) {
    my $sl = $slot{$p->[1]};
    return $n == 65536 if $detached || !$sl || !defined $sl->[4];
    frame($sl->[4], $p->[2], $buf);
    return $n == 65536;
  }
  # the shell of the lane is gone
  shell_gone($p->[1]);
  return 0;
}

# The shell of the lane died (the job killed its group with KILL, or a KILL after a timeout).
sub shell_gone {
  my ($lane, $status) = @_;
  my $sl = $slot{$lane} or return;
  # once: draining its pipes below meets their end of file again
  return if $sl->[6]++;
  $status //= waitpid($sl->[0], 0) == $sl->[0] ? $? : 9;
  drain_now([$status_r], sub { read_status(); 1 }) if $SLOTS;
  if (defined $sl->[4] && $slot{$lane}) {
    my ($rc, $sig) = ($status >> 8, "-");
    if ($status & 127) { $rc = 128 + ($status & 127); $sig = signame($status & 127) }
    slot_end($lane, $rc, $sig);
  }
  slot_drop($lane);
}

# Reads what the pipe of a job holds. Returns false at end of file, when the pipe is closed.
sub drain {
  my $p = $_[0];
  my $n = sysread $p->[0], my $buf, 65536;
  return 1 if !defined $n && $! == $EINTR;
  if ($n) {
    if (my $sp = $spool{$p->[1]}) {
      my $i = $p->[2] eq "O" ? 4 : 5;
      my $room = $sp->[1] - $sp->[$i];
      syswrite $sp->[$i - 2], $buf, $room < $n ? $room : $n if $room > 0;
      $sp->[$i] += $n;
    }
    return 1 if $detached;
    frame($p->[1], $p->[2], $buf);
    return 1;
  }
  delete $pipe{fileno $p->[0]};
  close $p->[0];
  $watched_fds = undef;
  return 0;
}

sub reap {
  while ((my $pid = waitpid(-1, $WNOHANG)) > 0) {
    my $status = $?;
    delete $stray{$pid};
    if (defined(my $lane = $shell{$pid})) { shell_gone($lane, $status); next }
    defined(my $serial = delete $job{$pid}) or next;
    delete $pid_of{$serial};
    # what the job left running in its process group ends with it, as with the sh loop
    kill "KILL", -$pid;
    # All the job wrote is in its pipes now. A process that left the group may still hold them:
    # take what is there and close them rather than wait for it.
    for my $p (grep { $_->[3] == $pid } values %pipe) {
      drain_now($p, \&drain);
      if ($pipe{fileno $p->[0]}) { delete $pipe{fileno $p->[0]}; close $p->[0]; $watched_fds = undef }
    }
    # a job nothing downstream reads from leaves nothing behind; the folder of its run goes once empty
    remove_workdir($serial);
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
  if ($line =~ /^r (\d+) (\d+) ([01]) (.*)$/s) { start($1, $2, $3, words($4)) }
  elsif ($line =~ /^k (\d+) \d+ ([A-Z0-9]+)$/) {
    if (defined(my $lane = $slot_job{$1})) {
      my $sl = $slot{$lane} or return;
      kill $2, -$sl->[0];
      $sl->[5] = 1 if $2 eq "KILL";
      return;
    }
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
# The shells of the lanes the controller will use start now, side by side, while its first requests
# are on their way: one shell start before the first jobs instead of one after another per lane.
if ($SLOTS && $LANES) {
  my @started = grep { slot_fork($_) } 0 .. ($LANES > 64 ? 63 : $LANES - 1);
  slot_ready($_) for @started;
}
my $in = "";
for (;;) {
  ($chld = 0, reap()) if $chld || %job;
  watch_turn() if %watch;
  detached_turn() if $detached;
  # status lines read while a lane was starting
  read_status(1) if index($status_in, "\n") >= 0;
  if ($ended || length $reply > 65536) { put($reply); ($reply, $ended) = ("", 0) }
  if (!defined $watched_fds) {
    $watched_fds = "";
    vec($watched_fds, $_, 1) = 1 for 0, fileno $wake_r, keys %pipe, $SLOTS ? fileno $status_r : ();
  }
  my $rin = $watched_fds;
  vec($rin, fileno $_->[0], 1) = 1 for map { @$_ } values %watched;
  # A SIGCHLD that lands between reap and select runs its (deferred) handler only after select
  # returns, so the self-pipe cannot always wake us: poll every 10 ms while jobs run.
  vec($rin, 0, 1) = 0 if $detached;
  # Slot shells wake it by a status line or by the end of their pipes: no polling for them, but
  # for a shell sent a KILL (a process outside its group may hold its pipes).
  my $n = select(my $rout = $rin, undef, undef, $detached ? 0.25 : %young ? 0.005 : %job || grep({ $_->[5] } values %slot) ? 0.01 : %watch ? 0.2 : undef);
  for my $lane (keys %young) {
    next if $n > 0 && ++$young{$lane} < 4;
    delete $young{$lane};
    $watched{$lane} = $slot{$lane}[9];
  }
  next if $n <= 0;
  sysread $wake_r, my $junk, 4096 if vec($rout, fileno $wake_r, 1);
  for my $fd (keys %pipe) { drain($pipe{$fd}) if vec($rout, $fd, 1) }
  for my $p (map { @$_ } values %watched) {
    # (a lane dropped in this turn has closed its pipes)
    my $fd = fileno $p->[0];
    sdrain($p) if defined $fd && vec($rout, $fd, 1);
  }
  read_status() if $SLOTS && vec($rout, fileno $status_r, 1);
  next unless vec($rout, 0, 1);
  my $got = sysread STDIN, $in, 65536, length $in;
  next if !defined $got && $! == $EINTR;
  lost(0), next unless $got;
  while ((my $i = index $in, "\n") >= 0) {
    my $line = substr $in, 0, $i + 1, "";
    chop $line;
    request($line);
  }
}
