/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_maps.h — the maps of the XDP program, declared exactly as the comments in
 * farmlb_abi.h describe them (type, key, value, max_entries). The addon finds them by
 * these names and pins them under the module's pin directory, so the names are ABI too.
 */
#ifndef FARMLB_MAPS_H
#define FARMLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "farmlb_abi.h"

/* The hot tables (struct farmlb_hot in farmlb_abi.h): global data in a section of its own,
 * so libbpf makes it a one-entry BPF_F_MMAPABLE array map (".data.hot", pinned as
 * farmlb_hot) and the program reads it by direct loads from a constant address: no lookup,
 * no bounds check, no key on the stack (docs/datapath.md §13). The program never writes it. */
struct farmlb_hot farmlb_hot SEC(".data.hot");

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_VIPS_ENTRIES);
	__type(key, struct farmlb_vip_key);
	__type(value, struct farmlb_vip);
} farmlb_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_RULES_ENTRIES);
	__type(key, struct farmlb_rule_key);
	__type(value, struct farmlb_rule);
} farmlb_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_RULE_SPECS_ENTRIES);
	__type(key, struct farmlb_rule_spec_key);
	__type(value, struct farmlb_rule);
} farmlb_rule_specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FARMLB_NODES_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_node);
} farmlb_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_NODES_ENTRIES);
	__type(key, struct farmlb_mac_key);
	__type(value, struct farmlb_node_ref);
} farmlb_node_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FARMLB_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct farmlb_iface);
} farmlb_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_IFACE_CACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_iface_cache);
} farmlb_iface_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FARMLB_REQUESTERS_ENTRIES);
	__type(key, struct farmlb_requester_key);
	__type(value, struct farmlb_requester);
} farmlb_requesters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct farmlb_requester_budget);
} farmlb_requester_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct farmlb_lease_clock);
} farmlb_lease_clock SEC(".maps");

/* Per CPU so the hot path needs no atomics: each CPU owns its slot, and readers sum
 * the slots (same reasoning as xdp-tools' xdp_stats_kern.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_R_MAX);
	__type(key, __u32);
	__type(value, struct farmlb_counter);
} farmlb_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FARMLB_BUCKET_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct farmlb_bucket_counter);
} farmlb_bucket_stats SEC(".maps");

#endif /* FARMLB_MAPS_H */
