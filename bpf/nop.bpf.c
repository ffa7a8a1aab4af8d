// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The cheapest XDP program: the baseline that benchmarks subtract from farmlb_xdp. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int farmlb_nop(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
