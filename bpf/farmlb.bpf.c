// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * farmlb_xdp — decides, for every frame, whether this node of the farm serves it.
 * The semantics are docs/datapath.md, step by step; src/dataplane/model.ts implements
 * the same steps in TypeScript and test/bpf/differential.test.ts holds the two equal.
 *
 * Shape: one default verdict (pass, not a VIP); classify steps for L3 (classify_ipv4,
 * classify_ipv6) and L4 (classify_ports, classify_icmp) that return an enum step, as
 * Katran's process_l3_headers / handle_icmp return an action or "go on"; the entry turns
 * each step into a verdict or the bucket decision; and one exit that counts the verdict per
 * reason and, when a bucket decided, per bucket. The steps are __always_inline: the
 * verifier and the benchmark see one function (docs/benchmarks.md, "The XDP entry in steps").
 * The tc egress program is farmlb_egress.bpf.c, linked into the same object.
 */
#include <linux/bpf.h>
#include <linux/icmpv6.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "farmlb_abi.h"
#include "farmlb_hash.h"
#include "farmlb_maps.h"
#include "farmlb_mac.h"
#include "farmlb_parse.h"
#include "farmlb_nd.h"

/* bucket_stat of a verdict no bucket took part in. */
#define FARMLB_NO_BUCKET 0xffffffffU
/* Low 13 bits of the IPv4 frag_off field: the fragment offset. */
#define FARMLB_IP_OFFSET_MASK 0x1fff

/* ICMPv4 types, with the names and values of <linux/icmp.h>. That header cannot be included
 * here: it pulls <linux/if.h> and through it glibc's <sys/socket.h>, which for the BPF target
 * asks for gnu/stubs-32.h (a multilib package farmlb does not otherwise need). ICMPv6 types
 * come from <linux/icmpv6.h>, which has no such include; ND types from farmlb_nd.h. */
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
/* ICMP error header before the quoted packet: type, code, checksum, 4 bytes of rest. */
#define FARMLB_ICMP_ERR_HLEN 8
/* Bytes of the quoted transport header an ICMP error always carries (RFC 792, RFC 4443). */
#define FARMLB_QUOTED_L4_LEN 8
/* type, code, checksum and the first two bytes of the rest: what both ICMPs always have. */
#define FARMLB_ICMP_MIN_LEN 4

struct verdict {
	__u32 action;
	__u32 reason;
	__u32 bucket_stat; /* group * FARMLB_NBUCKETS + bucket, or FARMLB_NO_BUCKET */
};

static __always_inline void set_verdict(struct verdict *v, __u32 action, __u32 reason)
{
	v->action = action;
	v->reason = reason;
}

/* The one exit: count the verdict (and the bucket) and return it. A packet a bucket decided
 * as PASS_OWNED or DROP_NOT_OWNED — nearly every VIP packet — is counted once, in its
 * bucket's owned / not_owned counter (packets and bytes); the readers add those back into
 * the reason and accepted / dropped totals (farmlb_abi.h, farmlb_bucket_counter). Every
 * other packet is counted per reason and, when a bucket decided, in accepted / dropped. */
static __always_inline int record(struct verdict *v, __u64 bytes)
{
	struct farmlb_counter *cnt;
	struct farmlb_bucket_counter *bcnt;
	__u32 reason = v->reason;
	__u32 key = v->bucket_stat;

	if (key != FARMLB_NO_BUCKET) {
		bcnt = bpf_map_lookup_elem(&farmlb_bucket_stats, &key);
		if (!bcnt) /* key < FARMLB_BUCKET_STATS_ENTRIES: cannot miss */
			return v->action;
		if (reason == FARMLB_R_PASS_OWNED || reason == FARMLB_R_DROP_NOT_OWNED) {
			/* Per-CPU slot: no other CPU writes it, so plain adds are exact. */
			cnt = reason == FARMLB_R_PASS_OWNED ? &bcnt->owned : &bcnt->not_owned;
			cnt->packets++;
			cnt->bytes += bytes;
			return v->action;
		}
		/* accepted = served here: passed, or an ARP/NS this node answered; dropped
		 * (the next field) otherwise. An index rather than a branch: one add. */
		(&bcnt->accepted)[!(v->action == XDP_PASS || reason == FARMLB_R_TX_ARP_REPLY)]++;
	}
	cnt = bpf_map_lookup_elem(&farmlb_stats, &reason);
	if (cnt) {
		cnt->packets++;
		cnt->bytes += bytes;
	}
	return v->action;
}

/* The lease clock, CLOCK_MONOTONIC_COARSE read at most once per tick per CPU. The coarse
 * clock only moves when the tick advances timekeeping, right after jiffies moves, so a
 * reading stays what the helper would return until jiffies changes; bpf_jiffies64() is
 * inlined by the verifier (a load) while the helper costs ~20 ns on the reference VM, and
 * the lease is read for every accepted packet. A reading taken between jiffies moving and
 * timekeeping catching up (microseconds) is one tick old and is kept for a tick: "now"
 * lags CLOCK_MONOTONIC by less than two ticks, and the program may accept traffic that long
 * past the deadline. Whoever waits for a lease to run out adds FARMLB_LEASE_CLOCK_SLACK_NS
 * (farmlb_abi.h, docs/datapath.md §6). */
static __always_inline __u64 lease_clock_ns(void)
{
	__u32 key0 = 0;
	struct farmlb_lease_clock *clk = bpf_map_lookup_elem(&farmlb_lease_clock, &key0);
	__u64 jiffies = bpf_jiffies64();

	if (!clk) /* a one-entry array: cannot miss */
		return bpf_ktime_get_coarse_ns();
	if (clk->jiffies != jiffies) {
		clk->now_ns = bpf_ktime_get_coarse_ns();
		clk->jiffies = jiffies;
	}
	return clk->now_ns;
}

static __always_inline int lease_valid(const struct farmlb_ctl *ctl)
{
	return lease_clock_ns() < hot_lease_deadline_ns();
}

/* Step 2 on the direct-mapped VIP index (farmlb_abi.h): the entry for an address whose last
 * two bytes are hi, lo. An array lookup, inlined by the verifier: a destination no VIP ends
 * like (FARMLB_VIP_INDEX_NONE) costs a few instructions. */
static __always_inline __u32 vip_index_entry(__u32 slot, __u8 hi, __u8 lo)
{
	return farmlb_hot.vip_index[slot & (FARMLB_SLOTS - 1)].entry[FARMLB_VIP_INDEX_OF(hi, lo)];
}

/* The descriptor an index entry names; NULL for FARMLB_VIP_INDEX_NONE and _MANY. */
static __always_inline struct farmlb_vip_desc *vip_desc(__u32 slot, __u32 entry)
{
	__u32 key = slot * FARMLB_MAX_VIPS + entry - 1;

	if (entry == FARMLB_VIP_INDEX_NONE || entry > FARMLB_MAX_VIPS || key >= FARMLB_VIP_DESC_ENTRIES)
		return NULL;
	return &farmlb_hot.vip_desc[key];
}

/* Is the descriptor's VIP this address? addr: 16 bytes, 4-aligned (compared as words: the
 * stack keys hold it at offset 4 or 8, and the verifier refuses misaligned stack loads). For
 * IPv4 one word decides: a descriptor of family 4 and every IPv4 key have zeros past the
 * first four bytes (farmlb_abi.h), so the other three words are equal by construction, and
 * the family is a constant at every call, so the IPv4 compare is 3 instructions, not 12. */
static __always_inline int desc_is(const struct farmlb_vip_desc *desc, __u8 family, const __u8 *addr)
{
	const __u32 *a = (const __u32 *)desc->addr;
	const __u32 *b = (const __u32 *)addr;

	if (family == 4)
		return desc->family == 4 && a[0] == b[0];
	return desc->family == family && ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

/* The VIP of the slot with the key's address (hi, lo: its last two bytes), NULL when none:
 * through the index and the descriptor, or farmlb_vips when several VIPs share the entry. */
static __always_inline struct farmlb_vip *lookup_vip(const struct farmlb_vip_key *key, __u8 hi, __u8 lo)
{
	__u32 entry = vip_index_entry(key->slot, hi, lo);
	struct farmlb_vip_desc *desc;

	if (entry == FARMLB_VIP_INDEX_NONE)
		return NULL;
	desc = vip_desc(key->slot, entry);
	if (!desc) /* FARMLB_VIP_INDEX_MANY */
		return bpf_map_lookup_elem(&farmlb_vips, key);
	return desc_is(desc, key->family, key->addr) ? &desc->vip : NULL;
}

/* The exact VIP lookup in farmlb_vips, for a destination whose index entry several VIPs
 * share. The key is rebuilt from the rule key, which already holds slot, family and address. */
static __always_inline struct farmlb_vip *find_vip(const struct farmlb_rule_key *rkey)
{
	struct farmlb_vip_key vkey = {
		.slot = rkey->slot,
		.family = rkey->family,
	};

	__builtin_memcpy(vkey.addr, rkey->addr, sizeof(vkey.addr));
	return bpf_map_lookup_elem(&farmlb_vips, &vkey);
}

/* What the criterion can hash, copied out of the packet while its headers are known to
 * be there. Hashing from this stack copy rather than from packet pointers keeps the
 * verifier from having to prove, after the IPv4 and IPv6 paths join, which header a
 * pointer came from (clang re-derives "is IPv6" from the EtherType, and the verifier
 * cannot link the two). */
/* Where vmac_directed sends a frame this node does not take (deliver()). */
struct forward {
	__u8 to;         /* node id, FARMLB_NODE_NONE: nowhere */
	__u8 second_hop; /* the owner of a bucket in handover, to the previous owner (§12) */
};

struct flow_bytes {
	__u8 saddr[FARMLB_JHASH_MAX_LEN] FARMLB_JHASH_KEY_ALIGN; /* wire order; zero past addr_len */
	__u8 sport[2];                    /* wire order */
	__u8 ipid[2];                     /* wire order; IPv4 only */
	__u8 addr_len;                    /* 4 or 16 */
	__u8 tcp;                         /* a TCP flow: the handover rule applies (§12) */
	__u8 syn;                         /* a TCP SYN without ACK: a new connection */
	__u8 _pad0;
	__be16 dport;                     /* the VIP's port: the socket lookup's local port */
};

/* Hash of the criterion bytes: constant lengths per branch, so each farmlb_jhash call folds
 * to straight code. Returns 0 and sets DROP_NO_RULE for a criterion with nothing to hash. */
static __always_inline int criterion_hash(struct verdict *v, __u32 seed, __u32 criterion,
					  const struct flow_bytes *flow, __u32 *hash)
{
	__u8 key[FARMLB_JHASH_MAX_LEN] FARMLB_JHASH_KEY_ALIGN = {};

	if (criterion == FARMLB_CRIT_ADDR && flow->addr_len == 16) {
		*hash = farmlb_jhash(flow->saddr, 16, seed);
	} else if (criterion == FARMLB_CRIT_ADDR) {
		*hash = farmlb_jhash(flow->saddr, 4, seed);
	} else if (criterion == FARMLB_CRIT_PORT) {
		key[0] = flow->sport[0];
		key[1] = flow->sport[1];
		*hash = farmlb_jhash(key, 2, seed);
	} else if (criterion == FARMLB_CRIT_IPID) {
		/* Only IPv4 gets here: the resolved table has no on_ipid entry for an IPv6 VIP
		 * (src/dataplane/rule-table.ts skips such rules when it resolves the precedence). */
		key[0] = flow->ipid[0];
		key[1] = flow->ipid[1];
		*hash = farmlb_jhash(key, 2, seed);
	} else {
		/* An unknown criterion, never written by the daemon: nothing to hash. */
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
		return 0;
	}
	return 1;
}

/* Does this node hold the TCP connection of the flow (client → VIP)? A socket that is not a
 * listener: ESTABLISHED and the other synchronized states, or a request socket (the last ACK
 * of a handshake this node started). TIME_WAIT does not count: its connection is over, and a
 * client reusing the port opens a new one, which belongs to the new owner. The skc variant
 * sees request and TIME_WAIT sockets as they are (bpf_sk_lookup_tcp would return the listener
 * for the first and hide the second). The lookup runs in the namespace of the receiving
 * device, the node's. */
static __always_inline int holds_connection(struct xdp_md *ctx, const struct flow_bytes *flow,
					    const __u8 *vip_addr)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 len;
	int held;

	if (flow->addr_len == 4) {
		__builtin_memcpy(&t.ipv4.saddr, flow->saddr, 4);
		__builtin_memcpy(&t.ipv4.daddr, vip_addr, 4);
		__builtin_memcpy(&t.ipv4.sport, flow->sport, 2);
		t.ipv4.dport = flow->dport;
		len = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, flow->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, vip_addr, 16);
		__builtin_memcpy(&t.ipv6.sport, flow->sport, 2);
		t.ipv6.dport = flow->dport;
		len = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &t, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	held = sk->state != BPF_TCP_LISTEN && sk->state != BPF_TCP_TIME_WAIT;
	bpf_sk_release(sk);
	return held;
}

/* §12, a TCP packet of a bucket in handover, on its owner or previous owner. The previous owner
 * keeps what its sockets hold and never a SYN; the owner takes SYNs and what its sockets hold.
 * What this node does not take goes, in vmac_directed, to the other one (fwd); see deliver(). */
static __always_inline void decide_handover(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
					    __u8 self, const struct farmlb_bucket *bkt, const struct flow_bytes *flow,
					    const __u8 *vip_addr, struct forward *fwd)
{
	int mine;

	if (self == bkt->prev_owner) {
		mine = !flow->syn && holds_connection(ctx, flow, vip_addr);
		fwd->to = bkt->owner;
		if (!mine) {
			set_verdict(v, XDP_DROP, FARMLB_R_DROP_HANDOVER);
			return;
		}
		if (lease_valid(ctl))
			set_verdict(v, XDP_PASS, FARMLB_R_PASS_HANDOVER_PREV);
		else
			set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
		return;
	}
	mine = flow->syn || holds_connection(ctx, flow, vip_addr);
	fwd->to = bkt->prev_owner;
	fwd->second_hop = 1;
	if (!mine)
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_HANDOVER);
	else if (lease_valid(ctl))
		set_verdict(v, XDP_PASS, FARMLB_R_PASS_HANDOVER_NEW);
	else
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
}

/* Steps 5 to 7 of docs/datapath.md: hash the criterion bytes, find the owner, decide.
 * fwd says where vmac_directed sends what this node does not take: left to nobody unless a
 * bucket decided. */
static __always_inline void decide_by_bucket(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
					     const struct farmlb_slot_cfg *cfg, __u32 slot, __u32 group,
					     __u32 criterion, const struct flow_bytes *flow, const __u8 *vip_addr,
					     struct forward *fwd)
{
	struct farmlb_bucket *bkt;
	__u32 hash, bucket;
	__u8 owner, prev;

	/* Never written by the daemon (the config has at most FARMLB_MAX_GROUPS groups),
	 * but a larger group would index another slot's buckets; GROUP_NONE lands here too. */
	if (group >= FARMLB_MAX_GROUPS) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
		return;
	}
	if (!criterion_hash(v, cfg->hash_seed, criterion, flow, &hash))
		return;
	bucket = farmlb_bucket_of(hash);
	bkt = bucket_entry(slot, group, bucket);
	owner = bkt ? bkt->owner : FARMLB_NODE_NONE;
	prev = bkt ? bkt->prev_owner : FARMLB_NODE_NONE;

	v->bucket_stat = group * FARMLB_NBUCKETS + bucket;
	fwd->to = owner;
	/* §12: only TCP flows hashed per connection hand over; on_ipid spreads one connection
	 * over every node anyway, UDP follows the owner at once. */
	if (bkt && prev != FARMLB_NODE_NONE && prev != owner && flow->tcp && criterion != FARMLB_CRIT_IPID) {
		if (cfg->self_node != FARMLB_NODE_NONE && (cfg->self_node == owner || cfg->self_node == prev)) {
			decide_handover(ctx, v, ctl, cfg->self_node, bkt, flow, vip_addr, fwd);
			return;
		}
		/* A bystander: the owner decides, or, before there is one, the previous owner. */
		if (owner == FARMLB_NODE_NONE)
			fwd->to = prev;
	}
	if (owner == FARMLB_NODE_NONE || owner != cfg->self_node)
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NOT_OWNED);
	else if (lease_valid(ctl))
		set_verdict(v, XDP_PASS, FARMLB_R_PASS_OWNED);
	else
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
}

/* The MAC of the interface the frame came in on (farmlb_ifaces), NULL when the daemon has
 * not registered it. Only paths that transmit or rewrite ask. farmlb_ifaces is a hash map
 * (~25 ns a lookup), so this CPU's farmlb_iface_cache answers while its entry for the ifindex
 * was filled under the current farmlb_ctl.iface_gen (farmlb_abi.h). gen is read before the
 * hash lookup: the daemon writes farmlb_ifaces before it bumps gen, so whatever is cached
 * under a gen is at least as new as the map was when that gen was set. */
static __always_inline const __u8 *ingress_mac(struct xdp_md *ctx, const struct farmlb_ctl *ctl)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 key = ifindex & (FARMLB_IFACE_CACHE_ENTRIES - 1);
	__u32 gen = *(volatile const __u32 *)&ctl->iface_gen;
	struct farmlb_iface_cache *cache = bpf_map_lookup_elem(&farmlb_iface_cache, &key);
	struct farmlb_iface *iface;

	if (!cache) { /* key < FARMLB_IFACE_CACHE_ENTRIES: cannot miss */
		iface = bpf_map_lookup_elem(&farmlb_ifaces, &ifindex);
		return iface ? iface->mac : NULL;
	}
	if (cache->ifindex != ifindex || cache->gen != gen) {
		iface = bpf_map_lookup_elem(&farmlb_ifaces, &ifindex);
		cache->ifindex = ifindex;
		cache->gen = gen;
		cache->known = iface != NULL;
		if (iface)
			mac_copy(cache->mac, iface->mac);
	}
	return cache->known ? cache->mac : NULL;
}

/* vmac_invisible: a frame this node passes for a VIP and sent to the VMAC gets the
 * interface's MAC as destination, so the stack sees it as PACKET_HOST. Frames to the node's
 * own MAC or to a group address are left alone; without a registered MAC, too. */
static __always_inline void vmac_to_iface(struct xdp_md *ctx, const struct farmlb_ctl *ctl, struct ethhdr *eth,
					  const struct farmlb_slot_cfg *cfg, __u32 mode)
{
	const __u8 *mac;

	if (mode == FARMLB_MODE_DIRECTED || !mac_equal_words(eth->h_dest, cfg->vmac))
		return;
	mac = ingress_mac(ctx, ctl);
	if (mac)
		mac_copy(eth->h_dest, mac);
}

/* After a bucket decided: the frame changes the verdict asks for. Passed frames get the
 * VMAC rewrite. In vmac_directed a frame this node does not take is sent on to `to` (the
 * owner; during a handover see §12), unless it came from a farm node already (never forwarded
 * twice: no loops) or the lease ran out. The one exception: the owner of a bucket in handover
 * sends what it does not hold on to the previous owner even when another node forwarded it
 * (the second hop), but never back to the previous owner's own forward. */
static __always_inline void deliver(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
				    const struct farmlb_slot_cfg *cfg, __u32 slot, __u32 mode,
				    struct ethhdr *eth, const struct forward *fwd)
{
	struct farmlb_mac_key mkey = { .slot = slot };
	struct farmlb_node *node;
	const __u8 *mac;
	__u32 nidx, to = fwd->to;

	if (v->action == XDP_PASS) {
		vmac_to_iface(ctx, ctl, eth, cfg, mode);
		return;
	}
	if ((v->reason != FARMLB_R_DROP_NOT_OWNED && v->reason != FARMLB_R_DROP_HANDOVER) ||
	    mode != FARMLB_MODE_DIRECTED || to == FARMLB_NODE_NONE || to >= FARMLB_MAX_NODES)
		return;
	if (!lease_valid(ctl)) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
		return;
	}
	nidx = slot * FARMLB_MAX_NODES + to;
	node = bpf_map_lookup_elem(&farmlb_nodes, &nidx);
	if (!node || !(node->flags & FARMLB_NODE_F_KNOWN))
		return; /* nowhere to send it: the drop stands */
	if (fwd->second_hop) {
		if (mac_equal(eth->h_source, node->mac))
			return; /* the previous owner sent it here: never back */
	} else {
		mac_copy(mkey.mac, eth->h_source);
		if (bpf_map_lookup_elem(&farmlb_node_macs, &mkey))
			return; /* forwarded by a node already */
	}
	mac = ingress_mac(ctx, ctl);
	if (!mac) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_IFACE);
		return;
	}
	mac_copy(eth->h_dest, node->mac);
	mac_copy(eth->h_source, mac);
	set_verdict(v, XDP_TX, fwd->second_hop ? FARMLB_R_TX_FORWARD_PREV : FARMLB_R_TX_FORWARD);
}

/* Records one requester: a known one is refreshed in place; a new one only within the
 * window's budget (FARMLB_REQUESTERS_NEW_PER_WINDOW), so that spoofed requests from ever new
 * addresses cannot flush the real clients out of the LRU within seconds (docs/security.md,
 * "Bounded resources"). ARP / NS path only: the owned-packet path never comes here. */
static __always_inline void record_requester(const struct farmlb_requester_key *rkey, const struct farmlb_requester *rval)
{
	struct farmlb_requester_budget *budget;
	struct farmlb_requester *known;
	__u32 key0 = 0;

	known = bpf_map_lookup_elem(&farmlb_requesters, rkey);
	if (known) {
		*known = *rval;
		return;
	}
	budget = bpf_map_lookup_elem(&farmlb_requester_budget, &key0);
	if (!budget) /* a one-entry array: cannot miss */
		return;
	if (rval->last_seen_ns - budget->window_ns >= FARMLB_REQUESTERS_WINDOW_NS) {
		budget->window_ns = rval->last_seen_ns;
		budget->admitted = 0;
	}
	if (budget->admitted >= FARMLB_REQUESTERS_NEW_PER_WINDOW) {
		__sync_fetch_and_add(&budget->refused, 1);
		return;
	}
	__sync_fetch_and_add(&budget->admitted, 1);
	bpf_map_update_elem(&farmlb_requesters, rkey, rval, BPF_ANY);
}

/* ARP request / neighbour solicitation for a VIP (docs/datapath.md §8): record the requester,
 * then decide whether this node answers. Returns 1 with the verdict set to TX_ARP_REPLY, the
 * MAC to announce in *announce and the interface's MAC in *link; else 0 with the verdict set.
 * addr is the requester's address (4 or 16 bytes, aligned for the hash). */
static __always_inline int solicit_decide(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
					  const struct farmlb_slot_cfg *cfg, __u32 slot,
					  const struct farmlb_vip *vip, const struct flow_bytes *req,
					  const __u8 *req_mac, __u8 *announce, __u8 *link)
{
	struct farmlb_requester_key rkey = { .family = req->addr_len == 16 ? 6 : 4 };
	struct farmlb_requester rval = {};
	const __u8 *mac;
	__u32 hash, bucket, group;
	__u8 owner;
	int directed = vip->mode == FARMLB_MODE_DIRECTED;

	if (req->addr_len == 16)
		hash = farmlb_jhash(req->saddr, 16, cfg->hash_seed);
	else
		hash = farmlb_jhash(req->saddr, 4, cfg->hash_seed);
	bucket = farmlb_bucket_of(hash);
	group = directed ? vip->arp_group : vip->icmp_group;

	/* Every node records every requester, whoever answers: the node that later takes the
	 * bucket over must know whom to tell (arpreroute). */
	__builtin_memcpy(rkey.addr, req->saddr, sizeof(rkey.addr));
	rval.last_seen_ns = bpf_ktime_get_ns();
	mac_copy(rval.mac, req_mac);
	rval.group = group;
	rval.bucket = bucket;
	rval.vip_id = vip->vip_id;
	record_requester(&rkey, &rval);

	if (!lease_valid(ctl)) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
		return 0;
	}
	/* vmac_directed without an arp rule: every node answers, with its own MAC. */
	if (!(directed && group == FARMLB_GROUP_NONE)) {
		if (group >= FARMLB_MAX_GROUPS) {
			set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
			return 0;
		}
		owner = bucket_owner(slot, group, bucket);
		v->bucket_stat = group * FARMLB_NBUCKETS + bucket;
		if (owner == FARMLB_NODE_NONE || owner != cfg->self_node) {
			set_verdict(v, XDP_DROP, FARMLB_R_DROP_ARP_NOT_MINE);
			return 0;
		}
	}
	mac = ingress_mac(ctx, ctl);
	if (!mac) {
		v->bucket_stat = FARMLB_NO_BUCKET;
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_IFACE);
		return 0;
	}
	mac_copy(link, mac);
	/* The VMAC only ever appears inside the answer, never as an Ethernet source: the
	 * switch must not learn it, so that it keeps flooding frames sent to it. */
	mac_copy(announce, directed ? mac : cfg->vmac);
	set_verdict(v, XDP_TX, FARMLB_R_TX_ARP_REPLY);
	return 1;
}
/* EtherType ARP (docs/datapath.md §8). Returns with the verdict set; PASS_NOT_VIP unless
 * the frame is an Ethernet/IPv4 request or reply whose target is a VIP. */
static __always_inline void handle_arp(struct xdp_md *ctx, struct verdict *v, struct ethhdr *eth,
				       struct farmlb_arp *arp, void *data_end)
{
	struct farmlb_vip_key vkey = { .family = 4 };
	struct flow_bytes req = { .addr_len = 4 };
	struct farmlb_slot_cfg *cfg;
	struct farmlb_ctl *ctl;
	struct farmlb_vip *vip;
	__u8 announce[6], link[6];
	__u32 slot;

	if ((void *)(arp + 1) > data_end)
		return;
	if (arp->htype != bpf_htons(FARMLB_ARP_HTYPE_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != 6 || arp->plen != 4)
		return;
	if (arp->op != bpf_htons(FARMLB_ARP_OP_REQUEST) && arp->op != bpf_htons(FARMLB_ARP_OP_REPLY))
		return;
	ctl = &farmlb_hot.ctl;
	slot = hot_active_slot();
	vkey.slot = slot;
	__builtin_memcpy(vkey.addr, arp->tpa, 4);
	vip = lookup_vip(&vkey, vkey.addr[2], vkey.addr[3]);
	if (!vip)
		return;
	cfg = hot_slot_cfg(slot);

	if (arp->op == bpf_htons(FARMLB_ARP_OP_REPLY)) {
		/* Nodes resolve clients too: every node takes replies for a VIP. */
		set_verdict(v, XDP_PASS, FARMLB_R_PASS_CONTROL);
		vmac_to_iface(ctx, ctl, eth, cfg, vip->mode);
		return;
	}
	__builtin_memcpy(req.saddr, arp->spa, 4);
	if (*(__u32 *)req.saddr == 0) {
		/* A probe (RFC 5227): answering would make the prober give the address up. */
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_ARP_DAD);
		return;
	}
	if (!solicit_decide(ctx, v, ctl, cfg, slot, vip, &req, eth->h_source, announce, link))
		return;

	/* The reply, in place: the frame keeps its length (and any padding). */
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, link);
	arp->op = bpf_htons(FARMLB_ARP_OP_REPLY);
	mac_copy(arp->tha, arp->sha);
	mac_copy(arp->sha, announce);
	__builtin_memcpy(arp->tpa, req.saddr, 4);
	__builtin_memcpy(arp->spa, vkey.addr, 4);
}

/* ff02::1:ffXX:XXXX, the solicited-node multicast address of a target (RFC 4291 §2.7.1). */
static __always_inline int is_solicited_node_of(const __u8 *dst, const __u8 *target)
{
	return *(const __u32 *)dst == bpf_htonl(0xff020000) && *(const __u32 *)(dst + 4) == 0 &&
	       *(const __u32 *)(dst + 8) == bpf_htonl(1) && dst[12] == 0xff && dst[13] == target[13] &&
	       dst[14] == target[14] && dst[15] == target[15];
}

static __always_inline int addr6_equal(const __u8 *a, const __u8 *b)
{
	return *(const __u64 *)a == *(const __u64 *)b && *(const __u64 *)(a + 8) == *(const __u64 *)(b + 8);
}

/* IPv6 neighbour solicitation for a VIP, ICMPv6 right after the fixed header (ND never has
 * extension headers). Returns 0 when the frame is not one (the ordinary path decides it),
 * 1 with the verdict set. An answer is built in place: the frame is resized to exactly the
 * advertisement (bpf_xdp_adjust_tail grows a solicitation without options by 8 bytes). */
static __always_inline int handle_ns(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
				     __u32 slot, __u32 l3off)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct farmlb_vip_key vkey = { .slot = slot, .family = 6 };
	struct flow_bytes req = { .addr_len = 16 };
	struct farmlb_na_csum na = {};
	struct farmlb_slot_cfg *cfg;
	struct farmlb_nd_msg *ns;
	struct ipv6hdr *ip6h;
	struct farmlb_vip *vip;
	struct ethhdr *eth;
	__u8 announce[6], link[6], req_mac[6];
	int delta;

	if (l3off > ETH_HLEN + 2 * sizeof(struct vlan_hdr))
		return 0;
	eth = data;
	ip6h = data + l3off;
	ns = (void *)(ip6h + 1);
	if ((void *)(eth + 1) > data_end || (void *)(ns + 1) > data_end)
		return 0; /* truncated: to a VIP it is malformed (ordinary path) */
	__builtin_memcpy(vkey.addr, ns->target, 16);
	vip = lookup_vip(&vkey, vkey.addr[14], vkey.addr[15]);
	if (!vip)
		return 0;
	if (!addr6_equal(ip6h->daddr.s6_addr, ns->target) && !is_solicited_node_of(ip6h->daddr.s6_addr, ns->target))
		return 0;
	if (ip6h->hop_limit != FARMLB_ND_HOP_LIMIT || ns->code != 0) {
		/* RFC 4861 §7.1.1: invalid, a receiver discards it. */
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
		return 1;
	}
	__builtin_memcpy(req.saddr, ip6h->saddr.s6_addr, 16);
	if (*(__u64 *)req.saddr == 0 && *(__u64 *)(req.saddr + 8) == 0) {
		/* Duplicate address detection: answering would make the sender give the VIP up. */
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_ARP_DAD);
		return 1;
	}
	cfg = hot_slot_cfg(slot);
	mac_copy(req_mac, eth->h_source);
	if (!solicit_decide(ctx, v, ctl, cfg, slot, vip, &req, req_mac, announce, link))
		return 1;

	/* The advertisement, checksummed on the stack before the frame is touched. */
	__builtin_memcpy(na.saddr, vkey.addr, 16);
	__builtin_memcpy(na.daddr, req.saddr, 16);
	na.len = bpf_htonl(FARMLB_NA_LEN);
	na.nexthdr = IPPROTO_ICMPV6;
	na.na.msg.type = FARMLB_ND_NEIGHBOUR_ADVERT;
	na.na.msg.flags[0] = FARMLB_NA_FLAGS_SO;
	__builtin_memcpy(na.na.msg.target, vkey.addr, 16);
	na.na.opt.type = FARMLB_ND_OPT_TLLA;
	na.na.opt.len = 1;
	mac_copy(na.na.opt.mac, announce);
	na.na.msg.checksum = farmlb_na_checksum(&na);

	delta = (int)(l3off + sizeof(struct ipv6hdr) + FARMLB_NA_LEN) - (int)(data_end - data);
	if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta)) {
		/* No tailroom (never seen: drivers leave room for skb_shared_info). */
		v->bucket_stat = FARMLB_NO_BUCKET;
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
		return 1;
	}
	/* adjust_tail invalidates every packet pointer: derive them again. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l3off > ETH_HLEN + 2 * sizeof(struct vlan_hdr))
		return 1;
	eth = data;
	ip6h = data + l3off;
	if ((void *)(ip6h + 1) + FARMLB_NA_LEN > data_end || (void *)(eth + 1) > data_end) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
		return 1;
	}
	mac_copy(eth->h_dest, req_mac);
	mac_copy(eth->h_source, link);
	ip6h->payload_len = bpf_htons(FARMLB_NA_LEN);
	ip6h->nexthdr = IPPROTO_ICMPV6;
	ip6h->hop_limit = FARMLB_ND_HOP_LIMIT;
	__builtin_memcpy(ip6h->saddr.s6_addr, na.saddr, 16);
	__builtin_memcpy(ip6h->daddr.s6_addr, na.daddr, 16);
	__builtin_memcpy((void *)(ip6h + 1), &na.na, FARMLB_NA_LEN);
	return 1;
}

/* ICMP error to a VIP (docs/datapath.md §10): the quoted packet is one this farm sent, VIP →
 * client. Fills the rule key (VIP, quoted protocol, quoted source port) and the criterion
 * bytes (the quoted destination: the client's address and port). 0 when it cannot be parsed:
 * truncated, not TCP/UDP, a later fragment, or not from the VIP the error is addressed to. */
static __always_inline int quoted_flow_v4(void *icmp, void *data_end, struct farmlb_rule_key *rkey,
					  struct flow_bytes *flow)
{
	struct iphdr *q = icmp + FARMLB_ICMP_ERR_HLEN;
	struct udphdr *ports;
	__u32 qlen;

	if ((void *)(q + 1) > data_end)
		return 0;
	if (q->version != 4 || q->ihl < 5 || (q->frag_off & bpf_htons(FARMLB_IP_OFFSET_MASK)))
		return 0;
	if (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP)
		return 0;
	if (q->saddr != *(__u32 *)rkey->addr)
		return 0;
	qlen = q->ihl * 4;
	ports = (void *)q + qlen;
	if ((void *)ports + FARMLB_QUOTED_L4_LEN > data_end)
		return 0;
	rkey->proto = q->protocol;
	rkey->port = ports->source;
	__builtin_memcpy(flow->saddr, &q->daddr, 4);
	__builtin_memcpy(flow->sport, &ports->dest, 2);
	return 1;
}

static __always_inline int quoted_flow_v6(void *icmp, void *data_end, struct farmlb_rule_key *rkey,
					  struct flow_bytes *flow)
{
	struct ipv6hdr *q = icmp + FARMLB_ICMP_ERR_HLEN;
	struct udphdr *ports = (void *)(q + 1);

	if ((void *)ports + FARMLB_QUOTED_L4_LEN > data_end)
		return 0;
	/* Extension headers in the quote are not walked: such a quote counts as unparseable. */
	if (q->version != 6 || (q->nexthdr != IPPROTO_TCP && q->nexthdr != IPPROTO_UDP))
		return 0;
	if (!addr6_equal(q->saddr.s6_addr, rkey->addr))
		return 0;
	rkey->proto = q->nexthdr;
	rkey->port = ports->source;
	__builtin_memcpy(flow->saddr, q->daddr.s6_addr, 16);
	__builtin_memcpy(flow->sport, &ports->dest, 2);
	return 1;
}

/* Step 4 on the resolved table: the entry for the destination port already is the winner of
 * the four-key precedence (on_ipid skipped for IPv6 VIPs), and the VIP's "any port" entry the
 * winner for every port no rule names. With a descriptor (the destination is its VIP), its
 * inline copy of those entries answers; farmlb_rules only for a port that did not fit it.
 * Without one (several VIPs share the index entry), farmlb_rules: port, then "any port". */
static __always_inline struct farmlb_rule *resolved_rule(struct farmlb_vip_desc *desc, struct farmlb_rule_key *rkey,
							 __be16 dport)
{
	struct farmlb_rule *rule;
	__u32 udp = rkey->proto == IPPROTO_UDP;
	__u32 i;

	if (desc) {
		/* FARMLB_VIP_INLINE_PORTS bounds the scan for the verifier (clang unrolls it);
		 * nports ends it early, so a VIP with two ports costs two compares. */
		for (i = 0; i < FARMLB_VIP_INLINE_PORTS; i++) {
			if (i >= desc->nports)
				break;
			if (desc->ports[i].port == dport && desc->ports[i].proto == rkey->proto)
				return &desc->ports[i].rule;
		}
		if (desc->flags & (udp ? FARMLB_VIP_F_OVERFLOW_UDP : FARMLB_VIP_F_OVERFLOW_TCP)) {
			rkey->port = dport;
			rule = bpf_map_lookup_elem(&farmlb_rules, rkey);
			if (rule)
				return rule;
		}
		if (desc->flags & (udp ? FARMLB_VIP_F_ANY_UDP : FARMLB_VIP_F_ANY_TCP))
			return &desc->any_port[udp];
		return NULL;
	}
	rkey->port = dport;
	rule = bpf_map_lookup_elem(&farmlb_rules, rkey);
	if (!rule) {
		rkey->port = FARMLB_PORT_ANY;
		rule = bpf_map_lookup_elem(&farmlb_rules, rkey);
	}
	return rule;
}

/* What a classify step found: where farmlb_xdp goes next (the shape of Katran's
 * process_l3_headers / handle_icmp, which return a verdict or "go on"). The VIP-only outcomes
 * (NO_RULE, MALFORMED, FRAGMENT) may come before the destination is known to be a VIP: when
 * several VIPs share its index entry, farmlb_xdp confirms it first, so non-VIP traffic sharing
 * that entry still passes as PASS_NOT_VIP. */
enum step {
	STEP_OUT,            /* the verdict stands: PASS_NOT_VIP, or what the step set */
	STEP_NEXT,           /* go on: the next header, or the bucket decision */
	STEP_CONTROL,        /* a VIP's control traffic: passes on every node */
	STEP_FRAGMENT,       /* a later fragment, no ports to hash: passes under the lease */
	STEP_NO_RULE,        /* no rule covers it: dropped */
	STEP_MALFORMED,      /* malformed: dropped */
	STEP_DROP_MALFORMED, /* malformed, to a VIP already confirmed: dropped */
};

/* The packet as the classify steps leave it. */
struct classified {
	/* 8-aligned: desc_is() and addr6_equal() read the address (offset 8) in words. */
	struct farmlb_rule_key rkey __attribute__((aligned(8)));
	struct flow_bytes flow;
	struct farmlb_vip_desc *desc; /* the destination's descriptor, NULL when the index entry is shared */
	struct farmlb_vip *vip;       /* the VIP, once known */
	int proto;                    /* the transport protocol, after STEP_NEXT from an L3 step */
	__u32 group;                  /* what decides by bucket, after STEP_NEXT from an L4 step */
	__u32 criterion;
	__u32 mode;
};

/* docs/datapath.md §2 and §3 for IPv4: the destination a VIP (or maybe one), the header valid, the transport
 * protocol in c->proto with the cursor on its header. */
static __always_inline enum step classify_ipv4(struct hdr_cursor *nh, void *data_end, __u32 slot,
					       struct classified *c)
{
	struct iphdr *iph;
	__u32 entry;

	if (parse_iphdr_fixed(nh, data_end, &iph) < 0)
		return STEP_OUT;
	entry = vip_index_entry(slot, ((__u8 *)&iph->daddr)[2], ((__u8 *)&iph->daddr)[3]);
	if (entry == FARMLB_VIP_INDEX_NONE)
		return STEP_OUT;
	c->rkey.family = 4;
	__builtin_memcpy(c->rkey.addr, &iph->daddr, 4);
	c->desc = vip_desc(slot, entry);
	if (c->desc) {
		if (!desc_is(c->desc, 4, c->rkey.addr))
			return STEP_OUT;
		c->vip = &c->desc->vip;
	}

	c->proto = ipv4_validate(nh, data_end, iph);
	if (c->proto < 0)
		return STEP_MALFORMED;
	if (iph->frag_off & bpf_htons(FARMLB_IP_OFFSET_MASK))
		return STEP_FRAGMENT;
	__builtin_memcpy(c->flow.saddr, &iph->saddr, 4);
	__builtin_memcpy(c->flow.ipid, &iph->id, 2);
	c->flow.addr_len = 4;
	return STEP_NEXT;
}

/* §2 and §3 for IPv6, the same, and a neighbour solicitation for a VIP answered on the way
 * (STEP_OUT with the verdict set). */
static __always_inline enum step classify_ipv6(struct xdp_md *ctx, struct verdict *v, const struct farmlb_ctl *ctl,
					       struct hdr_cursor *nh, void *data_end, __u32 slot,
					       struct classified *c)
{
	void *data = (void *)(long)ctx->data;
	struct ipv6hdr *ip6h;
	__u32 entry;

	if (parse_ip6hdr_fixed(nh, data_end, &ip6h) < 0)
		return STEP_OUT;
	/* A solicitation goes to the target's solicited-node address or to the target itself:
	 * both end in the target's last three bytes, so the index entry of the destination is
	 * not NONE for any solicitation for a VIP. The descriptor's address is compared only
	 * after the solicitation check: a multicast destination is not it. */
	entry = vip_index_entry(slot, ip6h->daddr.s6_addr[14], ip6h->daddr.s6_addr[15]);
	if (entry == FARMLB_VIP_INDEX_NONE)
		return STEP_OUT;
	if (ip6h->version == 6 && ip6h->nexthdr == IPPROTO_ICMPV6 && (void *)(ip6h + 1) + 1 <= data_end &&
	    *(__u8 *)(ip6h + 1) == FARMLB_ND_NEIGHBOUR_SOLICIT) {
		if (handle_ns(ctx, v, ctl, slot, (void *)ip6h - data))
			return STEP_OUT;
	}
	c->rkey.family = 6;
	__builtin_memcpy(c->rkey.addr, &ip6h->daddr, 16);
	c->desc = vip_desc(slot, entry);
	if (c->desc) {
		if (!desc_is(c->desc, 6, c->rkey.addr))
			return STEP_OUT;
		c->vip = &c->desc->vip;
	}

	if (ip6h->version != 6)
		return STEP_MALFORMED;
	c->proto = ipv6_skip_ext(nh, data_end, ip6h);
	if (c->proto < 0)
		return STEP_MALFORMED;
	if (c->proto == FARMLB_PROTO_FRAGMENT)
		return STEP_FRAGMENT;
	__builtin_memcpy(c->flow.saddr, &ip6h->saddr, 16);
	c->flow.addr_len = 16;
	return STEP_NEXT;
}

/* §4 for TCP and UDP: the ports, and the rule that decides (STEP_NEXT with
 * group, criterion and mode set). */
static __always_inline enum step classify_ports(struct hdr_cursor *nh, void *data_end, struct classified *c)
{
	/* Source port first, destination port second in both headers. */
	__u32 l4_len = c->proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
	struct udphdr *ports = nh->pos;
	struct farmlb_rule *rule;

	if (nh->pos + l4_len > data_end)
		return STEP_MALFORMED;
	/* Re-checked with a constant so the verifier knows the 4 port bytes are in. */
	if ((void *)(ports + 1) > data_end)
		return STEP_MALFORMED;
	__builtin_memcpy(c->flow.sport, &ports->source, 2);
	c->flow.dport = ports->dest;
	if (c->proto == IPPROTO_TCP) {
		struct tcphdr *th = nh->pos;

		if ((void *)(th + 1) > data_end) /* checked above; again for the verifier */
			return STEP_MALFORMED;
		c->flow.tcp = 1;
		c->flow.syn = th->syn && !th->ack;
	}

	c->rkey.proto = c->proto;
	rule = resolved_rule(c->desc, &c->rkey, ports->dest);
	if (!rule)
		return STEP_NO_RULE;
	c->group = rule->group;
	c->criterion = rule->criterion;
	c->mode = rule->mode;
	return STEP_NEXT;
}

/* docs/datapath.md §4 (ICMP) and §10 (errors): ICMP or ICMPv6 to a VIP. An echo request is decided by
 * the bucket of its source address in the VIP's ICMP group; an error follows the flow it
 * quotes (STEP_CONTROL, on every node, when it cannot be tied to one); neighbour discovery
 * that was not answered passes; any other type is dropped. */
static __always_inline enum step classify_icmp(struct hdr_cursor *nh, void *data_end, int is_v6,
					       struct classified *c)
{
	struct farmlb_rule *rule;
	__u8 type;

	if (!c->vip)
		c->vip = find_vip(&c->rkey);
	if (!c->vip)
		return STEP_OUT;
	if (nh->pos + FARMLB_ICMP_MIN_LEN > data_end)
		return STEP_DROP_MALFORMED;
	type = *(__u8 *)nh->pos;
	c->mode = c->vip->mode;
	if (type == (is_v6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO)) {
		c->group = c->vip->icmp_group;
		c->criterion = FARMLB_CRIT_ADDR;
		return STEP_NEXT;
	}
	if ((!is_v6 && (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB)) ||
	    (is_v6 && type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB)) {
		if (!(is_v6 ? quoted_flow_v6(nh->pos, data_end, &c->rkey, &c->flow)
			    : quoted_flow_v4(nh->pos, data_end, &c->rkey, &c->flow)))
			return STEP_CONTROL;
		c->flow.dport = c->rkey.port;
		c->flow.tcp = c->rkey.proto == IPPROTO_TCP;
		rule = resolved_rule(c->desc, &c->rkey, c->rkey.port);
		if (!rule || rule->criterion == FARMLB_CRIT_IPID)
			return STEP_CONTROL;
		c->group = rule->group;
		c->criterion = rule->criterion;
		return STEP_NEXT;
	}
	if (is_v6 && type >= FARMLB_ND_ROUTER_SOLICIT && type <= FARMLB_ND_REDIRECT) {
		if (type == FARMLB_ND_NEIGHBOUR_SOLICIT && nh->pos + sizeof(struct farmlb_nd_msg) > data_end)
			return STEP_DROP_MALFORMED;
		return STEP_CONTROL;
	}
	return STEP_NO_RULE;
}

/* The entry: Ethernet, then ARP or the L3 step, then the L4 step, then the bucket decision
 * or the verdict the steps named; every path leaves through record(). */
SEC("xdp")
int farmlb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct verdict v = {
		.action = XDP_PASS,
		.reason = FARMLB_R_PASS_NOT_VIP,
		.bucket_stat = FARMLB_NO_BUCKET,
	};
	struct hdr_cursor nh = { .pos = data };
	struct classified c = { .mode = FARMLB_MODE_INVISIBLE };
	struct forward fwd = { .to = FARMLB_NODE_NONE };
	struct farmlb_slot_cfg *cfg;
	struct farmlb_ctl *ctl;
	struct ethhdr *eth;
	enum step step;
	int eth_type, is_v6;
	__u32 slot;
	__u64 len = data_end - data;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		goto out;
	if (eth_type == bpf_htons(ETH_P_ARP)) {
		handle_arp(ctx, &v, eth, nh.pos, data_end);
		goto out;
	}
	if (eth_type != bpf_htons(ETH_P_IP) && eth_type != bpf_htons(ETH_P_IPV6))
		goto out;

	ctl = &farmlb_hot.ctl;
	slot = hot_active_slot();
	c.rkey.slot = slot;
	is_v6 = eth_type == bpf_htons(ETH_P_IPV6);
	step = is_v6 ? classify_ipv6(ctx, &v, ctl, &nh, data_end, slot, &c) : classify_ipv4(&nh, data_end, slot, &c);
	if (step == STEP_NEXT) {
		if (c.proto == IPPROTO_TCP || c.proto == IPPROTO_UDP)
			step = classify_ports(&nh, data_end, &c);
		else if (c.proto == (is_v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
			step = classify_icmp(&nh, data_end, is_v6, &c);
		else
			step = STEP_NO_RULE;
	}

	switch (step) {
	case STEP_NEXT:
		cfg = hot_slot_cfg(slot);
		decide_by_bucket(ctx, &v, ctl, cfg, slot, c.group, c.criterion, &c.flow, c.rkey.addr, &fwd);
		deliver(ctx, &v, ctl, cfg, slot, c.mode, eth, &fwd);
		break;
	case STEP_CONTROL:
		set_verdict(&v, XDP_PASS, FARMLB_R_PASS_CONTROL);
		vmac_to_iface(ctx, ctl, eth, hot_slot_cfg(slot), c.mode);
		break;
	case STEP_FRAGMENT:
		if (!c.vip)
			c.vip = find_vip(&c.rkey);
		if (!c.vip)
			break;
		if (lease_valid(ctl)) {
			set_verdict(&v, XDP_PASS, FARMLB_R_PASS_FRAGMENT);
			vmac_to_iface(ctx, ctl, eth, hot_slot_cfg(slot), c.vip->mode);
		} else {
			set_verdict(&v, XDP_DROP, FARMLB_R_DROP_LEASE);
		}
		break;
	case STEP_NO_RULE:
		if (c.vip || find_vip(&c.rkey))
			set_verdict(&v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
		break;
	case STEP_MALFORMED:
		if (c.vip || find_vip(&c.rkey))
			set_verdict(&v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
		break;
	case STEP_DROP_MALFORMED:
		set_verdict(&v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
		break;
	case STEP_OUT:
		break;
	}
out:
	return record(&v, len);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
