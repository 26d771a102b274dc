# cm-fetch on a host, one process per host for the whole run, in the login directory: it answers
# requests on stdin, one at a time, so a batch of job folders costs no ssh session, no shell and no
# fork (fetch.sh, the fallback, costs one session and six processes a batch). It travels inside one
# sh single-quoted word, so it holds no single quote.
#
# Requests, one line each, names hex-encoded (any byte but NUL may be in a name):
#   f V MIN HEX...  one tar archive (ustar, GNU long names) of those paths, relative to the login
#                directory, then, with V=1, the sha256 of each file, hashed in the same read that
#                sends it (files of 4 MiB and more: by openssl in parallel, as it uses the CPU
#                SHA instructions where Digest::SHA does not). With MIN > 0, a plain file of MIN
#                bytes or more is only announced (type B, its size, no body): the client fetches it
#                on a session of its own straight into its file (send.sh), where this stream would
#                pass every byte through the client. Not with V=1 where openssl is missing.
#   r HEX...     remove those job folders, then each run folder left empty
# After the archive (two zero blocks), reply lines, names escaped as \\ \n \r:
#   cm-sha256 HEX NAME    cm-missing NAME    cm-changed NAME (size changed while read: fetch again)
#   cm-error TEXT         cm-end (the reply is over)
# On start it says "cm-fetch-server 1", or "cm-fetch-server 0" and ends where it cannot hash.
use strict;
my $sha = eval { require Digest::SHA; 1 };
$| = 1;
if (!$sha) { print "cm-fetch-server 0\n"; exit 0; }
binmode STDIN;
binmode STDOUT;
my $openssl;
for my $d (split /:/, $ENV{PATH} || "/usr/bin:/bin") {
  if ($d ne "" && -x "$d/openssl") { $openssl = "$d/openssl"; last; }
}
my $BIG = 4 * 1024 * 1024;
my $CHUNK = 1024 * 1024;
my $out = "";
my @tail;

sub flush_out {
  while (length $out) {
    my $n = syswrite(STDOUT, $out);
    exit 1 unless defined $n;    # the client is gone
    substr($out, 0, $n) = "";
  }
}
sub put { $out .= $_[0]; flush_out() if length($out) >= 262144; }
sub esc { my $s = $_[0]; $s =~ s/\\/\\\\/g; $s =~ s/\n/\\n/g; $s =~ s/\r/\\r/g; $s }
sub octal { my ($v, $w) = @_; sprintf("%0*o", $w, $v) }

# sizes of 8 GiB and more in GNU base-256, as GNU tar writes them
sub size_field {
  my $v = $_[0];
  return octal($v, 11) if $v < 8 ** 11;
  my $s = "";
  for (1 .. 11) { $s = chr($v % 256) . $s; $v = int($v / 256); }
  "\x80" . $s;
}

sub header {
  my ($name, $mode, $size, $mtime, $type, $link) = @_;
  long_entry("L", $name) if length($name) > 99;
  long_entry("K", $link) if length($link) > 99;
  my $h = pack("a100 a8 a8 a8 a12 a12 a8 a1 a100 a6 a2 a32 a32 a8 a8 a155 a12",
    substr($name, 0, 99), octal($mode & 07777, 7), octal(0, 7), octal(0, 7), size_field($size),
    octal($mtime > 0 ? $mtime : 0, 11), " " x 8, $type, substr($link, 0, 99), "ustar", "00",
    "root", "root", "", "", "", "");
  my $sum = unpack("%32C*", $h);
  substr($h, 148, 8) = sprintf("%06o", $sum) . "\0 ";
  put($h);
}

sub long_entry {
  my ($type, $text) = @_;
  header("././\@LongLink", 0644, length($text) + 1, 0, $type, "");
  put($text . "\0" . pad(length($text) + 1));
}

sub pad { "\0" x ((512 - $_[0] % 512) % 512) }

sub send_file {
  my ($p, $size, $mode, $mtime, $verify) = @_;
  my $fh;
  if (!open($fh, "<", $p)) { push @tail, "cm-error " . esc("$p: $!"); return; }
  binmode $fh;
  my ($ctx, $oh);
  if ($verify) {
    if ($openssl && $size >= $BIG && $p !~ /[\\\n\r]/) {
      $oh = undef unless open($oh, "-|", $openssl, "dgst", "-sha256", "-r", "./$p");
    }
    $ctx = Digest::SHA->new(256) unless $oh;
  }
  header($p, $mode, $size, $mtime, "0", "");
  flush_out();
  my ($got, $buf) = (0, "");
  while ($got < $size) {
    my $want = $size - $got < $CHUNK ? $size - $got : $CHUNK;
    my $n = sysread($fh, $buf, $want);
    last if !$n;
    $got += $n;
    $ctx->add($buf) if $ctx;
    $out = $buf;
    flush_out();
  }
  my $changed = $got != $size;
  if ($changed) { $out = "\0" x ($size - $got); flush_out(); }
  else { $changed = 1 if sysread($fh, $buf, 1); }
  close $fh;
  put(pad($size));
  my $hex;
  if ($oh) {
    my $line = <$oh>;
    close $oh;
    if (defined $line && $line =~ /^([0-9a-f]{64}) /) { $hex = $1; }
    else { $openssl = undef; $changed = 1; }    # hash in perl from now on; this file again
  } elsif ($ctx) {
    $hex = $ctx->hexdigest;
  }
  if ($changed) { push @tail, "cm-changed " . esc($p); }
  elsif (defined $hex) { push @tail, "cm-sha256 $hex " . esc($p); }
}

sub send_path {
  my ($p, $verify, $min) = @_;
  my @st = lstat($p);
  if (!@st) { push @tail, "cm-missing " . esc($p); return; }
  my ($mode, $size, $mtime) = @st[2, 7, 9];
  if (-l _) {
    header($p, $mode, 0, $mtime, "2", readlink($p) // "");
  } elsif (-d _) {
    header("$p/", $mode, 0, $mtime, "5", "");
    my $dh;
    if (!opendir($dh, $p)) { push @tail, "cm-error " . esc("$p: $!"); return; }
    my @names = sort grep { $_ ne "." && $_ ne ".." } readdir $dh;
    closedir $dh;
    send_path("$p/$_", $verify, $min) for @names;
  } elsif (-f _ && $min > 0 && $size >= $min && ($openssl || !$verify)) {
    header($p, $mode, $size, $mtime, "B", "");
  } elsif (-f _) {
    send_file($p, $size, $mode, $mtime, $verify);
  } else {
    # fifo, device or socket: announced so the client can say what it refused
    header($p, $mode, 0, $mtime, -p _ ? "6" : -c _ ? "3" : -b _ ? "4" : "8", "");
  }
}

sub unhex { map { pack("H*", $_) } @_ }

# a job folder and all in it, never through a symlink (lstat); a folder the job left read-only is
# opened up first. File::Path::remove_tree took 2.5 times the CPU per folder (its chdir and checks).
sub rm_tree {
  my $p = $_[0];
  my @st = lstat($p);
  return if !@st;
  if (-d _) {
    chmod(($st[2] & 07777) | 0700, $p) if ($st[2] & 0700) != 0700;
    my $dh;
    if (opendir($dh, $p)) {
      my @names = grep { $_ ne "." && $_ ne ".." } readdir $dh;
      closedir $dh;
      rm_tree("$p/$_") for @names;
    }
    rmdir($p) or push @tail, "cm-error " . esc("$p: $!");
  } else {
    unlink($p) or push @tail, "cm-error " . esc("$p: $!");
  }
}

print "cm-fetch-server 1\n";
while (defined(my $line = <STDIN>)) {
  chomp $line;
  my ($op, @args) = split / /, $line;
  @tail = ();
  if ($op eq "f") {
    my ($verify, $min) = splice(@args, 0, 2);
    send_path($_, $verify, $min) for unhex(@args);
    put("\0" x 1024);
  } elsif ($op eq "r") {
    for my $d (unhex(@args)) {
      rm_tree($d);
      rmdir($1) if $d =~ m{^(.+)/[^/]+$};
    }
  } else {
    push @tail, "cm-error " . esc("unknown request $op");
  }
  put(join("", map { "$_\n" } @tail, "cm-end"));
  flush_out();
}
