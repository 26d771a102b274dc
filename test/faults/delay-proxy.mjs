// A TCP relay that holds every chunk MS milliseconds in each direction: a slow (high-latency) host
// for the fault suite, since this kernel has no netem. Loopback only.
//   node delay-proxy.mjs LISTEN_ADDR:PORT TARGET_ADDR:PORT MS
// Prints "ready" on stdout once listening.
import net from 'node:net';

const [listen, target, ms] = process.argv.slice(2);
const [la, lp] = listen.split(':');
const [ta, tp] = target.split(':');
const delay = Number(ms);

function relay(from, to) {
  // same delay for every chunk, so timers fire in arrival order and the stream stays in order
  from.on('data', (buf) => setTimeout(() => to.destroyed || to.write(buf), delay));
  from.on('end', () => setTimeout(() => to.end(), delay));
  from.on('error', () => to.destroy());
}

net
  .createServer((client) => {
    const server = net.connect(Number(tp), ta);
    relay(client, server);
    relay(server, client);
    client.on('close', () => setTimeout(() => server.destroy(), delay));
    server.on('close', () => setTimeout(() => client.destroy(), delay));
  })
  .listen(Number(lp), la, () => console.log('ready'));
