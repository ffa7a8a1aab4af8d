// A client of long-lived TCP connections through a VIP, shared by the lab tests
// (test/lab/helpers/long-conns.ts) and the handover benchmark (src/bench/handover.ts): one
// HTTP/1.1 keep-alive connection per entry, a request on each every `intervalMs`, one in
// flight at a time; the servers answer their node's name. Over stdin: "report" prints, per
// connection, which node answered first, how many answers, the longest wait, whether it
// closed or failed and how many answers came from another node; "reset" restarts the wait
// and mismatch counts; "exit" ends it (closing every connection normally).
//
// Plain CommonJS run with `node -e`; argv: JSON of { conns: [{ src, host, port }], intervalMs }.
export const LONG_CLIENT_JS = String.raw`
const net = require('net');
const { conns, intervalMs } = JSON.parse(process.argv[1]);
const state = conns.map((c) => ({ ...c, servedBy: null, answered: 0, maxWaitMs: 0, sentAt: 0, closed: false, error: null, mismatches: 0, buf: '' }));
for (const s of state) {
  const sock = net.connect({ host: s.host, port: s.port, localAddress: s.src });
  s.sock = sock;
  sock.setNoDelay(true);
  sock.on('data', (d) => {
    s.buf += d.toString('latin1');
    for (;;) {
      const end = s.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number((/content-length: *(\d+)/i.exec(s.buf.slice(0, end)) || [])[1] || 0);
      if (s.buf.length < end + 4 + len) return;
      const body = s.buf.slice(end + 4, end + 4 + len).trim();
      s.buf = s.buf.slice(end + 4 + len);
      if (s.servedBy === null) s.servedBy = body; else if (body !== s.servedBy) s.mismatches++;
      s.answered++;
      s.maxWaitMs = Math.max(s.maxWaitMs, Date.now() - s.sentAt);
      s.sentAt = 0;
    }
  });
  sock.on('error', (e) => { s.error = s.error || e.code || e.message; });
  sock.on('close', () => { s.closed = true; });
}
setInterval(() => {
  for (const s of state) {
    if (s.closed || s.sentAt !== 0 || s.sock.connecting) continue;
    s.sentAt = Date.now();
    s.sock.write('GET / HTTP/1.1\r\nHost: vip\r\n\r\n');
  }
}, intervalMs);
const report = () => state.map((s) => ({ src: s.src, servedBy: s.servedBy, answered: s.answered,
  maxWaitMs: Math.max(s.maxWaitMs, s.sentAt ? Date.now() - s.sentAt : 0), pendingMs: s.sentAt ? Date.now() - s.sentAt : 0,
  closed: s.closed, error: s.error, mismatches: s.mismatches }));
let input = '';
process.stdin.on('data', (d) => {
  input += d.toString();
  let nl;
  while ((nl = input.indexOf('\n')) >= 0) {
    const cmd = input.slice(0, nl).trim();
    input = input.slice(nl + 1);
    if (cmd === 'report') process.stdout.write(JSON.stringify(report()) + '\n');
    else if (cmd === 'reset') { for (const s of state) { s.maxWaitMs = 0; s.mismatches = 0; } process.stdout.write('[]\n'); }
    else if (cmd === 'exit') process.exit(0);
  }
});
process.stdin.on('end', () => process.exit(0));
`;
