import { describe, expect, it } from 'vitest';
import { parseUsage } from './main';

const native = (f: unknown): boolean => /\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(f));

describe('string builtins', () => {
  it('are the engine\'s own once docopt has loaded, and docopt still parses', () => {
    expect(native(String.prototype.startsWith)).toBe(true);
    expect(native(String.prototype.endsWith)).toBe(true);
    const args = parseUsage('Usage:\n  t [--long X] <a>\n\nOptions:\n  --long X  a value\n', ['--long', 'v', 'b']);
    expect(args).toMatchObject({ '--long': 'v', '<a>': 'b' });
  });
});
