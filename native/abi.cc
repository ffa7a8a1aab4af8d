// abiLayout / abiConstants: sizes, offsets and constants of bpf/farmlb_abi.h as the C
// compiler sees them, for test/unit/abi.test.ts to compare with src/dataplane/abi.ts.
#include "abi.h"

extern "C" {
#include "farmlb_abi.h"
}

#include <cstddef>

namespace farmlb {

namespace {

class StructLayout {
 public:
  StructLayout(Napi::Env env, Napi::Object layout, const char* name, size_t size)
      : env_(env), fields_(Napi::Object::New(env)) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("size", Napi::Number::New(env, double(size)));
    s.Set("fields", fields_);
    layout.Set(name, s);
  }
  StructLayout& Field(const char* name, size_t offset, size_t size) {
    Napi::Object f = Napi::Object::New(env_);
    f.Set("offset", Napi::Number::New(env_, double(offset)));
    f.Set("size", Napi::Number::New(env_, double(size)));
    fields_.Set(name, f);
    return *this;
  }

 private:
  Napi::Env env_;
  Napi::Object fields_;
};

#define ABI_STRUCT(S) StructLayout(env, layout, #S, sizeof(struct S))
#define ABI_FIELD(S, F) Field(#F, offsetof(struct S, F), sizeof(((struct S*)nullptr)->F))

}  // namespace

Napi::Object AbiLayout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  ABI_STRUCT(farmlb_ctl)
      .ABI_FIELD(farmlb_ctl, lease_deadline_ns)
      .ABI_FIELD(farmlb_ctl, active_slot)
      .ABI_FIELD(farmlb_ctl, iface_gen);
  ABI_STRUCT(farmlb_slot_cfg)
      .ABI_FIELD(farmlb_slot_cfg, hash_seed)
      .ABI_FIELD(farmlb_slot_cfg, self_node)
      .ABI_FIELD(farmlb_slot_cfg, _pad0)
      .ABI_FIELD(farmlb_slot_cfg, vmac)
      .ABI_FIELD(farmlb_slot_cfg, _pad1);
  ABI_STRUCT(farmlb_vip_key)
      .ABI_FIELD(farmlb_vip_key, slot)
      .ABI_FIELD(farmlb_vip_key, family)
      .ABI_FIELD(farmlb_vip_key, _pad0)
      .ABI_FIELD(farmlb_vip_key, addr);
  ABI_STRUCT(farmlb_vip)
      .ABI_FIELD(farmlb_vip, vip_id)
      .ABI_FIELD(farmlb_vip, icmp_group)
      .ABI_FIELD(farmlb_vip, mode)
      .ABI_FIELD(farmlb_vip, arp_group)
      .ABI_FIELD(farmlb_vip, _pad0);
  ABI_STRUCT(farmlb_rule_key)
      .ABI_FIELD(farmlb_rule_key, slot)
      .ABI_FIELD(farmlb_rule_key, family)
      .ABI_FIELD(farmlb_rule_key, proto)
      .ABI_FIELD(farmlb_rule_key, _pad0)
      .ABI_FIELD(farmlb_rule_key, port)
      .ABI_FIELD(farmlb_rule_key, _pad1)
      .ABI_FIELD(farmlb_rule_key, addr);
  ABI_STRUCT(farmlb_rule_spec_key)
      .ABI_FIELD(farmlb_rule_spec_key, slot)
      .ABI_FIELD(farmlb_rule_spec_key, proto)
      .ABI_FIELD(farmlb_rule_spec_key, port)
      .ABI_FIELD(farmlb_rule_spec_key, vip_id)
      .ABI_FIELD(farmlb_rule_spec_key, _pad0);
  ABI_STRUCT(farmlb_vip_index)
      .ABI_FIELD(farmlb_vip_index, entry);
  ABI_STRUCT(farmlb_vip_port)
      .ABI_FIELD(farmlb_vip_port, port)
      .ABI_FIELD(farmlb_vip_port, proto)
      .ABI_FIELD(farmlb_vip_port, _pad0)
      .ABI_FIELD(farmlb_vip_port, rule);
  ABI_STRUCT(farmlb_vip_desc)
      .ABI_FIELD(farmlb_vip_desc, addr)
      .ABI_FIELD(farmlb_vip_desc, family)
      .ABI_FIELD(farmlb_vip_desc, flags)
      .ABI_FIELD(farmlb_vip_desc, nports)
      .ABI_FIELD(farmlb_vip_desc, _pad0)
      .ABI_FIELD(farmlb_vip_desc, vip)
      .ABI_FIELD(farmlb_vip_desc, any_port)
      .ABI_FIELD(farmlb_vip_desc, ports);
  ABI_STRUCT(farmlb_rule)
      .ABI_FIELD(farmlb_rule, group)
      .ABI_FIELD(farmlb_rule, criterion)
      .ABI_FIELD(farmlb_rule, mode)
      .ABI_FIELD(farmlb_rule, _pad0);
  ABI_STRUCT(farmlb_node)
      .ABI_FIELD(farmlb_node, mac)
      .ABI_FIELD(farmlb_node, flags)
      .ABI_FIELD(farmlb_node, _pad0);
  ABI_STRUCT(farmlb_mac_key)
      .ABI_FIELD(farmlb_mac_key, slot)
      .ABI_FIELD(farmlb_mac_key, _pad0)
      .ABI_FIELD(farmlb_mac_key, mac);
  ABI_STRUCT(farmlb_node_ref)
      .ABI_FIELD(farmlb_node_ref, node)
      .ABI_FIELD(farmlb_node_ref, _pad0);
  ABI_STRUCT(farmlb_iface)
      .ABI_FIELD(farmlb_iface, mac)
      .ABI_FIELD(farmlb_iface, _pad0);
  ABI_STRUCT(farmlb_iface_cache)
      .ABI_FIELD(farmlb_iface_cache, ifindex)
      .ABI_FIELD(farmlb_iface_cache, gen)
      .ABI_FIELD(farmlb_iface_cache, mac)
      .ABI_FIELD(farmlb_iface_cache, known)
      .ABI_FIELD(farmlb_iface_cache, _pad0);
  ABI_STRUCT(farmlb_requester_key)
      .ABI_FIELD(farmlb_requester_key, family)
      .ABI_FIELD(farmlb_requester_key, _pad0)
      .ABI_FIELD(farmlb_requester_key, addr);
  ABI_STRUCT(farmlb_requester)
      .ABI_FIELD(farmlb_requester, last_seen_ns)
      .ABI_FIELD(farmlb_requester, mac)
      .ABI_FIELD(farmlb_requester, group)
      .ABI_FIELD(farmlb_requester, bucket)
      .ABI_FIELD(farmlb_requester, vip_id)
      .ABI_FIELD(farmlb_requester, _pad0);
  ABI_STRUCT(farmlb_bucket)
      .ABI_FIELD(farmlb_bucket, owner)
      .ABI_FIELD(farmlb_bucket, prev_owner)
      .ABI_FIELD(farmlb_bucket, flags)
      .ABI_FIELD(farmlb_bucket, _pad0);
  ABI_STRUCT(farmlb_requester_budget)
      .ABI_FIELD(farmlb_requester_budget, window_ns)
      .ABI_FIELD(farmlb_requester_budget, admitted)
      .ABI_FIELD(farmlb_requester_budget, refused);
  ABI_STRUCT(farmlb_lease_clock)
      .ABI_FIELD(farmlb_lease_clock, jiffies)
      .ABI_FIELD(farmlb_lease_clock, now_ns);
  ABI_STRUCT(farmlb_counter)
      .ABI_FIELD(farmlb_counter, packets)
      .ABI_FIELD(farmlb_counter, bytes);
  ABI_STRUCT(farmlb_bucket_counter)
      .ABI_FIELD(farmlb_bucket_counter, accepted)
      .ABI_FIELD(farmlb_bucket_counter, dropped)
      .ABI_FIELD(farmlb_bucket_counter, owned)
      .ABI_FIELD(farmlb_bucket_counter, not_owned);
  ABI_STRUCT(farmlb_hot)
      .ABI_FIELD(farmlb_hot, ctl)
      .ABI_FIELD(farmlb_hot, slot_cfg)
      .ABI_FIELD(farmlb_hot, vip_index)
      .ABI_FIELD(farmlb_hot, vip_desc)
      .ABI_FIELD(farmlb_hot, buckets);
  return layout;
}

Napi::Object AbiConstants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
#define ABI_CONST(N) c.Set(#N, Napi::Number::New(env, double(N)))
  ABI_CONST(FARMLB_NBUCKETS);
  ABI_CONST(FARMLB_MAX_GROUPS);
  ABI_CONST(FARMLB_MAX_VIPS);
  ABI_CONST(FARMLB_MAX_RULES);
  ABI_CONST(FARMLB_MAX_NODES);
  ABI_CONST(FARMLB_MAX_IFACES);
  ABI_CONST(FARMLB_REQUESTERS_ENTRIES);
  ABI_CONST(FARMLB_REQUESTERS_NEW_PER_WINDOW);
  ABI_CONST(FARMLB_REQUESTERS_WINDOW_NS);
  ABI_CONST(FARMLB_NODES_ENTRIES);
  ABI_CONST(FARMLB_NODE_F_KNOWN);
  ABI_CONST(FARMLB_TC_HANDLE);
  ABI_CONST(FARMLB_TC_PRIORITY);
  ABI_CONST(FARMLB_NODE_NONE);
  ABI_CONST(FARMLB_GROUP_NONE);
  ABI_CONST(FARMLB_VIP_ANY);
  ABI_CONST(FARMLB_PORT_ANY);
  ABI_CONST(FARMLB_SLOTS);
  ABI_CONST(FARMLB_DEFAULT_HASH_SEED);
  ABI_CONST(FARMLB_CRIT_ADDR);
  ABI_CONST(FARMLB_CRIT_PORT);
  ABI_CONST(FARMLB_CRIT_IPID);
  ABI_CONST(FARMLB_MODE_INVISIBLE);
  ABI_CONST(FARMLB_MODE_DIRECTED);
  ABI_CONST(FARMLB_R_PASS_NOT_VIP);
  ABI_CONST(FARMLB_R_PASS_OWNED);
  ABI_CONST(FARMLB_R_PASS_FRAGMENT);
  ABI_CONST(FARMLB_R_PASS_CONTROL);
  ABI_CONST(FARMLB_R_DROP_NOT_OWNED);
  ABI_CONST(FARMLB_R_DROP_NO_RULE);
  ABI_CONST(FARMLB_R_DROP_LEASE);
  ABI_CONST(FARMLB_R_DROP_MALFORMED);
  ABI_CONST(FARMLB_R_TX_ARP_REPLY);
  ABI_CONST(FARMLB_R_DROP_ARP_NOT_MINE);
  ABI_CONST(FARMLB_R_TX_FORWARD);
  ABI_CONST(FARMLB_R_DROP_ARP_DAD);
  ABI_CONST(FARMLB_R_DROP_NO_IFACE);
  ABI_CONST(FARMLB_R_PASS_HANDOVER_PREV);
  ABI_CONST(FARMLB_R_PASS_HANDOVER_NEW);
  ABI_CONST(FARMLB_R_DROP_HANDOVER);
  ABI_CONST(FARMLB_R_TX_FORWARD_PREV);
  ABI_CONST(FARMLB_R_MAX);
  ABI_CONST(FARMLB_BUCKET_ENTRIES);
  ABI_CONST(FARMLB_BUCKET_STATS_ENTRIES);
  ABI_CONST(FARMLB_VIPS_ENTRIES);
  ABI_CONST(FARMLB_RULES_ENTRIES);
  ABI_CONST(FARMLB_RESOLVED_RULES_PER_SLOT);
  ABI_CONST(FARMLB_RULE_SPECS_ENTRIES);
  ABI_CONST(FARMLB_VIP_INDEX_BITS);
  ABI_CONST(FARMLB_VIP_INDEX_SIZE);
  ABI_CONST(FARMLB_VIP_INDEX_NONE);
  ABI_CONST(FARMLB_VIP_INDEX_MANY);
  ABI_CONST(FARMLB_VIP_INLINE_PORTS);
  ABI_CONST(FARMLB_VIP_F_ANY_TCP);
  ABI_CONST(FARMLB_VIP_F_ANY_UDP);
  ABI_CONST(FARMLB_VIP_F_OVERFLOW_TCP);
  ABI_CONST(FARMLB_VIP_F_OVERFLOW_UDP);
  ABI_CONST(FARMLB_VIP_DESC_ENTRIES);
  ABI_CONST(FARMLB_IFACE_CACHE_ENTRIES);
  ABI_CONST(FARMLB_LEASE_CLOCK_SLACK_NS);
#undef ABI_CONST
  return c;
}

}  // namespace farmlb
