// When a lease renewal reaches the kernel. The membership renews on every acknowledgement
// (hundreds a second in a 16-node farm), and each write is two bpf syscalls plus a queued
// decision; writing only the renewals that extend the written deadline by a step keeps the
// kernel's lease within one step of the engine's. Only ever shorter, never longer: safe.

/**
 * Whether to write `next` over the `written` deadline (CLOCK_MONOTONIC ns; 0n = revoked).
 * Without a step every change is written. A revocation or a shorter deadline always is; a
 * longer one once it extends the written one by `stepNs`, or when the written one would run
 * out within a step (renewals that stop right after a skipped one cost at most a step).
 */
export function leaseWriteNeeded(next: bigint, written: bigint, nowNs: bigint, stepNs?: bigint): boolean {
  if (next === written) return false;
  if (stepNs === undefined || next < written || written === 0n) return true;
  return next - written >= stepNs || written - nowNs < stepNs;
}
