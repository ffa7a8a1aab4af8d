/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_maps.h — the maps of the XDP program, declared exactly as the comments in
 * farmlb_abi.h describe them (type, key, value, max_entries). The addon finds them by
 * these names and pins them under the module's pin directory, so the names are ABI too.
 *
 * farmlb.bpf.o holds two programs written in two translation units: farmlb.bpf.c (XDP)
 * defines the maps and the hot tables, farmlb_egress.bpf.c (tc) includes this header with
 * FARMLB_MAPS_EXTERN and so only declares them, and bpftool's static linker (bpf/Makefile)
 * resolves those declarations to the one definition: both programs read the same maps.
 */
#ifndef FARMLB_MAPS_H
#define FARMLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "farmlb_abi.h"

#ifdef FARMLB_MAPS_EXTERN
#define FARMLB_MAP extern
#else
#define FARMLB_MAP
#endif

/* The hot tables (struct farmlb_hot in farmlb_abi.h): global data in a section of its own,
 * so libbpf makes it a one-entry BPF_F_MMAPABLE array map (".data.hot", pinned as
 * farmlb_hot) and the program reads it by direct loads from a constant address: no lookup,
 * no bounds check, no key on the stack (docs/datapath.md §13). The program never writes it. */
FARMLB_MAP struct farmlb_hot farmlb_hot SEC(".data.hot");

/* farmlb_ctl.active_slot, read once per packet (volatile: the compiler must not load it
 * again later, which could give one packet two slots); anything but 1 counts as 0. */
static __always_inline __u32 hot_active_slot(void)
{
	return *(volatile const __u32 *)&farmlb_hot.ctl.active_slot == 1 ? 1 : 0;
}

/* farmlb_ctl.lease_deadline_ns: one 8-byte load, as the addon writes it with one 8-byte store. */
static __always_inline __u64 hot_lease_deadline_ns(void)
{
	return *(volatile const __u64 *)&farmlb_hot.ctl.lease_deadline_ns;
}

static __always_inline struct farmlb_slot_cfg *hot_slot_cfg(__u32 slot)
{
	return &farmlb_hot.slot_cfg[slot & (FARMLB_SLOTS - 1)];
}

/* The bucket of a slot and group: owner and previous owner (farmlb_abi.h, struct farmlb_bucket). */
static __always_inline struct farmlb_bucket *bucket_entry(__u32 slot, __u32 group, __u32 bucket)
{
	__u32 idx = (slot * FARMLB_MAX_GROUPS + group) * FARMLB_NBUCKETS + bucket;

	if (idx >= FARMLB_BUCKET_ENTRIES) /* slot < FARMLB_SLOTS, group < FARMLB_MAX_GROUPS: never */
		return NULL;
	return &farmlb_hot.buckets[idx];
}

/* Owner of a bucket of the slot, FARMLB_NODE_NONE when nobody's (group < FARMLB_MAX_GROUPS). */
static __always_inline __u8 bucket_owner(__u32 slot, __u32 group, __u32 bucket)
{
	struct farmlb_bucket *bkt = bucket_entry(slot, group, bucket);

	return bkt ? bkt->owner : FARMLB_NODE_NONE;
}

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_VIPS_ENTRIES);
	__type(key, struct farmlb_vip_key);
	__type(value, struct farmlb_vip);
} farmlb_vips SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_RULES_ENTRIES);
	__type(key, struct farmlb_rule_key);
	__type(value, struct farmlb_rule);
} farmlb_rules SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_RULE_SPECS_ENTRIES);
	__type(key, struct farmlb_rule_spec_key);
	__type(value, struct farmlb_rule);
} farmlb_rule_specs SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FARMLB_NODES_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_node);
} farmlb_nodes SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_NODES_ENTRIES);
	__type(key, struct farmlb_mac_key);
	__type(value, struct farmlb_node_ref);
} farmlb_node_macs SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct farmlb_iface);
} farmlb_ifaces SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_IFACE_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_iface_cache);
} farmlb_iface_cache SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FARMLB_REQUESTERS_ENTRIES);
	__type(key, struct farmlb_requester_key);
	__type(value, struct farmlb_requester);
} farmlb_requesters SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct farmlb_requester_budget);
} farmlb_requester_budget SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct farmlb_lease_clock);
} farmlb_lease_clock SEC(".maps");

/* Per CPU so the hot path needs no atomics: each CPU owns its slot, and readers sum
 * the slots (same reasoning as xdp-tools' xdp_stats_kern.h). */
FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_R_MAX);
	__type(key, __u32);
	__type(value, struct farmlb_counter);
} farmlb_stats SEC(".maps");

FARMLB_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_BUCKET_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_bucket_counter);
} farmlb_bucket_stats SEC(".maps");

#endif /* FARMLB_MAPS_H */
