// Builders for hand-written DataplaneTables rows, shared by the model's unit tests and the
// differential test so both describe tables the same way.

import { addrBytes16, parseIp } from '../../src/net/frames.js';
import { GROUP_NONE, type CompiledRule, type CompiledVip, type CriterionId } from '../../src/dataplane/types.js';

export function vip(
  id: number,
  addr: string,
  icmpGroup: number,
  mode: CompiledVip['mode'] = 'vmac_invisible',
  arpGroup = GROUP_NONE,
): CompiledVip {
  return { id, family: parseIp(addr).family, addr, addrBytes: addrBytes16(addr), icmpGroup, arpGroup, mode };
}

export function rule(proto: 6 | 17, port: number, vipId: number, group: number, criterion: CriterionId): CompiledRule {
  return { proto, port, vipId, group, criterion };
}
