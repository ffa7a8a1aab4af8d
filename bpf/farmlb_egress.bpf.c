// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * farmlb_egress — tc egress (clsact) program. docs/datapath.md §11; the TS model is
 * egressRewrite() in src/dataplane/model.ts, held equal to this by test/bpf/egress.test.ts.
 *
 * IPv6 has no arp_announce: when a node resolves a client, the kernel may send its
 * neighbour solicitation from the VIP with the node's own MAC in the source link-layer
 * option, and the client then repoints its entry for the VIP to this node. This program
 * rewrites that option (and the target link-layer option of an advertisement the kernel
 * sends from a VIP) to the MAC the farm announces for the VIP, fixing the checksum.
 *
 * Its own translation unit, linked into farmlb.bpf.o with farmlb_xdp (bpf/Makefile): it
 * reads the XDP program's maps, declared here extern (farmlb_maps.h). The object's license
 * is farmlb.bpf.c's.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define FARMLB_MAPS_EXTERN
#include "farmlb_abi.h"
#include "farmlb_hash.h"
#include "farmlb_mac.h"
#include "farmlb_maps.h"
#include "farmlb_nd.h"

/* Where the kernel puts the one link-layer option of its NS/NA: right after the 24-byte
 * message, behind an untagged Ethernet header (a VLAN device's tag is not in the data at
 * egress). Offsets from the start of the frame. */
#define FARMLB_EGRESS_ND_OFF (ETH_HLEN + sizeof(struct ipv6hdr))
#define FARMLB_EGRESS_OPT_OFF (FARMLB_EGRESS_ND_OFF + sizeof(struct farmlb_nd_msg))
#define FARMLB_EGRESS_CSUM_OFF (FARMLB_EGRESS_ND_OFF + 2)

/* The MAC clients must see for this VIP in a solicitation/advertisement it sends, or 0 to
 * leave the option alone. client = the neighbour the message is about. */
static __always_inline int egress_announce(__u32 slot, const struct farmlb_slot_cfg *cfg,
					   const struct farmlb_vip *vip, const __u8 *client, __u8 *mac)
{
	__u8 key[FARMLB_JHASH_MAX_LEN] FARMLB_JHASH_KEY_ALIGN;
	struct farmlb_node *node;
	__u32 group = vip->arp_group, nidx;
	__u8 owner;

	if (vip->mode != FARMLB_MODE_DIRECTED) {
		mac_copy(mac, cfg->vmac);
		return 1;
	}
	/* vmac_directed: each node announces itself, unless an arp rule spreads the clients;
	 * then the client must keep the MAC of the owner of its bucket. */
	if (group >= FARMLB_MAX_GROUPS)
		return 0;
	__builtin_memcpy(key, client, 16);
	owner = bucket_owner(slot, group, farmlb_bucket_of(farmlb_jhash(key, 16, cfg->hash_seed)));
	if (owner >= FARMLB_MAX_NODES)
		return 0;
	nidx = slot * FARMLB_MAX_NODES + owner;
	node = bpf_map_lookup_elem(&farmlb_nodes, &nidx);
	if (!node || !(node->flags & FARMLB_NODE_F_KNOWN))
		return 0;
	mac_copy(mac, node->mac);
	return 1;
}

SEC("tc")
int farmlb_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct farmlb_nd_opt_lladdr old_opt __attribute__((aligned(4)));
	struct farmlb_nd_opt_lladdr new_opt __attribute__((aligned(4)));
	struct farmlb_vip_key vkey = { .family = 6 };
	struct farmlb_slot_cfg *cfg;
	struct farmlb_nd_msg *nd;
	struct farmlb_vip *vip;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	__u8 client[16];
	__u32 slot;
	__s64 diff;

	/* Every other packet leaves after these checks; TC_ACT_UNSPEC lets the next filter
	 * (if any) decide, so farmlb's filter never ends another tool's chain. */
	nd = (void *)(ip6h + 1);
	if ((void *)nd + sizeof(struct farmlb_nd_msg) + sizeof(struct farmlb_nd_opt_lladdr) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6h->nexthdr != IPPROTO_ICMPV6)
		return TC_ACT_UNSPEC;
	if (nd->type != FARMLB_ND_NEIGHBOUR_SOLICIT && nd->type != FARMLB_ND_NEIGHBOUR_ADVERT)
		return TC_ACT_UNSPEC;
	__builtin_memcpy(&old_opt, (void *)(nd + 1), sizeof(old_opt));
	if (old_opt.type != (nd->type == FARMLB_ND_NEIGHBOUR_SOLICIT ? FARMLB_ND_OPT_SLLA : FARMLB_ND_OPT_TLLA) || old_opt.len != 1)
		return TC_ACT_UNSPEC;

	slot = hot_active_slot();
	vkey.slot = slot;
	__builtin_memcpy(vkey.addr, ip6h->saddr.s6_addr, 16);
	vip = bpf_map_lookup_elem(&farmlb_vips, &vkey);
	if (!vip)
		return TC_ACT_UNSPEC;
	cfg = hot_slot_cfg(slot);
	/* The neighbour concerned: the solicited target, or the advertisement's receiver. */
	if (nd->type == FARMLB_ND_NEIGHBOUR_SOLICIT)
		__builtin_memcpy(client, nd->target, 16);
	else
		__builtin_memcpy(client, ip6h->daddr.s6_addr, 16);

	new_opt = old_opt;
	if (!egress_announce(slot, cfg, vip, client, new_opt.mac) || mac_equal(new_opt.mac, old_opt.mac))
		return TC_ACT_UNSPEC;
	diff = bpf_csum_diff((__be32 *)&old_opt, sizeof(old_opt), (__be32 *)&new_opt, sizeof(new_opt), 0);
	if (diff < 0)
		return TC_ACT_UNSPEC;
	/* store_bytes first; l4_csum_replace then applies the difference, and leaves a
	 * CHECKSUM_PARTIAL packet's field (the pseudo-header sum only) alone. */
	if (bpf_skb_store_bytes(skb, FARMLB_EGRESS_OPT_OFF, &new_opt, sizeof(new_opt), 0))
		return TC_ACT_UNSPEC;
	bpf_l4_csum_replace(skb, FARMLB_EGRESS_CSUM_OFF, 0, diff, 0);
	return TC_ACT_UNSPEC;
}

