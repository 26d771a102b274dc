// A job's cancellation, handed to its transport as an AbortSignal. Node's AbortController is an
// EventTarget with its own allocation and bookkeeping per listener; a run starts one per job, so
// this keeps only what transports use of it: `aborted`, `reason`, and 'abort' listeners.

type Listener = (() => void) | { handleEvent(): void };

export class JobCancel {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Listener[] | undefined;

  /** The transports' view: an AbortSignal in all they use of one. */
  get signal(): AbortSignal {
    return this as unknown as AbortSignal;
  }

  addEventListener(type: string, fn: Listener): void {
    if (type !== 'abort' || this.aborted) return;
    (this.listeners ??= []).push(fn);
  }

  removeEventListener(type: string, fn: Listener): void {
    if (type !== 'abort' || !this.listeners) return;
    const i = this.listeners.indexOf(fn);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  /** Aborts once: each listener runs once, as with `{ once: true }`. */
  abort(reason: unknown = new Error('This operation was aborted')): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners ?? [];
    this.listeners = undefined;
    for (const fn of listeners) {
      if (typeof fn === 'function') fn();
      else fn.handleEvent();
    }
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }
}
