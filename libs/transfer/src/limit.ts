// At most `total` tasks at once, and at most `perKey` for one key (one host: sshd's MaxSessions,
// 10 by default, caps the sessions one multiplexed connection may carry).
export class Limiter {
  private running = 0;
  private readonly perKeyRunning = new Map<string, number>();
  private readonly queue: Array<{ key: string; start: () => void }> = [];

  constructor(
    private readonly total: number,
    private readonly perKey: number = Infinity,
  ) {}

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        key,
        start: () => {
          fn().then(resolve, reject).finally(() => {
            this.running -= 1;
            this.perKeyRunning.set(key, (this.perKeyRunning.get(key) ?? 1) - 1);
            this.pump();
          });
        },
      });
      this.pump();
    });
  }

  private pump(): void {
    for (let i = 0; i < this.queue.length && this.running < this.total; ) {
      const item = this.queue[i] as { key: string; start: () => void };
      if ((this.perKeyRunning.get(item.key) ?? 0) >= this.perKey) {
        i += 1;
        continue;
      }
      this.queue.splice(i, 1);
      this.running += 1;
      this.perKeyRunning.set(item.key, (this.perKeyRunning.get(item.key) ?? 0) + 1);
      item.start();
    }
  }
}
