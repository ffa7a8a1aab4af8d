// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Drops everything: the ceiling of what an XDP filter can reach on an interface, for
 * benchmarks (scripts/bench) that compare farmlb_xdp with it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int farmlb_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
