// The lab's corosyncs: one per node namespace (src/bench/corosync-nodes.ts, shared with the
// failover benchmark, which cannot import test/).
export { CorosyncNodes, type CorosyncNode, type CorosyncNodesOptions } from '../../../src/bench/corosync-nodes.js';
