// The live page: GET / is the report as it stands, GET /data its data (JSON), GET /events a stream of
// server-sent events, one each time the run changed (at most every `minGapMs`), and `end` when it ended.
// Read-only: nothing else is served and no other method is accepted.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pack, type ReportData } from './data';
import { reportHtml } from './page';

export interface LiveServer {
  url: string;
  /** tell the pages the run changed */
  changed(): void;
  /**
   * Tell the pages the run ended; resolves once each page that was open has fetched the final data
   * (or after `graceMs`), so closing the server then loses no page its last picture.
   */
  ended(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function serveLive(snapshot: () => ReportData, opts: { host: string; port: number; minGapMs?: number }): Promise<LiveServer> {
  const clients = new Set<ServerResponse>();
  const gap = opts.minGapMs ?? 500;
  let timer: NodeJS.Timeout | undefined;
  let last = 0;
  let over = false;
  let finalFetches = 0;
  let onFinalFetch = () => {};
  const send = (text: string) => {
    for (const c of clients) c.write(text);
  };
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(reportHtml(snapshot()));
    } else if (path === '/data') {
      res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(pack(snapshot())));
      if (over) {
        finalFetches += 1;
        onFinalFetch();
      }
    } else if (path === '/events') {
      res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write(over ? 'event: end\ndata: end\n\n' : 'retry: 2000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else if (path === '/favicon.ico') {
      res.writeHead(204, headers).end();
    } else {
      res.writeHead(404, headers).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    changed() {
      if (timer || over) return;
      const wait = Math.max(0, last + gap - Date.now());
      timer = setTimeout(() => {
        timer = undefined;
        last = Date.now();
        send(`data: ${last}\n\n`);
      }, wait);
    },
    ended(graceMs = 5000) {
      over = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      const pages = clients.size;
      send('event: end\ndata: end\n\n');
      return new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        onFinalFetch = () => {
          if (finalFetches < pages) return;
          clearTimeout(t);
          resolve();
        };
        onFinalFetch();
      });
    },
    close() {
      if (timer) clearTimeout(timer);
      for (const c of clients) c.end();
      clients.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
