// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * farmlb_xdp — decides, for every frame, whether this node of the farm serves it.
 * The semantics are docs/datapath.md, step by step; src/dataplane/model.ts implements
 * the same steps in TypeScript and test/bpf/differential.test.ts holds the two equal.
 *
 * Shape: one default verdict (pass, not a VIP), early decisions `goto out`, and one exit
 * that counts the verdict per reason and, when a bucket decided, per bucket.
 */
#include <linux/bpf.h>
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
#include "farmlb_parse.h"

/* bucket_stat of a verdict no bucket took part in. */
#define FARMLB_NO_BUCKET 0xffffffffU
/* Low 13 bits of the IPv4 frag_off field: the fragment offset. */
#define FARMLB_IP_OFFSET_MASK 0x1fff

#define ICMP_ECHO_REQUEST 8
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETER_PROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ND_FIRST 133 /* router solicitation */
#define ICMPV6_ND_LAST 137  /* redirect */
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

/* The one exit: count the verdict (and the bucket) and return it. */
static __always_inline int record(struct verdict *v, __u64 bytes)
{
	struct farmlb_counter *cnt;
	struct farmlb_bucket_counter *bcnt;
	__u32 reason = v->reason;

	cnt = bpf_map_lookup_elem(&farmlb_stats, &reason);
	if (cnt) {
		/* Per-CPU slot: no other CPU writes it, so plain adds are exact. */
		cnt->packets++;
		cnt->bytes += bytes;
	}
	if (v->bucket_stat != FARMLB_NO_BUCKET) {
		__u32 key = v->bucket_stat;

		bcnt = bpf_map_lookup_elem(&farmlb_bucket_stats, &key);
		if (bcnt) {
			if (v->action == XDP_PASS)
				bcnt->accepted++;
			else
				bcnt->dropped++;
		}
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
	return lease_clock_ns() < ctl->lease_deadline_ns;
}

/* Step 2's prefilter: 0 when the destination is certainly not a VIP of the slot. Array
 * lookups are inlined by the verifier, so this costs a few instructions where the exact
 * VIP lookup is a hash lookup. */
static __always_inline int vip_filter_may_match(__u32 slot, __u8 hi, __u8 lo)
{
	struct farmlb_vip_filter *filter = bpf_map_lookup_elem(&farmlb_vip_filter, &slot);
	__u32 bit = FARMLB_VIP_FILTER_BIT(hi, lo);

	if (!filter) /* slot < FARMLB_SLOTS: cannot miss */
		return 0;
	return (filter->words[bit / 64] >> (bit % 64)) & 1;
}

/* The exact VIP lookup, for the paths the resolved rule table does not decide. The key is
 * rebuilt from the rule key, which already holds slot, family and address. */
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
struct flow_bytes {
	__u8 saddr[FARMLB_JHASH_MAX_LEN] FARMLB_JHASH_KEY_ALIGN; /* wire order; zero past addr_len */
	__u8 sport[2];                    /* wire order */
	__u8 ipid[2];                     /* wire order; IPv4 only */
	__u8 addr_len;                    /* 4 or 16 */
	__u8 _pad0[3];
};

/* Steps 5 and 6 of docs/datapath.md: hash the criterion bytes, find the owner, decide. */
static __always_inline void decide_by_bucket(struct verdict *v, const struct farmlb_ctl *ctl,
					     __u32 slot, __u32 group, __u32 criterion,
					     const struct flow_bytes *flow)
{
	__u8 key[FARMLB_JHASH_MAX_LEN] FARMLB_JHASH_KEY_ALIGN = {};
	struct farmlb_slot_cfg *cfg;
	struct farmlb_bucket *bkt;
	__u32 hash, bucket, idx;
	__u8 owner = FARMLB_NODE_NONE;

	/* Never written by the daemon (the config has at most FARMLB_MAX_GROUPS groups),
	 * but a larger group would index another slot's buckets; GROUP_NONE lands here too. */
	if (group >= FARMLB_MAX_GROUPS) {
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
		return;
	}
	cfg = bpf_map_lookup_elem(&farmlb_slot_cfg, &slot);
	if (!cfg) /* slot < FARMLB_SLOTS: an array lookup that cannot miss */
		return;

	/* Constant lengths per branch, so each farmlb_jhash call folds to straight code. */
	if (criterion == FARMLB_CRIT_ADDR && flow->addr_len == 16) {
		hash = farmlb_jhash(flow->saddr, 16, cfg->hash_seed);
	} else if (criterion == FARMLB_CRIT_ADDR) {
		hash = farmlb_jhash(flow->saddr, 4, cfg->hash_seed);
	} else if (criterion == FARMLB_CRIT_PORT) {
		key[0] = flow->sport[0];
		key[1] = flow->sport[1];
		hash = farmlb_jhash(key, 2, cfg->hash_seed);
	} else if (criterion == FARMLB_CRIT_IPID) {
		/* Only IPv4 gets here: the resolved table has no on_ipid entry for an IPv6 VIP
		 * (src/dataplane/rule-table.ts skips such rules when it resolves the precedence). */
		key[0] = flow->ipid[0];
		key[1] = flow->ipid[1];
		hash = farmlb_jhash(key, 2, cfg->hash_seed);
	} else {
		/* An unknown criterion, never written by the daemon: nothing to hash. */
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
		return;
	}
	bucket = farmlb_bucket_of(hash);
	idx = (slot * FARMLB_MAX_GROUPS + group) * FARMLB_NBUCKETS + bucket;
	bkt = bpf_map_lookup_elem(&farmlb_buckets, &idx);
	if (bkt)
		owner = bkt->owner;

	v->bucket_stat = group * FARMLB_NBUCKETS + bucket;
	if (owner == FARMLB_NODE_NONE || owner != cfg->self_node)
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_NOT_OWNED);
	else if (lease_valid(ctl))
		set_verdict(v, XDP_PASS, FARMLB_R_PASS_OWNED);
	else
		set_verdict(v, XDP_DROP, FARMLB_R_DROP_LEASE);
}

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
	struct farmlb_rule_key rkey = {};
	struct farmlb_rule *rule;
	struct farmlb_ctl *ctl;
	struct farmlb_vip *vip;
	struct ethhdr *eth;
	struct iphdr *iph = NULL;
	struct ipv6hdr *ip6h = NULL;
	struct flow_bytes flow = {};
	__u32 key0 = 0, slot, group, criterion;
	int eth_type, proto, is_v6;
	__u8 icmp_type;

	eth_type = parse_ethhdr(&nh, data_end, &eth);
	if (eth_type < 0)
		goto out;
	if (eth_type != bpf_htons(ETH_P_IP) && eth_type != bpf_htons(ETH_P_IPV6))
		goto out;

	ctl = bpf_map_lookup_elem(&farmlb_ctl, &key0);
	if (!ctl) /* a one-entry array: cannot miss, but the verifier wants the check */
		goto out;
	slot = ctl->active_slot;
	if (slot >= FARMLB_SLOTS)
		slot = 0;

	/* Step 2. Every check below that ends in a VIP-only verdict (malformed, fragment, no
	 * rule) first confirms the destination is a VIP at its label, so non-VIP traffic
	 * whose bit collides in the prefilter still passes as PASS_NOT_VIP. */
	rkey.slot = slot;
	is_v6 = eth_type == bpf_htons(ETH_P_IPV6);
	if (!is_v6) {
		if (parse_iphdr_fixed(&nh, data_end, &iph) < 0)
			goto out;
		if (!vip_filter_may_match(slot, ((__u8 *)&iph->daddr)[2], ((__u8 *)&iph->daddr)[3]))
			goto out;
		rkey.family = 4;
		__builtin_memcpy(rkey.addr, &iph->daddr, 4);

		proto = ipv4_validate(&nh, data_end, iph);
		if (proto < 0)
			goto malformed;
		if (iph->frag_off & bpf_htons(FARMLB_IP_OFFSET_MASK))
			goto fragment;
		__builtin_memcpy(flow.saddr, &iph->saddr, 4);
		__builtin_memcpy(flow.ipid, &iph->id, 2);
		flow.addr_len = 4;
	} else {
		if (parse_ip6hdr_fixed(&nh, data_end, &ip6h) < 0)
			goto out;
		if (!vip_filter_may_match(slot, ip6h->daddr.s6_addr[14], ip6h->daddr.s6_addr[15]))
			goto out;
		rkey.family = 6;
		__builtin_memcpy(rkey.addr, &ip6h->daddr, 16);

		if (ip6h->version != 6)
			goto malformed;
		proto = ipv6_skip_ext(&nh, data_end, ip6h);
		if (proto < 0)
			goto malformed;
		if (proto == FARMLB_PROTO_FRAGMENT)
			goto fragment;
		__builtin_memcpy(flow.saddr, &ip6h->saddr, 16);
		flow.addr_len = 16;
	}

	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		/* Source port first, destination port second in both headers. */
		__u32 l4_len = proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
		struct udphdr *ports = nh.pos;

		if (nh.pos + l4_len > data_end)
			goto malformed;
		/* Re-checked with a constant so the verifier knows the 4 port bytes are in. */
		if ((void *)(ports + 1) > data_end)
			goto malformed;
		__builtin_memcpy(flow.sport, &ports->source, 2);

		/* Step 4 on the resolved table: the entry for the destination port already is
		 * the winner of the four-key precedence (on_ipid skipped for IPv6 VIPs), and the
		 * VIP's "any port" entry the winner for every port no rule names. */
		rkey.proto = proto;
		rkey.port = ports->dest;
		rule = bpf_map_lookup_elem(&farmlb_rules, &rkey);
		if (!rule) {
			rkey.port = FARMLB_PORT_ANY;
			rule = bpf_map_lookup_elem(&farmlb_rules, &rkey);
		}
		if (!rule)
			goto no_rule;
		group = rule->group;
		criterion = rule->criterion;
	} else if ((proto == IPPROTO_ICMP && !is_v6) || (proto == IPPROTO_ICMPV6 && is_v6)) {
		vip = find_vip(&rkey);
		if (!vip)
			goto out;
		if (nh.pos + FARMLB_ICMP_MIN_LEN > data_end)
			goto drop_malformed;
		icmp_type = *(__u8 *)nh.pos;
		if (icmp_type == (is_v6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) {
			group = vip->icmp_group;
			criterion = FARMLB_CRIT_ADDR;
		} else if (!is_v6 && (icmp_type == ICMP_DEST_UNREACH || icmp_type == ICMP_TIME_EXCEEDED ||
				      icmp_type == ICMP_PARAMETER_PROB)) {
			set_verdict(&v, XDP_PASS, FARMLB_R_PASS_CONTROL);
			goto out;
		} else if (is_v6 && ((icmp_type >= ICMPV6_DEST_UNREACH && icmp_type <= ICMPV6_PARAMPROB) ||
				     (icmp_type >= ICMPV6_ND_FIRST && icmp_type <= ICMPV6_ND_LAST))) {
			set_verdict(&v, XDP_PASS, FARMLB_R_PASS_CONTROL);
			goto out;
		} else {
			set_verdict(&v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
			goto out;
		}
	} else {
		goto no_rule;
	}

	decide_by_bucket(&v, ctl, slot, group, criterion, &flow);
	goto out;

	/* VIP-only verdicts: each confirms the VIP first (see step 2 above). */
fragment:
	if (!find_vip(&rkey))
		goto out;
	if (lease_valid(ctl))
		set_verdict(&v, XDP_PASS, FARMLB_R_PASS_FRAGMENT);
	else
		set_verdict(&v, XDP_DROP, FARMLB_R_DROP_LEASE);
	goto out;

no_rule:
	if (!find_vip(&rkey))
		goto out;
	set_verdict(&v, XDP_DROP, FARMLB_R_DROP_NO_RULE);
	goto out;

malformed:
	if (!find_vip(&rkey))
		goto out;
drop_malformed:
	set_verdict(&v, XDP_DROP, FARMLB_R_DROP_MALFORMED);
out:
	return record(&v, data_end - data);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
