// Warning codes of the configuration: accepted input that farmlb ignores or that is
// probably a mistake. They are not errors (a SafeKit file must load unchanged), so they live
// here rather than in the error registry; docs/config.md lists each one.

export const CONFIG_WARNINGS = {
  FARMLB_W_CONFIG_IGNORED_SECTION: 'a SafeKit section farmlb does not implement (e.g. <rfs>, <heart>) is ignored',
  FARMLB_W_CONFIG_UNKNOWN_SECTION: 'an element outside <vip>/<farm>/<farmlb> that is not a SafeKit section farmlb knows is ignored',
  FARMLB_W_CONFIG_IGNORED_ATTRIBUTE: 'an attribute farmlb does not use (outside <vip> and <farmlb>) is ignored',
  FARMLB_W_CONFIG_GROUP_NO_RULES: 'a <group> has no <rule>, so it balances nothing',
  FARMLB_W_CONFIG_VMAC_IGNORED: 'addr= on a vmac_directed <virtual_interface> is ignored (SafeKit ignores it too)',
  FARMLB_W_CONFIG_IPV4_ONLY: 'arpreroute/arpinterval/arpelapse on an interface without IPv4 VIPs have no effect',
  FARMLB_W_CONFIG_DEFAULT_TYPE: '<virtual_interface> without type= is vmac_invisible (SafeKit\'s default too), which turns promiscuous mode on',
  FARMLB_W_CONFIG_IGNORED_SETTING: 'a setting farmlb accepts for SafeKit compatibility but does nothing with (connections="on")',
  FARMLB_W_CONFIG_ARPREROUTE_NOOP: 'arpreroute="on" where it has nothing to announce: a vmac_invisible interface, or vmac_directed VIPs no arp rule covers',
  FARMLB_W_CONFIG_REDUNDANT_RULE: 'a "*" rule that more specific rules of its own group cover entirely (it matches nothing, but its group already gets that traffic)',
} as const;

export type ConfigWarningCode = keyof typeof CONFIG_WARNINGS;
