// The interface's promiscuous flag, as `ip link set promisc` sets it. That flag is the
// administrative one: tcpdump and bridges raise a separate counter (promiscuity), which
// `ip -j link` does not report as the PROMISC flag, so farmlb never mistakes a running
// capture for an operator's setting, and turning its flag off never stops a capture.

import { ip } from './ip.js';

export async function isPromisc(ifname: string): Promise<boolean> {
  const links = JSON.parse(await ip(['-j', 'link', 'show', 'dev', ifname])) as { flags?: string[] }[];
  return links[0]?.flags?.includes('PROMISC') ?? false;
}

export async function setPromisc(ifname: string, on: boolean): Promise<void> {
  await ip(['link', 'set', 'dev', ifname, 'promisc', on ? 'on' : 'off']);
}
