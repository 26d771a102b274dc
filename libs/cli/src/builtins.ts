// The docopt package, when it loads, replaces String.prototype.startsWith and endsWith with
// polyfills of its own, written in sloppy mode: each call boxes the string, and every command then
// pays about three times the builtin's cost wherever it asks (records, paths, frames). docopt's own
// calls need nothing the builtins lack, so main.ts imports this module before docopt, which keeps
// the builtins, and puts them back once docopt has loaded.
const { startsWith, endsWith } = String.prototype;

export function restoreStringBuiltins(): void {
  String.prototype.startsWith = startsWith;
  String.prototype.endsWith = endsWith;
}
