// The one registry of farmlb's error codes. Callers match on `code` (stable: never reused
// or renamed, only deprecated), not on instanceof. Every code has a row in docs/errors.md
// (Code | Meaning | What to do); test/unit/errors.test.ts keeps the two in step.

export interface ErrorLocation {
  file?: string;
  line?: number;
  column?: number;
  element?: string;
  attribute?: string;
  node?: string;
}

interface ErrorDef {
  /** Message template; {name} is replaced from the params. */
  message: string;
  /** What the operator should do. Shown after the message. */
  hint: string;
}

// Keep sections by area. Add codes at the end of their area; never renumber or rename.
export const ERRORS = {
  // --- internal / generic -------------------------------------------------
  FARMLB_E_INTERNAL: {
    message: 'internal error: {detail}',
    hint: 'this is a bug in farmlb; report it with the log line above',
  },
  // --- config (src/config/) ---------------------------------------------------
  FARMLB_E_CONFIG_INVALID: {
    message: '{count} configuration error(s) in {file}; the first: {first}',
    hint: 'fix each error in err.errors (farmlb validate prints them all, one per line)',
  },
  FARMLB_E_CONFIG_READ: {
    message: 'cannot read {file}: {detail}',
    hint: 'check the path given with -c/--config or --cluster and that the file is readable',
  },
  FARMLB_E_CONFIG_XML: {
    message: 'malformed XML: {detail}',
    hint: 'fix the XML syntax at this position (unclosed tag, unquoted attribute, stray "&" or "<")',
  },
  FARMLB_E_CONFIG_ROOT: {
    message: 'root element <{found}> is not {expected}',
    hint: 'a userconfig.xml starts with <safe> (or <service>/<vip>); a cluster.xml with <cluster>',
  },
  FARMLB_E_CONFIG_NOT_FARM: {
    message: '<service mode="{mode}">: farmlb runs farm modules only',
    hint: 'set mode="farm"; a mirror module (VIP failover) needs SafeKit or keepalived, not a farm balancer',
  },
  FARMLB_E_CONFIG_MIRROR_VIP: {
    message: '{what} is the mirror architecture (VIP failover), which farmlb does not implement',
    hint: 'use <virtual_interface type="vmac_directed"|"vmac_invisible"> with where="alias" to balance the VIP over the farm',
  },
  FARMLB_E_CONFIG_UNKNOWN_ELEMENT: {
    message: 'unknown element <{name}> in <{parent}>',
    hint: '{suggestion}',
  },
  FARMLB_E_CONFIG_UNKNOWN_ATTRIBUTE: {
    message: 'unknown attribute {name}= on <{element}>',
    hint: '{suggestion}',
  },
  FARMLB_E_CONFIG_MISSING_ELEMENT: {
    message: '<{parent}> has no <{name}>',
    hint: 'add a <{name}> element inside <{parent}> (docs/config.md shows the structure)',
  },
  FARMLB_E_CONFIG_MISSING_ATTRIBUTE: {
    message: '<{element}> needs {name}=',
    hint: 'add {name}="…" to <{element}>; accepted values: {expected}',
  },
  FARMLB_E_CONFIG_DUPLICATE_ELEMENT: {
    message: '<{name}> appears more than once in <{parent}> (first at line {firstLine})',
    hint: 'keep one <{name}> in <{parent}> and merge the two',
  },
  FARMLB_E_CONFIG_UNEXPECTED_TEXT: {
    message: 'unexpected text "{text}" inside <{element}>',
    hint: 'values go in attributes (name="value"), not between tags; remove the text',
  },
  FARMLB_E_CONFIG_BAD_VALUE: {
    message: '{attribute}="{value}" on <{element}> is not valid',
    hint: 'expected {expected}',
  },
  FARMLB_E_CONFIG_BAD_TIME: {
    message: '{attribute}="{value}" is not a duration',
    hint: 'write a number with an optional unit: ms, s, m or h (e.g. "500ms", "60s", "2m"); a bare number is in {unit}',
  },
  FARMLB_E_CONFIG_BAD_NUMBER: {
    message: '{attribute}="{value}" is not a valid number here',
    hint: 'write {expected}',
  },
  FARMLB_E_CONFIG_BAD_ADDRESS: {
    message: '{attribute}="{value}" is not an IPv4 or IPv6 address',
    hint: 'write a dotted IPv4 address (192.168.1.222) or an IPv6 address (2001:db8::10)',
  },
  FARMLB_E_CONFIG_VIP_HOSTNAME: {
    message: '{attribute}="{value}" is a host name; farmlb needs the VIP as an address',
    hint: 'replace the name by its IP address (`getent ahosts {value}` shows it; SafeKit also advises an address, to be independent of DNS at start and on every node)',
  },
  FARMLB_E_CONFIG_DUPLICATE_VIP: {
    message: 'VIP {addr} is configured twice (first at line {firstLine})',
    hint: 'remove one of the two <virtual_addr> elements; a VIP belongs to one interface',
  },
  FARMLB_E_CONFIG_BAD_NETMASK: {
    message: 'netmask="{value}" is not valid for VIP {addr}: {why}',
    hint: 'give an IPv4 netmask (255.255.255.0) or a prefix length (24); IPv6 VIPs take the interface prefix',
  },
  FARMLB_E_CONFIG_BAD_MAC: {
    message: 'addr="{value}" is not a unicast MAC address: {why}',
    hint: 'write six hex bytes separated by ":" with the low bit of the first byte clear (e.g. 5a:fe:c0:a8:01:de), or omit addr= for the default',
  },
  FARMLB_E_CONFIG_BAD_PORT: {
    message: '{attribute}="{value}" is not a valid port',
    hint: 'write {expected}',
  },
  FARMLB_E_CONFIG_BAD_PROTO: {
    message: 'proto="{value}" is not a protocol farmlb balances',
    hint: '{suggestion}',
  },
  FARMLB_E_CONFIG_BAD_CRITERION: {
    message: 'filter="{value}" is not a load-balancing criterion',
    hint: '{suggestion}',
  },
  FARMLB_E_CONFIG_ARP_NEEDS_ON_ADDR: {
    message: 'a proto="arp" rule balances on the requester address, not filter="{value}"',
    hint: 'set filter="on_addr" on this rule (SafeKit 13.6.6: arp only with on_addr)',
  },
  FARMLB_E_CONFIG_ARP_NEEDS_DIRECTED: {
    message: 'proto="arp" rule for {vips}: {why}',
    hint: 'arp rules apply to vmac_directed interfaces only; set type="vmac_directed" on the <virtual_interface> of these VIPs or remove the rule',
  },
  FARMLB_E_CONFIG_ARP_WITH_PORT: {
    message: 'a proto="arp" rule cannot have port="{value}"',
    hint: 'remove port= from this rule; ARP and neighbour discovery have no ports',
  },
  FARMLB_E_CONFIG_IPID_WITH_TCP: {
    message: 'filter="on_ipid" cannot balance TCP',
    hint: 'TCP segments of one connection carry different IP ids: use filter="on_addr" or "on_port" for TCP (on_ipid is for UDP)',
  },
  FARMLB_E_CONFIG_IPID_WITH_IPV6: {
    message: 'filter="on_ipid" cannot balance IPv6 VIP {vip}',
    hint: 'IPv6 headers have no IP id: use filter="on_addr" or "on_port" for this VIP',
  },
  FARMLB_E_CONFIG_BAD_POWER: {
    message: 'power="{value}" of host {host} is not a non-negative integer',
    hint: 'write a whole number from 0 (no traffic) to {max}; powers are relative weights within the group',
  },
  FARMLB_E_CONFIG_BAD_NAME: {
    message: '{attribute}="{value}" on <{element}> is not a valid name',
    hint: 'use {expected}',
  },
  FARMLB_E_CONFIG_DUPLICATE_HOST: {
    message: 'host {host} appears twice in group {group} (first at line {firstLine})',
    hint: 'keep one <host name="{host}"> per group; to give it more traffic raise its power',
  },
  FARMLB_E_CONFIG_DUPLICATE_GROUP: {
    message: 'group name "{group}" is used twice (first at line {firstLine})',
    hint: 'give each <group> its own name',
  },
  FARMLB_E_CONFIG_EMPTY_CLUSTER: {
    message: 'the <cluster> of group {group} lists no host, so no node would serve it',
    hint: 'add <host name="…" power="1"/> elements, or remove <cluster> to balance over every farm node',
  },
  FARMLB_E_CONFIG_TOO_MANY: {
    message: 'too many {what}: {count} (farmlb supports at most {max})',
    hint: '{advice}',
  },
  FARMLB_E_CONFIG_NO_VIP: {
    message: 'no virtual address is configured in <vip>',
    hint: 'add <interface_list><interface><virtual_interface><virtual_addr addr="…" where="alias"/></virtual_interface></interface></interface_list> inside <vip>',
  },
  FARMLB_E_CONFIG_NO_GROUP: {
    message: '<vip> has no load-balancing group, so every packet to the VIPs would be dropped',
    hint: 'add <loadbalancing_list><group name="…"><rule … /></group></loadbalancing_list> inside <vip>',
  },
  FARMLB_E_CONFIG_RULE_UNKNOWN_VIP: {
    message: 'rule virtual_addr="{vip}" names no configured VIP',
    hint: 'configured VIPs: {vips}; use one of them or "*"',
  },
  FARMLB_E_CONFIG_RULE_OVERLAP: {
    message: 'rule {rule} in group {group} overlaps the rule of group {otherGroup} at line {otherLine} with the same specificity',
    hint: 'a packet must match exactly one rule of the most specific kind: remove one rule or make one more specific (an exact VIP or port)',
  },
  FARMLB_E_CONFIG_FARMLB_SETTING: {
    message: '<farmlb {attribute}="{value}">: {why}',
    hint: '{advice}',
  },
  FARMLB_E_CONFIG_MACRO_UNDEFINED: {
    message: 'macro %{name}% is used but not defined',
    hint: 'define it with <macro name="{name}" value="…"/> inside <safe>, or write the value directly',
  },
  FARMLB_E_CONFIG_DUPLICATE_LAN: {
    message: 'LAN "{lan}" appears twice in <{parent}> (first at line {firstLine})',
    hint: 'name each <lan> once',
  },
  FARMLB_E_CONFIG_CLUSTER_DUPLICATE_NODE: {
    message: 'node {node} appears twice in LAN {lan} (first at line {firstLine})',
    hint: 'list each node once per <lan>',
  },
  FARMLB_E_CONFIG_CLUSTER_DUPLICATE_ADDR: {
    message: 'address {addr} is given to node {node} and to node {otherNode} (line {otherLine})',
    hint: 'every node needs its own address on each LAN',
  },
  FARMLB_E_CONFIG_CLUSTER_EMPTY: {
    message: '{what}',
    hint: 'cluster.xml lists nodes as <cluster><lans><lan name="default"><node name="node1" addr="…"/>…</lan></lans></cluster>',
  },
  FARMLB_E_CONFIG_UNKNOWN_HOST: {
    message: 'host {host} of group {group} is not a node of {clusterFile}',
    hint: 'nodes in {clusterFile}: {nodes}; fix the name or add the node to cluster.xml',
  },
  FARMLB_E_CONFIG_VIP_IS_NODE_ADDR: {
    message: 'VIP {addr} is the address of node {node} in {clusterFile}',
    hint: 'a VIP is added and removed by farmlb on every node: use an address no node owns (removing it at stop would remove the node\'s own address)',
  },
  FARMLB_E_CONFIG_UNKNOWN_LAN: {
    message: '<farm><lan name="{lan}"> is not a LAN of {clusterFile}',
    hint: 'LANs in {clusterFile}: {lans}; fix the name or add the LAN to cluster.xml',
  },
  FARMLB_E_CONFIG_DEAD_RULE: {
    message: 'rule {rule} of group {group} can match no packet: {why}',
    hint: '{hint}',
  },
  FARMLB_E_CONFIG_DUPLICATE_IDENT: {
    message: 'two checkers name the resource {resource} (first at line {firstLine})',
    hint: 'give each checker of one kind its own ident= (the resource is <kind>.<ident>)',
  },
  // --- run / daemon (src/daemon/) ---------------------------------------------
  FARMLB_E_RUN_NODE_UNKNOWN: {
    message: 'node "{node}" is not in {file} (nodes: {nodes})',
    hint: 'pass --node with a <node name=> of cluster.xml, or add the node to cluster.xml',
  },
  FARMLB_E_RUN_NEEDS_STATIC: {
    message: 'farmlb run needs --static in this version: the membership protocol is not built yet',
    hint: 'run with --static to serve the table of the configured powers as if every node were up',
  },
  FARMLB_E_RUN_NO_NODE: {
    message: 'farmlb run needs --node NAME',
    hint: 'pass the name this machine has in cluster.xml, e.g. --node node1',
  },
  FARMLB_E_RUN_NO_CLUSTER: {
    message: 'farmlb run needs --cluster FILE',
    hint: 'pass the SafeKit cluster.xml listing the farm nodes',
  },
  FARMLB_E_RUN_NOTIFY: {
    message: 'cannot tell systemd ({detail})',
    hint: 'NOTIFY_SOCKET names a socket farmlb cannot send to; run farmlb from its systemd unit (Type=notify) or unset NOTIFY_SOCKET',
  },
  FARMLB_E_RUN_UNSAFE_DIR: {
    message: 'the {what} {dir} cannot be trusted: {detail}',
    hint: 'remove it (farmlb creates it root-only, mode 0700) or fix it: chown root {dir}; chmod 700 {dir}',
  },
  FARMLB_E_RUN_RELOAD_NEEDS_RESTART: {
    message: 'reload refused: {detail}; the daemon keeps serving the previous configuration',
    hint: 'with --static a reload changes powers, rules, groups and arpreroute settings; with the membership, powers and rules for new traffic (staged until every node has them); anything else is a rolling restart of the nodes (docs/operations.md, "Changing the configuration")',
  },
  // --- net (src/net/) ----------------------------------------------------------
  FARMLB_E_NET_IP: {
    message: '{command} failed: {detail}',
    hint: 'check that iproute2 is installed, that farmlb runs as root, and that the interface exists',
  },
  FARMLB_E_NET_NO_INTERFACE: {
    message: 'no interface has an address in the subnet of VIP {vip}',
    hint: 'set <interface name="IFACE"> in userconfig.xml, or give the interface an address in the VIP\'s subnet',
  },
  FARMLB_E_NET_SYSCTL: {
    message: 'cannot {op} sysctl {name}: {detail}',
    hint: 'run as root in the node\'s network namespace; check that the interface exists (and has IPv6 enabled for net.ipv6 keys)',
  },
  FARMLB_E_NET_STATE: {
    message: 'cannot use the interface state record {file}: {detail}',
    hint: 'the record lists what a previous farmlb run changed (aliases, sysctls, promiscuous mode); undo those by hand (docs/net.md), then delete the file',
  },
  FARMLB_E_NET_IFACE_MODE_CONFLICT: {
    message: 'interface {iface} is configured as both {first} and {second}',
    hint: 'one interface runs one VMAC mode: give every <interface> naming {iface} the same <virtual_interface type=>',
  },
  FARMLB_E_NET_RAW_SEND: {
    message: 'cannot send a raw frame: {detail}',
    hint: 'needs root (CAP_NET_RAW); check that the interface exists and is up',
  },
  FARMLB_E_NET_PROC: {
    message: 'cannot read {file}: {detail}',
    hint: 'farmlb reads the socket table and TCP counters of its network namespace under /proc/net; check that /proc is mounted and readable there',
  },
  FARMLB_E_NET_SOCK_DIAG: {
    message: 'cannot read the socket table through sock_diag: {detail}',
    hint: 'the kernel needs inet_diag and tcp_diag (CONFIG_INET_DIAG, CONFIG_INET_TCP_DIAG, or modprobe tcp_diag); meanwhile farmlb reads /proc/net/tcp and tcp6 instead, which costs more on a host with many sockets',
  },
  // --- cli (src/cli/) ----------------------------------------------------------
  FARMLB_E_CLI_BAD_OPTION: {
    message: 'bad value "{value}" for {option}: expected {expected}',
    hint: 'see farmlb <command> --help',
  },
  FARMLB_E_CLI_BAD_ENDPOINT: {
    message: 'bad {what}: "{value}"',
    hint: 'write ADDR, ADDR:PORT or [IPv6]:PORT, and end the destination with /tcp, /udp or /icmp',
  },
  FARMLB_E_CLI_NOT_RUNNING: {
    message: 'no farmlb daemon answers for module {module} ({socket}: {detail})',
    hint: 'is `farmlb run` running for module {module}? Start it, or give the --module / --run-dir it runs with (socket path {socket})',
  },
  FARMLB_E_CLI_CONTROL_TIMEOUT: {
    message: 'the daemon did not answer on {socket} within {ms} ms',
    hint: 'the daemon may be hung (SIGSTOP?) or overloaded; check its log and process state',
  },
  FARMLB_E_CLI_CONTROL: {
    message: 'control socket {socket}: {detail}',
    hint: 'run the command as root; check that the daemon of this module is healthy (its log)',
  },
  FARMLB_E_CLI_DAEMON_REFUSED: {
    message: 'the daemon refused the command: {detail}',
    hint: 'see the daemon\'s message; farmlb status shows the module\'s state',
  },
  FARMLB_E_CLI_DRAIN_TIMEOUT: {
    message: 'node {node} is not drained after {seconds} s: {remaining}',
    hint: 'the drain stays in force (farmlb undrain {node} cancels it): the node keeps its established connections until they close or the handover limit ends them; farmlb status shows what is left; wait again with a longer --timeout',
  },
  FARMLB_E_CLI_KEY_EXISTS: {
    message: 'the key file {file} exists already',
    hint: 'a new key cuts this node off from the farm until every node has it: rotate it as docs/security.md says, or give --force to replace it',
  },
  FARMLB_E_CLI_USAGE: {
    message: '{detail}',
    hint: 'see farmlb <command> --help (exit code 2: the command line, not the system, is wrong)',
  },
  // --- api (src/api/: control socket, HTTP health) -----------------------------
  FARMLB_E_API_BAD_REQUEST: {
    message: 'bad control request: {detail}',
    hint: 'send one JSON object per line: {"cmd": "status"|"start"|"stop"|"power"|"drain"|"undrain", …} (docs/cli.md, "Control socket")',
  },
  FARMLB_E_API_SOCKET: {
    message: 'cannot listen on the control socket {path}: {detail}',
    hint: 'another daemon of this module may be running (farmlb status); else check that the run directory is writable by root',
  },
  FARMLB_E_API_UNKNOWN_NODE: {
    message: 'no node {node} in cluster.xml (nodes: {nodes})',
    hint: 'give a node name as written in cluster.xml',
  },
  FARMLB_E_API_UNKNOWN_GROUP: {
    message: 'no group {group} in userconfig.xml (groups: {groups})',
    hint: 'give a <group name=…> of the configuration, or leave --group out for every group',
  },
  FARMLB_E_API_STATIC_MODE: {
    message: '{command} needs the membership protocol: this daemon runs with --static',
    hint: 'powers of a --static daemon come from userconfig.xml: edit it and send SIGHUP; or run without --static',
  },
  FARMLB_E_API_SCRIPTCONTROL_OFF: {
    message: 'farmlb vip {action}: the module does not let its scripts control the VIP traffic (<vip scriptcontrol="off">)',
    hint: 'set <vip scriptcontrol="on"> so the module scripts open and close the VIP traffic; without it farmlb opens the traffic when the node may serve',
  },
  // --- balance ----------------------------------------------------------------
  FARMLB_E_BALANCE_UNKNOWN_NODE: {
    message: 'bucket owner {node} is not a node of cluster.xml',
    hint: 'every host of a <group><cluster> must also be a node in cluster.xml; add it there or remove it from the group',
  },
  FARMLB_E_BALANCE_MISSING_FIELD: {
    message: 'cannot decide the packet without {field}: {why}',
    hint: 'give {field} (see farmlb explain --help)',
  },
  // --- bpf (native addon over libbpf) -------------------------------------------
  FARMLB_E_BPF_ADDON_MISSING: {
    message: 'the native addon is not built: {detail}',
    hint: 'no prebuilt addon fits this platform: install libbpf-dev libelf-dev zlib1g-dev g++ make python3 and run `npm rebuild farmlb` (or scripts/setup.sh in a source checkout)',
  },
  FARMLB_E_BPF_ARG: {
    message: 'invalid argument to the BPF addon: {detail}',
    hint: 'this is a bug in farmlb; report it with this message',
  },
  FARMLB_E_BPF_OPEN: {
    message: 'cannot open the BPF object: {detail}',
    hint: 'build it with make -C bpf (scripts/setup.sh does) and check the object path',
  },
  FARMLB_E_BPF_LOAD: {
    message: 'the kernel refused the BPF object: {detail}',
    hint: 'needs root (CAP_BPF and CAP_NET_ADMIN); the verifier log in the message names the refused instruction',
  },
  FARMLB_E_BPF_NO_MAP: {
    message: 'the BPF object has no such map: {detail}',
    hint: 'the object file is stale or not farmlb\'s; rebuild it with make -C bpf',
  },
  FARMLB_E_BPF_NO_PROGRAM: {
    message: 'the BPF object has no such program: {detail}',
    hint: 'the object file is stale or not farmlb\'s; rebuild it with make -C bpf',
  },
  FARMLB_E_BPF_MAP: {
    message: 'BPF map operation failed: {detail}',
    hint: 'run as root; if it persists, report it with this message',
  },
  FARMLB_E_BPF_PIN: {
    message: 'BPF pin operation failed: {detail}',
    hint: 'run as root, mount bpffs (mount -t bpf bpf /sys/fs/bpf) and check --pin-dir',
  },
  FARMLB_E_BPF_TEST_RUN: {
    message: 'BPF_PROG_TEST_RUN failed: {detail}',
    hint: 'needs root; frames must be at least 14 bytes',
  },
  FARMLB_E_BPF_CLOSED: {
    message: 'BPF object or map used after close: {detail}',
    hint: 'this is a bug in farmlb; report it with this message',
  },
  FARMLB_E_BPF_ABI_MISMATCH: {
    message: 'the BPF object {object} does not have the layouts this farmlb writes ({count} differences; first: {first})',
    hint: 'the object was built from another farmlb_abi.h or with other FARMLB_MAX_* sizes; rebuild it with make -C bpf from this version',
  },
  // --- xdp (attachment to interfaces) -------------------------------------------
  FARMLB_E_XDP_NO_IFACE: {
    message: 'no such network interface: {detail}',
    hint: 'check the name with ip link; inside a network namespace, run farmlb in that namespace',
  },
  FARMLB_E_XDP_ATTACH: {
    message: 'cannot attach the XDP program: {detail}',
    hint: 'needs root; a driver without native XDP works in generic mode; the kernel message in the error says why',
  },
  FARMLB_E_XDP_DETACH: {
    message: 'cannot detach the XDP program: {detail}',
    hint: 'needs root; ip link set dev IFACE xdp off removes it by hand',
  },
  FARMLB_E_TC_ATTACH: {
    message: 'cannot attach the tc egress program: {detail}',
    hint: 'needs root (CAP_NET_ADMIN); `tc filter show dev IFACE egress` shows what is attached',
  },
  FARMLB_E_TC_DETACH: {
    message: 'cannot detach the tc egress program: {detail}',
    hint: 'needs root; `tc filter del dev IFACE egress` removes it by hand',
  },
  FARMLB_E_XDP_QUERY: {
    message: 'cannot query the XDP program of an interface: {detail}',
    hint: 'needs root (CAP_NET_ADMIN); check the interface exists',
  },
  FARMLB_E_XDP_MODE_CONFLICT: {
    message: 'interface {iface} runs an XDP program in {attached} mode; attaching in {requested} mode would leave a moment with no program',
    hint: 'use XDP mode auto or {attached}, or detach the old program first (the VIP is unfiltered until the new one is attached)',
  },
  FARMLB_E_XDP_NATIVE_UNDELIVERABLE: {
    message: 'native XDP on {iface} cannot work for {vmacMode}: {detail}',
    hint: 'use --xdp-mode auto (picks generic here and says why) or generic; native on a veth needs a native XDP program on its peer, and vmac_invisible never works native on a veth (docs/net.md, "XDP mode")',
  },
  // --- dataplane (tables in BPF maps) -------------------------------------------
  FARMLB_E_DATAPLANE_TABLE_INVALID: {
    message: 'data plane table rejected: {detail}',
    hint: 'the running tables were left untouched; this is a bug in table compilation, report it with this message',
  },
  FARMLB_E_DATAPLANE_PIN_MISMATCH: {
    message: 'pinned map {map} under {pinDir} does not match this farmlb: {mismatch}',
    hint: 'the pins belong to another farmlb version; stop that daemon and remove the pins, or use another --pin-dir',
  },
  FARMLB_E_DATAPLANE_NOT_PINNED: {
    message: 'no farmlb data plane is pinned at {pinDir}: {detail}',
    hint: 'start the daemon for this module (farmlb run), or pass the --pin-dir it uses',
  },
  FARMLB_E_DATAPLANE_CLOSED: {
    message: 'the data plane was used after close()',
    hint: 'this is a bug in farmlb; report it with the log line above',
  },
  FARMLB_E_DATAPLANE_PIN_ACCESS: {
    message: 'cannot read the pinned maps at {path}: {detail}',
    hint: 'run as root (sudo farmlb …): the pin directory and BPF maps are root-only',
  },
  // --- membership (src/membership/) ------------------------------------------------
  FARMLB_E_MEMBERSHIP_KEY_MISSING: {
    message: 'cannot read the heartbeat key file {file}: {detail}',
    hint: 'create it once with farmlb keygen --key-file {file} and copy it to every node (scp -p), or set <farmlb key_file="…">',
  },
  FARMLB_E_MEMBERSHIP_KEY_SHORT: {
    message: 'the heartbeat key file {file} holds {bytes} bytes; at least {min} are needed',
    hint: 'write a random key: farmlb keygen --key-file {file} --force (then copy it to every node)',
  },
  FARMLB_E_MEMBERSHIP_SOCKET: {
    message: 'the membership socket failed: {detail}',
    hint: 'a bug or an exhausted resource (memory, descriptors): the daemon logs it and its lease lapses; restart it, and report the message if it repeats',
  },
  FARMLB_E_MEMBERSHIP_KEY_PERMISSIONS: {
    message: 'the heartbeat key file {file} is accessible to its group or to other users (mode {mode})',
    hint: 'chmod 600 {file} (owner root): anyone who reads the key can forge heartbeats',
  },
  FARMLB_E_MEMBERSHIP_BAD_MESSAGE: {
    message: 'malformed heartbeat: {detail}',
    hint: 'another program or farmlb version sends to the membership port; check <farmlb membership_port> on every node',
  },
  FARMLB_E_MEMBERSHIP_BAD_MAC: {
    message: 'heartbeat with a wrong authentication code',
    hint: 'the sender uses another key file content (or the packet was forged/corrupted): give every node the same key',
  },
  FARMLB_E_MEMBERSHIP_BIND: {
    message: 'cannot bind the membership socket to {addr} port {port}: {detail}',
    hint: 'the address must be this node\'s address on the LAN in cluster.xml and the port free (<farmlb membership_port>)',
  },
  FARMLB_E_MEMBERSHIP_UNKNOWN_NODE: {
    message: 'node {node} is not a node of cluster.xml (nodes: {nodes})',
    hint: 'name a node listed in cluster.xml',
  },
  FARMLB_E_MEMBERSHIP_UNKNOWN_GROUP: {
    message: 'group {group} is not a load-balancing group (groups: {groups})',
    hint: 'name a <group> of userconfig.xml, or omit --group to change every group of the node',
  },
  FARMLB_E_MEMBERSHIP_NOT_IN_GROUP: {
    message: 'node {node} is not a host of group {group}',
    hint: 'a runtime power applies to the group\'s configured hosts; add the host to the group\'s <cluster> and reload',
  },
  FARMLB_E_MEMBERSHIP_BAD_POWER: {
    message: 'power {value} is not an integer from 0 to 1000000',
    hint: 'give a whole number; 0 drains the node (farmlb drain)',
  },
  FARMLB_E_MEMBERSHIP_TIMING: {
    message: 'membership timing cannot work: {detail}',
    hint: 'adjust <farm pulse= mlost_count= slost_count=> (docs/membership.md, "Defaults and why")',
  },
  FARMLB_E_MEMBERSHIP_KEY_OWNER: {
    message: 'the heartbeat key {what} {file} belongs to uid {uid}, not to root',
    hint: 'chown root:root {file}: whoever owns the key file or its directory can replace the key',
  },
  FARMLB_E_MEMBERSHIP_KEY_DIRECTORY: {
    message: 'the directory {dir} of the heartbeat key file {file} is writable by others than its owner (mode {mode})',
    hint: 'keep the key in a directory only root can write to (chmod 755 {dir}, or move the key to /etc/farmlb/): anyone who can write there can replace the key',
  },
  FARMLB_E_MEMBERSHIP_KEY_LONG: {
    message: 'the heartbeat key file {file} holds {bytes} bytes; a key is at most {max}',
    hint: 'check that <farmlb key_file> names the key file; farmlb keygen writes one',
  },
  FARMLB_E_MEMBERSHIP_UNKNOWN_KEY: {
    message: 'heartbeat signed with key id {keyId}; this node accepts {accepted}',
    hint: 'the sender uses another key file: give every node the same key, or rotate as docs/security.md says (accept_key_file)',
  },
  FARMLB_E_MEMBERSHIP_KEY_WEAK: {
    message: 'the heartbeat key in {file} is too weak: {detail}',
    hint: 'write a random key: farmlb keygen --key-file {file} --force (then copy it to every node)',
  },
  // --- corosync (src/membership/corosync/: <farmlb membership="corosync">) -------
  FARMLB_E_COROSYNC_LIBRARY: {
    message: 'cannot load the Corosync client library {detail}',
    hint: 'install corosync and its client libraries on this node (apt-get install corosync libcpg4 libquorum5 libvotequorum8 libcmap4), or use <farmlb membership="builtin">',
  },
  FARMLB_E_COROSYNC_CONNECT: {
    message: 'cannot talk to corosync on this node: {detail}',
    hint: 'start corosync on this node (systemctl start corosync; `corosync-quorumtool -s` must answer), or resume it if it is stopped (ps state T: kill -CONT), with a quorum provider (quorum { provider: corosync_votequorum }); farmlb runs as root',
  },
  FARMLB_E_COROSYNC_NODELIST: {
    message: 'the running corosync\'s nodelist does not match cluster.xml: {detail}',
    hint: 'write corosync.conf from cluster.xml with `farmlb corosync-conf`, copy it to every node and restart corosync there; or correct cluster.xml',
  },
  FARMLB_E_COROSYNC_CALL: {
    message: 'corosync call failed: {detail}',
    hint: 'see the corosync log on this node (corosync-cmapctl and corosync-quorumtool tell its state); farmlb reconnects once corosync answers again',
  },
  FARMLB_E_COROSYNC_CONF: {
    message: 'cannot write a corosync.conf for this farm: {detail}',
    hint: 'fix cluster.xml or the options of farmlb corosync-conf (docs/cli.md)',
  },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Record<string, string | number | bigint | boolean | undefined>;

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key];
    return value === undefined ? `{${key}}` : String(value);
  });
}

export function formatLocation(loc: ErrorLocation | undefined): string {
  if (!loc) return '';
  const parts: string[] = [];
  if (loc.file) parts.push(loc.line ? `${loc.file}:${loc.line}${loc.column ? `:${loc.column}` : ''}` : loc.file);
  if (loc.element) parts.push(`<${loc.element}>`);
  if (loc.attribute) parts.push(`${loc.attribute}=`);
  if (loc.node) parts.push(`node ${loc.node}`);
  return parts.join(' ');
}

export class FarmlbError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  readonly location: ErrorLocation | undefined;
  readonly details: ErrorParams;
  /** The rendered message without the location prefix (for "file:line:col: CODE text" lines). */
  readonly text: string;
  /** Set for errors from a system call (addon). */
  errno?: number;
  syscall?: string;
  /** FARMLB_E_CONFIG_INVALID: every problem found, in file order (see configErrorList in src/config). */
  errors?: FarmlbError[];

  constructor(code: ErrorCode, params: ErrorParams = {}, opts: { location?: ErrorLocation; cause?: unknown } = {}) {
    const def: ErrorDef = ERRORS[code];
    const where = formatLocation(opts.location);
    const text = render(def.message, params);
    super(where ? `${where}: ${text}` : text, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'FarmlbError';
    this.code = code;
    this.hint = render(def.hint, params);
    this.location = opts.location;
    this.details = params;
    this.text = text;
  }

  /** One line for a terminal: "where: what (CODE) — hint". */
  override toString(): string {
    return `${this.message} (${this.code})${this.hint ? ` — ${this.hint}` : ''}`;
  }
}

export function isFarmlbError(err: unknown): err is FarmlbError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' &&
    String((err as { code: string }).code).startsWith('FARMLB_E_');
}
