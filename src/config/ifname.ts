// Which strings may name a network interface here. Linux allows almost any 1–15 bytes, but
// farmlb builds /proc/sys paths from the name ("net/ipv4/conf/<name>/…"): "." and ".." would
// leave the interface's directory, and "all" and "default" are the kernel's directories that
// change every interface (or every future one) at once. None of these is a real interface.

/** Linux IFNAMSIZ is 16 including the NUL; no "/", ":" or blanks. */
const IFNAME_PATTERN = /^[^\s/:]{1,15}$/;
/** Names of /proc/sys/net/ipv{4,6}/conf entries that are not interfaces, and path steps. */
export const RESERVED_IFNAMES: readonly string[] = ['.', '..', 'all', 'default'];

export function isInterfaceName(name: string): boolean {
  return IFNAME_PATTERN.test(name) && !RESERVED_IFNAMES.includes(name);
}
