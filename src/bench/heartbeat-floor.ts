// The floor under the scale rows' heartbeat CPU (docs/benchmarks.md, "The floor"): what this
// machine charges for heartbeats at a farm's rate and fan-out with no protocol at all, so the
// daemons' figure reads as a ratio against a baseline measured in the same window, not as
// an absolute that mostly says how the host wakes a process.
//
// Run by the failover bench as a child, one per mode, in namespaces of its lab:
//   node dist/bench/heartbeat-floor.js timer <pulseMs>
//     a timer at the pulse and nothing else: the price of waking a Node process;
//   node dist/bench/heartbeat-floor.js datagrams <pulseMs> <bindAddr> <peerAddr> <count> <bytes> [port]
//     each pulse: sign one heartbeat-sized body (HMAC-SHA256) and send it `count` times to the
//     peer (the addon's socket, as the daemon's transport sends), then drain what arrived and
//     verify and JSON.parse each datagram — the daemon's I/O, crypto and parse per datagram,
//     without the checks, the engine and the daemon behind them. Two such children face each
//     other across the lab's bridge, so each receives `count` a pulse, as a node does.
// stdin: "start" (begin the window), "stop" (end it: a last drain, then one JSON line {cpuUs,
// sent, received, bad} on stdout, and exit). cpuUs is the process's (user + system), as the
// bench counts a daemon's. "ready" is printed once the socket is bound.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import readline from 'node:readline';
import { loadNative } from '../addon/native.js';

const MAC_LEN = 32;

function main(argv: string[]): void {
  const [mode, pulseArg, bindAddr, peerAddr, countArg, bytesArg, portArg] = argv;
  const pulseMs = Number(pulseArg);
  if (!(pulseMs > 0) || (mode !== 'timer' && mode !== 'datagrams')) {
    process.stderr.write('usage: heartbeat-floor.js timer <pulseMs> | datagrams <pulseMs> <bindAddr> <peerAddr> <count> <bytes> [port]\n');
    process.exit(2);
  }
  const stats = { sent: 0, received: 0, bad: 0 };
  let onPulse = (): void => undefined;
  let drain = (): void => undefined;
  if (mode === 'datagrams') {
    const count = Number(countArg);
    const bytes = Number(bytesArg);
    // The same key in both children (a bench, not a secret): each verifies the other's MACs.
    const key = createHash('sha256').update('farmlb bench floor').digest();
    // The membership's port + 1 by default: the floor's hosts are not nodes.
    const port = Number(portArg ?? 4801);
    const sock = loadNative().openUdpBatchSocket(bindAddr!, port, 60_000);
    let seq = 0;
    drain = () => {
      for (const d of sock.drain()) {
        const mac = createHmac('sha256', key).update(d.data.subarray(MAC_LEN)).digest();
        if (d.data.length <= MAC_LEN || !timingSafeEqual(mac, d.data.subarray(0, MAC_LEN))) {
          stats.bad++;
          continue;
        }
        JSON.parse(d.data.subarray(MAC_LEN).toString());
        stats.received++;
      }
    };
    onPulse = () => {
      drain();
      // A JSON body that makes the datagram `bytes` long, so that HMAC and parse handle as many bytes as the daemon's.
      const head = { s: ++seq, t: process.hrtime.bigint().toString(36), f: '' };
      head.f = 'x'.repeat(Math.max(0, bytes - MAC_LEN - JSON.stringify(head).length));
      const body = Buffer.from(JSON.stringify(head));
      const frame = Buffer.concat([createHmac('sha256', key).update(body).digest(), body]);
      for (let i = 0; i < count; i++) if (sock.send(frame, peerAddr!, port) === 0) stats.sent++;
    };
  }
  setInterval(() => onPulse(), pulseMs);
  let cpu0 = process.cpuUsage();
  let base = { ...stats };
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'start') {
      cpu0 = process.cpuUsage();
      base = { ...stats };
    } else if (line === 'stop') {
      // What arrived since the last pulse is the window's too.
      drain();
      const cpu = process.cpuUsage(cpu0);
      process.stdout.write(`${JSON.stringify({
        cpuUs: cpu.user + cpu.system,
        sent: stats.sent - base.sent, received: stats.received - base.received, bad: stats.bad - base.bad,
      })}\n`);
      process.exit(0);
    }
  });
  process.stdout.write('ready\n');
}

main(process.argv.slice(2));
