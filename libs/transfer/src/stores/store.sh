# cm-fetch's store on a gathering host (ssh://HOST/PATH), run by the login shell after `op=OP k=PATH`
# (and `w=SHA256` for put). put: stdin into a temp file beside PATH, its sha256 checked against w,
# then renamed onto PATH; on any failure the temp file is removed and nothing is under PATH.
# get: PATH on stdout. list: "SIZE NAME" of every file below PATH. rm: removes PATH.
case $op in
put)
  d=$(dirname -- "$k")
  mkdir -p -- "$d" || exit 1
  t=$(mktemp "$d/.cm-part-XXXXXX") || exit 1
  trap 'rm -f "$t"; exit 1' HUP INT TERM PIPE
  if ! cat >"$t"; then rm -f "$t"; exit 1; fi
  if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum <"$t") || { rm -f "$t"; exit 1; }; else s=$(shasum -a 256 <"$t") || { rm -f "$t"; exit 1; }; fi
  s=${s%% *}
  if [ "$s" != "$w" ]; then rm -f "$t"; printf 'cm-store: got sha256 %s\n' "$s" >&2; exit 3; fi
  chmod 644 "$t" && mv -f "$t" "$k" || { rm -f "$t"; exit 1; }
  ;;
get)
  exec cat -- "$k"
  ;;
list)
  [ -d "$k" ] || exit 0
  find "$k" -type f ! -name '.cm-part-*' -exec sh -c 'for f do printf "%s %s\n" "$(wc -c <"$f" | tr -d " ")" "$f"; done' sh {} +
  ;;
rm)
  rm -f -- "$k"
  ;;
*)
  echo "cm-store: unknown op $op" >&2
  exit 2
  ;;
esac
