// One established TCP connection to a VIP, held in a namespace of its own, for the handover
// cases of the per-packet benchmark: BPF_PROG_TEST_RUN in that namespace makes the program's
// socket lookup find a real ESTABLISHED socket (docs/datapath.md §12), as on a previous owner
// that still serves the connection. The namespace is flb-bench-<pid>; close() removes it.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run } from './proc.js';

export interface HeldConnection {
  /** /run/netns/NAME: pass to testRun. */
  netnsPath: string;
  vip: string;
  vipPort: number;
  client: string;
  clientPort: number;
  close(): Promise<void>;
}

// CommonJS for `node -e`: listen on the VIP with a large backlog, connect once from the
// client address, print the client's port, hold until stdin closes.
const HOLDER_JS = String.raw`
const net = require('net');
const [vip, port, client] = JSON.parse(process.argv[1]);
const server = net.createServer((s) => s.on('error', () => {}));
server.listen({ host: vip, port, backlog: 1024 }, () => {
  const c = net.connect({ host: vip, port, localAddress: client }, () => process.stdout.write(JSON.stringify({ clientPort: c.localPort }) + '\n'));
  c.on('error', (e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export async function holdConnection(vip: string, vipPort: number, client: string): Promise<HeldConnection> {
  const ns = `flb-bench-${process.pid}`;
  const netnsPath = `/run/netns/${ns}`;
  const inNs = (...args: string[]): Promise<unknown> => run('ip', ['-n', ns, ...args]);
  let child: ChildProcess | undefined;
  const close = async (): Promise<void> => {
    child?.stdin?.end();
    child?.kill('SIGKILL');
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  try {
    await run('ip', ['netns', 'add', ns]);
    await inNs('link', 'set', 'lo', 'up');
    await inNs('addr', 'add', `${vip}/32`, 'dev', 'lo');
    await inNs('addr', 'add', `${client}/32`, 'dev', 'lo');
    child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, '-e', HOLDER_JS, JSON.stringify([vip, vipPort, client])], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection holder: no answer in 10 s ${stderr}`)), 10_000);
      createInterface({ input: child!.stdout! }).once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`connection holder exited (${code}): ${stderr}`));
      });
    });
    const { clientPort } = JSON.parse(line) as { clientPort: number };
    return { netnsPath, vip, vipPort, client, clientPort, close };
  } catch (err) {
    await close();
    throw err;
  }
}
