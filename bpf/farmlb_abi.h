/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * farmlb_abi.h — the one place where every map key/value layout, constant,
 * verdict reason and load-time knob shared by the XDP program (bpf/) and the
 * addon (native/) is defined. The TypeScript mirror is src/dataplane/abi.ts;
 * src/dataplane/abi-check.ts compares it field by field with the sizes and
 * offsets in the BTF of the compiled object (every struct a map or the hot
 * tables hold), so a change here without the mirror fails a test, and an
 * object built from another header is refused at load, instead of a node
 * writing garbage.
 *
 * Byte order is given in a comment on every multi-byte field: "host" means the
 * CPU's order (the addon and the program run on the same machine), "network"
 * means big-endian as on the wire.
 */
#ifndef FARMLB_ABI_H
#define FARMLB_ABI_H

#include <linux/types.h>

/* A bucket table has 256 entries: the hash is reduced with reciprocal_scale(h, 256),
 * which is what nftables computes for `jhash ... mod 256`, and matches SafeKit's
 * 256-bit bitmap (seed 001, section 13.6.7.4). */
#define FARMLB_NBUCKETS 256

#ifndef FARMLB_MAX_GROUPS
#define FARMLB_MAX_GROUPS 16
#endif
#ifndef FARMLB_MAX_VIPS
#define FARMLB_MAX_VIPS 64
#endif
#ifndef FARMLB_MAX_RULES
#define FARMLB_MAX_RULES 256
#endif
/* Node ids are indexes into cluster.xml's node list; one byte keeps the bucket
 * value at four bytes and leaves 0xff for "no owner". */
#define FARMLB_MAX_NODES 64
#define FARMLB_NODE_NONE 0xff
/* Interfaces one program instance can be attached to (farmlb_ifaces entries). */
#ifndef FARMLB_MAX_IFACES
#define FARMLB_MAX_IFACES 64
#endif
/* Requesters remembered for arpreroute (farmlb_requesters, an LRU: the oldest go first). */
#ifndef FARMLB_REQUESTERS_ENTRIES
#define FARMLB_REQUESTERS_ENTRIES 16384
#endif
/* New requesters recorded per window (farmlb_requester_budget): a flood of spoofed ARP
 * requests / NS from new addresses records at most this many a window, so it takes
 * ENTRIES / NEW_PER_WINDOW windows (over 4 minutes) to push a real client out of the LRU;
 * a requester already recorded is refreshed whatever the budget. */
#define FARMLB_REQUESTERS_NEW_PER_WINDOW 1024
#define FARMLB_REQUESTERS_WINDOW_NS 16000000000ULL
#define FARMLB_GROUP_NONE 0xff
/* vip_id of a rule whose virtual_addr is "*". */
#define FARMLB_VIP_ANY 0xffff
/* port of a rule whose port is "*" (port 0 is never a valid rule port). */
#define FARMLB_PORT_ANY 0

/* Tables are double-buffered: the daemon writes the inactive slot completely and
 * then flips farmlb_ctl.active_slot, so a packet sees either the old config or the
 * new one, never a mix. */
#define FARMLB_SLOTS 2

/* Seed used when the config gives none. Any fixed value works; it must only be the
 * same on every node (it is part of the config digest). */
#define FARMLB_DEFAULT_HASH_SEED 0x6661726dU /* "farm" */

/* The program's lease clock is CLOCK_MONOTONIC_COARSE (bpf_ktime_get_coarse_ns(), about
 * half the cost of bpf_ktime_get_ns(): 20 vs 37 ns per call on the reference VM), read at
 * most once per tick per CPU and cached in farmlb_lease_clock (a jiffies check is inlined,
 * free). Same base as CLOCK_MONOTONIC, but it moves once per scheduler tick, and a reading
 * may be kept for one more tick (see lease_clock_ns() in farmlb.bpf.c): "now" lags
 * CLOCK_MONOTONIC by less than two ticks (8 ms at HZ=250, 20 ms at HZ=100). Consequence:
 * the program may still accept VIP traffic that long after lease_deadline_ns. Whoever waits
 * for a lease to run out (a node taking over buckets from a silent peer) must wait until
 * deadline + FARMLB_LEASE_CLOCK_SLACK_NS; 20 ms covers every HZ Linux offers (>= 100). */
#define FARMLB_LEASE_CLOCK_SLACK_NS 20000000ULL

enum farmlb_criterion {
	FARMLB_CRIT_ADDR = 0, /* on_addr: source address, 4 or 16 bytes, wire order */
	FARMLB_CRIT_PORT = 1, /* on_port: source port, 2 bytes, wire order */
	FARMLB_CRIT_IPID = 2, /* on_ipid: IPv4 identification, 2 bytes, wire order */
};

enum farmlb_mode {
	FARMLB_MODE_INVISIBLE = 0, /* vmac_invisible */
	FARMLB_MODE_DIRECTED = 1,  /* vmac_directed */
};

/* Why the program returned what it returned. Counted per CPU in farmlb_stats; the
 * TS model returns the same reason for every packet, so the differential test
 * compares reasons as well as verdicts. */
enum farmlb_reason {
	FARMLB_R_PASS_NOT_VIP = 0,   /* not IP/IPv6, unreadable, or not to a VIP */
	FARMLB_R_PASS_OWNED = 1,     /* this node owns the bucket and holds the lease */
	FARMLB_R_PASS_FRAGMENT = 2,  /* non-first fragment to a VIP: decided by reassembly */
	FARMLB_R_PASS_CONTROL = 3,   /* ICMP error or neighbour discovery to a VIP */
	FARMLB_R_DROP_NOT_OWNED = 4, /* bucket owned by another node, or by none */
	FARMLB_R_DROP_NO_RULE = 5,   /* VIP traffic no rule covers (SafeKit denies it) */
	FARMLB_R_DROP_LEASE = 6,     /* owned, but the kernel lease has run out */
	FARMLB_R_DROP_MALFORMED = 7, /* to a VIP, but a header is truncated or invalid */
	FARMLB_R_TX_ARP_REPLY = 8,   /* this node answered an ARP request / neighbour solicitation for a VIP */
	FARMLB_R_DROP_ARP_NOT_MINE = 9, /* another node answers this ARP request / solicitation */
	FARMLB_R_TX_FORWARD = 10,    /* vmac_directed: sent on to the bucket's owner (XDP_TX) */
	FARMLB_R_DROP_ARP_DAD = 11,  /* ARP probe / DAD solicitation (requester 0.0.0.0 or ::): never answered */
	FARMLB_R_DROP_NO_IFACE = 12, /* an answer or a forward was due, but farmlb_ifaces has no MAC for the interface */
	/* Handover (docs/datapath.md §12): a TCP packet of a bucket that names a previous owner. */
	FARMLB_R_PASS_HANDOVER_PREV = 13, /* previous owner: a packet of a connection it still holds */
	FARMLB_R_PASS_HANDOVER_NEW = 14,  /* owner: a SYN, or a packet of a connection it holds */
	FARMLB_R_DROP_HANDOVER = 15,      /* owner or previous owner: a packet of the other's connection (or of none) */
	FARMLB_R_TX_FORWARD_PREV = 16,    /* vmac_directed, owner: sent on to the previous owner (the one second hop) */
	FARMLB_R_MAX = 17,
};

/* farmlb_ctl: member ctl of farmlb_hot (below; was an ARRAY of one entry). Written by the daemon only. */
struct farmlb_ctl {
	__u64 lease_deadline_ns; /* host; CLOCK_MONOTONIC ns; VIP traffic is accepted while now < deadline,
				  * "now" read from the coarse clock (see FARMLB_LEASE_CLOCK_SLACK_NS) */
	__u32 active_slot;       /* host; 0 or 1: which slot of the tables below packets use */
	__u32 iface_gen;         /* host; bumped by the daemon after every write to farmlb_ifaces: an entry of
				  * farmlb_iface_cache filled under another value is stale */
};

/* farmlb_slot_cfg: member slot_cfg[slot] of farmlb_hot. */
struct farmlb_slot_cfg {
	__u32 hash_seed;  /* host; jhash initval, identical on every node of a farm */
	__u8 self_node;   /* this node's id, FARMLB_NODE_NONE when not in the cluster */
	__u8 _pad0[3];
	__u8 vmac[6];     /* virtual MAC of vmac_invisible: what ARP/NS answers announce */
	__u8 _pad1[2];
};

/* farmlb_vips: HASH, key farmlb_vip_key, value farmlb_vip. Every VIP of a slot. The program
 * reads it only for destinations whose farmlb_vip_index entry is FARMLB_VIP_INDEX_MANY
 * (several VIPs share the index); the tc egress program always. The daemon reads the
 * applied VIPs back from it. */
struct farmlb_vip_key {
	__u8 slot;
	__u8 family;   /* 4 or 6 */
	__u8 _pad0[2];
	__u8 addr[16]; /* network; IPv4 in the first 4 bytes, the rest zero */
};

struct farmlb_vip {
	__u16 vip_id;     /* host; index of the VIP in userconfig.xml, file order */
	__u8 icmp_group;  /* first group (file order) whose rules cover this VIP, or FARMLB_GROUP_NONE */
	__u8 mode;        /* enum farmlb_mode of the VIP's <virtual_interface> */
	__u8 arp_group;   /* group of the proto="arp" rule covering this VIP (a VIP-specific rule beats '*'),
			   * or FARMLB_GROUP_NONE; decides who answers ARP/NS in vmac_directed */
	__u8 _pad0[3];
};

/* farmlb_rules: HASH, key farmlb_rule_key, value farmlb_rule. The *resolved* rule table:
 * the daemon (src/dataplane/rule-table.ts) precomputes, for every VIP, protocol and port a
 * rule names, which rule wins under the precedence of docs/datapath.md §4
 * ((vip, port) > (vip, *) > (*, port) > (*, *), on_ipid skipped for IPv6 VIPs). Complete
 * (every resolved entry of every VIP), but the program reads it only where the inline table
 * of farmlb_vip_desc cannot answer: for a VIP sharing its index with another VIP (at most
 * two lookups, (addr, proto, dport) then (addr, proto, *)), and for a port that did not fit
 * a VIP's inline table (FARMLB_VIP_F_OVERFLOW_*: one lookup, (addr, proto, dport)). Keyed by
 * the VIP address rather than its id so that a hit needs no farmlb_vips lookup first: a hit
 * also proves the destination is a VIP. */
struct farmlb_rule_key {
	__u8 slot;
	__u8 family;   /* 4 or 6: an IPv6 address may have the same 16 bytes as an IPv4 key */
	__u8 proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 _pad0;
	__u16 port;    /* network; destination port, FARMLB_PORT_ANY for the VIP's "any other port" entry */
	__u16 _pad1;
	__u8 addr[16]; /* network; the VIP, IPv4 in the first 4 bytes, the rest zero */
};

struct farmlb_rule {
	__u8 group;     /* index of the rule's <group>, file order */
	__u8 criterion; /* enum farmlb_criterion */
	__u8 mode;      /* farmlb_rules only: enum farmlb_mode of the entry's VIP, so a packet decided by
			 * the resolved table knows whether to forward without a farmlb_vips lookup;
			 * 0 in farmlb_rule_specs */
	__u8 _pad0;
};

/* farmlb_rule_specs: HASH, key farmlb_rule_spec_key, value farmlb_rule. The rules as the
 * config states them (VIP id or "*", port or "*"). The program never reads this map: it is
 * the record from which the CLI and a restarted daemon read the applied tables back, which
 * the resolved table cannot give (a rule shadowed for every VIP leaves no entry there). */
struct farmlb_rule_spec_key {
	__u8 slot;
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port;   /* network; destination port, FARMLB_PORT_ANY for "*" */
	__u16 vip_id; /* host; FARMLB_VIP_ANY for "*" */
	__u16 _pad0;
};

/* farmlb_vip_index: member vip_index[slot] of farmlb_hot. A direct-mapped index over
 * the slot's VIP addresses (IPv4 and IPv6 share it), addressed by the last two address bytes
 * (what varies inside a VIP subnet): entry[FARMLB_VIP_INDEX_OF(hi, lo)] says
 *   FARMLB_VIP_INDEX_NONE  no VIP of the slot ends so: the destination is not a VIP;
 *   1..FARMLB_MAX_VIPS     exactly one does, descriptor farmlb_vip_desc[slot * FARMLB_MAX_VIPS + entry - 1]:
 *                          compare its address, and it decides without any hash lookup;
 *   FARMLB_VIP_INDEX_MANY  several do: the hash maps farmlb_vips and farmlb_rules decide.
 * Both are global data read by direct loads (no lookup at all) where a hash lookup costs
 * ~27 ns on the reference VM, so the common VIP packet costs two loads and a short scan. An entry other than a descriptor number is never a verdict by itself: the
 * address compare or the hash lookups decide (a collision costs lookups, never a verdict). */
#define FARMLB_VIP_INDEX_BITS 12
#define FARMLB_VIP_INDEX_SIZE (1 << FARMLB_VIP_INDEX_BITS)
#define FARMLB_VIP_INDEX_NONE 0
#define FARMLB_VIP_INDEX_MANY 0xff
struct farmlb_vip_index {
	__u8 entry[FARMLB_VIP_INDEX_SIZE]; /* FARMLB_VIP_INDEX_NONE, a descriptor number, or FARMLB_VIP_INDEX_MANY */
};

/* Entry of the index for an address whose last two bytes (network order) are hi, lo. */
#define FARMLB_VIP_INDEX_OF(hi, lo) (((((__u32)(hi)) << 8) | (__u32)(lo)) & (FARMLB_VIP_INDEX_SIZE - 1))

/* Port rules of one VIP kept inline in its descriptor. Eight covers the usual farm (a few
 * service ports per VIP); a VIP with more keeps the first eight (TCP before UDP, ports
 * ascending) and sets FARMLB_VIP_F_OVERFLOW_<proto> for the protocol whose ports did not all
 * fit, whose other ports are then looked up in farmlb_rules. It is also the scan's bound. */
#ifndef FARMLB_VIP_INLINE_PORTS
#define FARMLB_VIP_INLINE_PORTS 8
#endif

/* farmlb_vip_desc flags. */
#define FARMLB_VIP_F_ANY_TCP 0x01      /* any_port[0] holds the rule of every TCP port without its own entry */
#define FARMLB_VIP_F_ANY_UDP 0x02      /* any_port[1], the same for UDP */
#define FARMLB_VIP_F_OVERFLOW_TCP 0x04 /* some TCP port entries did not fit ports[]: look them up in farmlb_rules */
#define FARMLB_VIP_F_OVERFLOW_UDP 0x08 /* the same for UDP */

/* One resolved (proto, port) entry of a VIP, as farmlb_rules holds it for (VIP, proto, port). */
struct farmlb_vip_port {
	__u16 port;  /* network; destination port, never FARMLB_PORT_ANY */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 _pad0;
	struct farmlb_rule rule;
};

/* farmlb_vip_desc: member vip_desc[slot * FARMLB_MAX_VIPS + k] of farmlb_hot.
 * Descriptor k of a slot: one VIP (k = its position in the applied table), everything the
 * program needs to decide a packet to it. Unused descriptors have family 0. */
struct farmlb_vip_desc {
	__u8 addr[16];     /* network; IPv4 in the first 4 bytes, the rest zero (8-aligned: compared as two __u64) */
	__u8 family;       /* 4 or 6; 0: unused */
	__u8 flags;        /* FARMLB_VIP_F_* */
	__u8 nports;       /* entries used in ports[], at most FARMLB_VIP_INLINE_PORTS */
	__u8 _pad0;
	struct farmlb_vip vip;          /* what farmlb_vips holds for this VIP */
	struct farmlb_rule any_port[2]; /* [0] TCP, [1] UDP: the VIP's "any other port" entry, valid with FARMLB_VIP_F_ANY_* */
	struct farmlb_vip_port ports[FARMLB_VIP_INLINE_PORTS]; /* the first resolved port entries, TCP before UDP, ports ascending */
};

/* farmlb_buckets: member buckets[(slot * FARMLB_MAX_GROUPS + group) * FARMLB_NBUCKETS + bucket]
 * of farmlb_hot. */
struct farmlb_bucket {
	__u8 owner;      /* node id, FARMLB_NODE_NONE when nobody serves the bucket */
	__u8 prev_owner; /* node id while the bucket is handed over (docs/datapath.md §12), else
			  * FARMLB_NODE_NONE; never equal to owner */
	__u8 flags;
	__u8 _pad0;
};

/* farmlb_nodes: ARRAY, FARMLB_SLOTS * FARMLB_MAX_NODES entries, key slot * FARMLB_MAX_NODES +
 * node id. The MAC of each farm node on the LAN of the VIP interface: where vmac_directed
 * forwards a packet another node owns. */
#define FARMLB_NODE_F_KNOWN 0x01 /* mac is valid; without it the node cannot be forwarded to */
struct farmlb_node {
	__u8 mac[6];
	__u8 flags; /* FARMLB_NODE_F_* */
	__u8 _pad0;
};

/* farmlb_node_macs: HASH, key farmlb_mac_key, value farmlb_node_ref, FARMLB_SLOTS *
 * FARMLB_MAX_NODES entries. "Is this source MAC a farm node?": a frame from a node was
 * forwarded already and is never forwarded again (no loops). Read on the forwarding path only. */
struct farmlb_mac_key {
	__u8 slot;
	__u8 _pad0;
	__u8 mac[6];
};

struct farmlb_node_ref {
	__u8 node; /* node id */
	__u8 _pad0[3];
};

/* farmlb_ifaces: HASH, key __u32 ifindex (host), value farmlb_iface, FARMLB_MAX_IFACES entries.
 * The MAC of each interface the program is attached to (XDP has no helper to read it): the
 * source of every frame the program transmits and the destination it gives VMAC frames it
 * passes. Written by the daemon before it attaches, removed after it detaches. Not slotted. */
struct farmlb_iface {
	__u8 mac[6];
	__u8 _pad0[2];
};

/* farmlb_iface_cache: PERCPU_ARRAY, FARMLB_IFACE_CACHE_ENTRIES entries, key ifindex %
 * FARMLB_IFACE_CACHE_ENTRIES. Written by the program only: each CPU's copy of recent
 * farmlb_ifaces answers (found or not), so that a frame to rewrite (vmac_invisible: every
 * owned client frame sent to the VMAC) costs an inlined array lookup instead of a hash
 * lookup. Direct-mapped by ifindex, so several interfaces each keep their entry unless their
 * ifindexes collide (then they take turns, each turn one farmlb_ifaces lookup). An entry is
 * used only while its gen equals farmlb_ctl.iface_gen: the daemon bumps that after writing
 * farmlb_ifaces, and the program reads gen before farmlb_ifaces, so an entry filled under
 * the current gen is never older than the map. Per CPU, like farmlb_lease_clock: XDP does not
 * nest on a CPU, so each copy has one writer and plain stores are exact. farmlb_ifaces stays
 * the source of truth. */
#define FARMLB_IFACE_CACHE_ENTRIES 16
struct farmlb_iface_cache {
	__u32 ifindex; /* host; 0: empty (no interface has ifindex 0) */
	__u32 gen;     /* host; farmlb_ctl.iface_gen read before the farmlb_ifaces lookup that filled it */
	__u8 mac[6];   /* farmlb_ifaces[ifindex].mac when known */
	__u8 known;    /* 1: farmlb_ifaces had the interface; 0: it had not (DROP_NO_IFACE, no rewrite) */
	__u8 _pad0;
};

/* farmlb_requesters: LRU_HASH, key farmlb_requester_key, value farmlb_requester,
 * FARMLB_REQUESTERS_ENTRIES entries. Every ARP request / neighbour solicitation for a VIP
 * this node sees (whoever answers it; probes and DAD excepted) records its requester, so
 * that when buckets of the arp group move, the new owner can tell exactly the clients of the
 * moved buckets where the VIP now is (arpreroute). Written by the program, read by the daemon. */
struct farmlb_requester_key {
	__u8 family;   /* 4 or 6 */
	__u8 _pad0[3];
	__u8 addr[16]; /* network; the requester's address, IPv4 in the first 4 bytes, the rest zero */
};

struct farmlb_requester {
	__u64 last_seen_ns; /* host; CLOCK_MONOTONIC (bpf_ktime_get_ns()) of the last request */
	__u8 mac[6];        /* the request's Ethernet source: where a unicast reply goes */
	__u8 group;         /* the group that decided who answers (FARMLB_GROUP_NONE: every node or none) */
	__u8 bucket;        /* bucket of the requester's address (hash as on_addr, slot seed) */
	__u16 vip_id;       /* host; the VIP asked for */
	__u8 _pad0[6];
};

/* farmlb_requester_budget: ARRAY, one entry, key __u32 0. Written by the program only: how
 * many new requesters it recorded in the current window, and how many it could not record
 * since it was loaded (the daemon reports them: farmlb_requesters_refused_total). One
 * entry for every CPU, updated with atomic adds; the window's reset races benignly (a few
 * more admissions at a window's edge). */
struct farmlb_requester_budget {
	__u64 window_ns; /* host; bpf_ktime_get_ns() at the window's start */
	__u64 admitted;  /* host; new requesters recorded in this window */
	__u64 refused;   /* host; new requesters not recorded (budget spent) since load */
};

/* farmlb_lease_clock: PERCPU_ARRAY, one entry, key __u32 0. Written by the program only:
 * this CPU's last reading of the lease clock and the jiffies value it was read at, so that
 * the clock helper runs once per tick per CPU instead of once per packet (see
 * lease_clock_ns() in farmlb.bpf.c and FARMLB_LEASE_CLOCK_SLACK_NS). Per CPU because the
 * two fields are written without atomics: XDP does not nest on a CPU, so each CPU's copy
 * has one writer and its reader is that writer. */
struct farmlb_lease_clock {
	__u64 jiffies; /* host; bpf_jiffies64() when now_ns was read */
	__u64 now_ns;  /* host; bpf_ktime_get_coarse_ns() at that moment */
};

/* farmlb_stats: PERCPU_ARRAY, FARMLB_R_MAX entries, key enum farmlb_reason. */
struct farmlb_counter {
	__u64 packets; /* host */
	__u64 bytes;   /* host; frame length as seen by XDP */
};

/* farmlb_bucket_stats: PERCPU_ARRAY, FARMLB_MAX_GROUPS * FARMLB_NBUCKETS entries,
 * key group * FARMLB_NBUCKETS + bucket. Not slotted: counters survive a reload.
 * One counter update per packet on the common path: a packet the bucket decided as
 * PASS_OWNED or DROP_NOT_OWNED is counted in owned / not_owned only, neither in farmlb_stats
 * nor in accepted / dropped. Readers add them back (src/dataplane/xdp.ts):
 *   reason pass_owned      = farmlb_stats[PASS_OWNED]     + sum over buckets of owned
 *   reason drop_not_owned  = farmlb_stats[DROP_NOT_OWNED] + sum over buckets of not_owned
 *   bucket accepted        = accepted + owned.packets
 *   bucket dropped         = dropped + not_owned.packets */
struct farmlb_bucket_counter {
	__u64 accepted; /* host; packets this node passed for the bucket, and ARP/NS it answered
			 * (PASS_OWNED excepted: in owned) */
	__u64 dropped;  /* host; everything else the bucket decided: dropped (lease out, another
			 * node answers the ARP/NS) or forwarded to the owner (TX_FORWARD); DROP_NOT_OWNED
			 * excepted: in not_owned */
	struct farmlb_counter owned;     /* PASS_OWNED of this bucket: packets, bytes */
	struct farmlb_counter not_owned; /* DROP_NOT_OWNED of this bucket: packets, bytes */
};

#define FARMLB_BUCKET_ENTRIES (FARMLB_SLOTS * FARMLB_MAX_GROUPS * FARMLB_NBUCKETS)
#define FARMLB_BUCKET_STATS_ENTRIES (FARMLB_MAX_GROUPS * FARMLB_NBUCKETS)
#define FARMLB_VIPS_ENTRIES (FARMLB_SLOTS * FARMLB_MAX_VIPS)
/* Resolved entries one slot can need: per VIP, at most one per rule (a port entry needs a
 * (vip, port) or (*, port) rule, the "any port" entry a (vip, *) or (*, *) rule, per
 * protocol), so MAX_RULES; the + 1 is headroom that keeps the bound obviously safe.
 * XdpDataplane.apply checks the count against it before writing anything. */
#define FARMLB_RESOLVED_RULES_PER_SLOT (FARMLB_MAX_VIPS * (FARMLB_MAX_RULES + 1))
#define FARMLB_RULES_ENTRIES (FARMLB_SLOTS * FARMLB_RESOLVED_RULES_PER_SLOT)
#define FARMLB_RULE_SPECS_ENTRIES (FARMLB_SLOTS * FARMLB_MAX_RULES)
#define FARMLB_VIP_DESC_ENTRIES (FARMLB_SLOTS * FARMLB_MAX_VIPS)
#define FARMLB_NODES_ENTRIES (FARMLB_SLOTS * FARMLB_MAX_NODES)

/* farmlb_hot: the tables every VIP packet reads, as global data of the program rather than
 * array maps: one BPF_F_MMAPABLE ARRAY of one entry (libbpf's map ".data.hot", pinned as
 * farmlb_hot), key __u32 0, this struct its value. The program reads it by direct loads
 * (no lookup, no bounds check, no key on the stack); the addon writes it through a shared
 * mmap() of the map, field by field, never with bpf_map_update_elem (which would copy the
 * whole 53 KB value, active slot included, in no defined order). The members are what the
 * array maps of the same names held, at index slot * n + i as before:
 *   ctl        farmlb_ctl[0]
 *   slot_cfg   farmlb_slot_cfg[slot]
 *   vip_index  farmlb_vip_index[slot]
 *   vip_desc   farmlb_vip_desc[slot * FARMLB_MAX_VIPS + k]
 *   buckets    farmlb_buckets[(slot * FARMLB_MAX_GROUPS + group) * FARMLB_NBUCKETS + bucket]
 * Ordering (docs/datapath.md §13): a table is written to the inactive slot, then
 * ctl.active_slot with one 4-byte release store; ctl.lease_deadline_ns with one aligned
 * 8-byte store, ctl.iface_gen with one 4-byte release store after farmlb_ifaces. */
struct farmlb_hot {
	struct farmlb_ctl ctl;
	struct farmlb_slot_cfg slot_cfg[FARMLB_SLOTS];
	struct farmlb_vip_index vip_index[FARMLB_SLOTS];
	struct farmlb_vip_desc vip_desc[FARMLB_VIP_DESC_ENTRIES];
	struct farmlb_bucket buckets[FARMLB_BUCKET_ENTRIES];
};

/* The tc egress filter (farmlb_egress) on clsact egress: a fixed handle and priority, so
 * attaching again replaces it in place and detaching removes ours and nothing else. */
#define FARMLB_TC_HANDLE 0x666c62U  /* "flb" */
#define FARMLB_TC_PRIORITY 0x666c

#ifdef __cplusplus
#define FARMLB_STATIC_ASSERT static_assert
#else
#define FARMLB_STATIC_ASSERT _Static_assert
#endif
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_ctl) == 16, "farmlb_ctl layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_slot_cfg) == 16, "farmlb_slot_cfg layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_vip_key) == 20, "farmlb_vip_key layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_vip) == 8, "farmlb_vip layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_node) == 8, "farmlb_node layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_mac_key) == 8, "farmlb_mac_key layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_node_ref) == 4, "farmlb_node_ref layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_iface) == 8, "farmlb_iface layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_requester_key) == 20, "farmlb_requester_key layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_requester) == 24, "farmlb_requester layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_rule_key) == 24, "farmlb_rule_key layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_rule_spec_key) == 8, "farmlb_rule_spec_key layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_vip_index) == FARMLB_VIP_INDEX_SIZE, "farmlb_vip_index layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_vip_port) == 8, "farmlb_vip_port layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_vip_desc) == 36 + 8 * FARMLB_VIP_INLINE_PORTS, "farmlb_vip_desc layout");
FARMLB_STATIC_ASSERT(__builtin_offsetof(struct farmlb_vip_desc, vip) == 20, "farmlb_vip_desc layout");
FARMLB_STATIC_ASSERT(__builtin_offsetof(struct farmlb_vip_desc, ports) == 36, "farmlb_vip_desc layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_iface_cache) == 16, "farmlb_iface_cache layout");
/* A descriptor number must fit an index byte and differ from NONE and MANY. */
FARMLB_STATIC_ASSERT(FARMLB_MAX_VIPS < FARMLB_VIP_INDEX_MANY, "descriptor numbers fit an index entry");
FARMLB_STATIC_ASSERT((FARMLB_IFACE_CACHE_ENTRIES & (FARMLB_IFACE_CACHE_ENTRIES - 1)) == 0, "cache size is a power of two");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_rule) == 4, "farmlb_rule layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_bucket) == 4, "farmlb_bucket layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_lease_clock) == 16, "farmlb_lease_clock layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_requester_budget) == 24, "farmlb_requester_budget layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_counter) == 16, "farmlb_counter layout");
FARMLB_STATIC_ASSERT(sizeof(struct farmlb_bucket_counter) == 48, "farmlb_bucket_counter layout");
/* The lease is written with one 8-byte store: it must be 8-aligned in the mapping. */
FARMLB_STATIC_ASSERT(__builtin_offsetof(struct farmlb_hot, ctl) == 0, "farmlb_hot layout");
FARMLB_STATIC_ASSERT(__builtin_offsetof(struct farmlb_hot, buckets) % 4 == 0, "farmlb_hot layout");

#endif /* FARMLB_ABI_H */
