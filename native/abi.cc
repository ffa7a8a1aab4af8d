// btfLayout: the struct layouts of a compiled BPF object, read from its BTF with libbpf's
// btf__ API — what the compiler actually laid out, overridable sizes included (Cilium's
// pkg/alignchecker does the same in Go). abiConstants: the constants of bpf/farmlb_abi.h,
// which BTF does not carry (they are #defines). src/dataplane/abi-check.ts holds
// src/dataplane/abi.ts against both.
#include "abi.h"

#include "common.h"

extern "C" {
#include "farmlb_abi.h"
}

#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace farmlb {

namespace {

// The struct or union a type ends in, through typedefs, qualifiers, arrays and pointers
// (a map's __type(key, T) is a pointer to T); 0 for a scalar. The bound only guards against
// a malformed object's cycle: real chains are a few links long.
__u32 UnderlyingComposite(const struct btf* btf, __u32 id) {
  for (int depth = 0; depth < 32 && id != 0; depth++) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    if (t == nullptr) return 0;
    if (btf_is_composite(t)) return id;
    if (btf_is_array(t)) {
      id = btf_array(t)->type;
    } else if (btf_is_mod(t) || btf_is_typedef(t) || btf_is_ptr(t)) {
      id = t->type;
    } else {
      return 0;
    }
  }
  return 0;
}

std::string CompositeName(const struct btf* btf, __u32 id) {
  __u32 c = UnderlyingComposite(btf, id);
  if (c == 0) return std::string();
  const char* name = btf__name_by_offset(btf, btf__type_by_id(btf, c)->name_off);
  return name == nullptr ? std::string() : std::string(name);
}

// { size, fields: { name: { offset, size, type? } } }; type names the struct a field holds
// (itself or an array of it). Nameless members (anonymous unions) are left out: the ABI has none.
Napi::Object StructObject(Napi::Env env, const struct btf* btf, const struct btf_type* t) {
  Napi::Object s = Napi::Object::New(env);
  Napi::Object fields = Napi::Object::New(env);
  s.Set("size", Napi::Number::New(env, double(t->size)));
  const struct btf_member* m = btf_members(t);
  for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
    const char* name = btf__name_by_offset(btf, m->name_off);
    if (name == nullptr || name[0] == '\0') continue;
    Napi::Object f = Napi::Object::New(env);
    __s64 size = btf__resolve_size(btf, m->type);
    f.Set("offset", Napi::Number::New(env, double(btf_member_bit_offset(t, i) / 8)));
    f.Set("size", Napi::Number::New(env, double(size < 0 ? 0 : size)));
    if (btf_member_bitfield_size(t, i) != 0) f.Set("bitfield", Napi::Boolean::New(env, true));
    std::string type = CompositeName(btf, m->type);
    if (!type.empty()) f.Set("type", Napi::String::New(env, type));
    fields.Set(name, f);
  }
  s.Set("fields", fields);
  return s;
}

struct BtfFree {
  void operator()(struct btf* b) const { btf__free(b); }
};

}  // namespace

Napi::Value BtfLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::unique_ptr<struct btf, BtfFree> owned(btf__parse_elf(path.c_str(), nullptr));
  if (!owned) Throw(env, "FARMLB_E_BPF_OPEN", errno, "btf__parse_elf", path);
  const struct btf* btf = owned.get();

  Napi::Object structs = Napi::Object::New(env);
  Napi::Object maps = Napi::Object::New(env);
  Napi::Object globals = Napi::Object::New(env);
  __u32 count = btf__type_cnt(btf);
  for (__u32 id = 1; id < count; id++) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    const char* name = btf__name_by_offset(btf, t->name_off);
    if (name == nullptr || name[0] == '\0') continue;
    if (btf_is_struct(t)) {
      structs.Set(name, StructObject(env, btf, t));
      continue;
    }
    if (!btf_is_datasec(t)) continue;
    // .maps: each variable is a map definition whose key and value members point to the
    // key and value types. Any other section (.data.hot, .rodata, license): globals.
    bool mapSection = std::strcmp(name, ".maps") == 0;
    const struct btf_var_secinfo* v = btf_var_secinfos(t);
    for (__u16 i = 0; i < btf_vlen(t); i++, v++) {
      const struct btf_type* var = btf__type_by_id(btf, v->type);
      const char* varName = btf__name_by_offset(btf, var->name_off);
      if (varName == nullptr) continue;
      if (!mapSection) {
        globals.Set(varName, Napi::String::New(env, CompositeName(btf, var->type)));
        continue;
      }
      __u32 def = UnderlyingComposite(btf, var->type);
      if (def == 0) continue;
      const struct btf_type* dt = btf__type_by_id(btf, def);
      Napi::Object map = Napi::Object::New(env);
      const struct btf_member* m = btf_members(dt);
      for (__u16 j = 0; j < btf_vlen(dt); j++, m++) {
        const char* member = btf__name_by_offset(btf, m->name_off);
        if (member != nullptr && (std::strcmp(member, "key") == 0 || std::strcmp(member, "value") == 0))
          map.Set(member, Napi::String::New(env, CompositeName(btf, m->type)));
      }
      maps.Set(varName, map);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("structs", structs);
  out.Set("maps", maps);
  out.Set("globals", globals);
  return out;
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
