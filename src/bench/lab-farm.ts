// The bench lab's fixed farm: the VIP, its HTTP port and the hash seed the failover,
// handover and survivors benchmarks share (src/bench/failover.ts builds the lab).

export const HASH_SEED = 0x2545f491;
export const HTTP_PORT = 8080;
export const VIP = '10.80.0.100';
