import { describe, expect, it } from 'vitest';
import { JobCancel } from './cancel';

describe('JobCancel', () => {
  it('calls each abort listener once, not removed ones, and none added after', () => {
    const c = new JobCancel();
    const seen: string[] = [];
    const a = (): void => void seen.push('a');
    const b = (): void => void seen.push('b');
    c.signal.addEventListener('abort', a, { once: true });
    c.signal.addEventListener('abort', b, { once: true });
    c.signal.removeEventListener('abort', b);
    expect(c.signal.aborted).toBe(false);
    c.abort();
    c.abort();
    c.signal.addEventListener('abort', b);
    expect([c.signal.aborted, seen]).toEqual([true, ['a']]);
  });
});
