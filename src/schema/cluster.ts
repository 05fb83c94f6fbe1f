/** Query.cluster: the runboard processes sharing this board, with their roles, heartbeats and the runs each holds. */
import type { ClusterNodeInfo } from '../orchestrator/nodes.js';
import { builder } from './builder.js';

const ClusterNode = builder.objectRef<ClusterNodeInfo>('ClusterNode').implement({
  description: 'A runboard process. Embedded (SQLite, no Redis) there is one, `embedded`, with role `all`.',
  fields: (t) => ({
    id: t.exposeString('id', { description: 'Its --node-id.' }),
    role: t.exposeString('role', { description: '`api` (serves the API), `worker` (runs agents) or `all` (both).' }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    heartbeatAt: t.expose('heartbeatAt', { type: 'DateTime', description: 'Its last heartbeat; a node beats every lease/3.' }),
    alive: t.exposeBoolean('alive', { description: 'Its heartbeat is younger than the lease (RUNBOARD_LEASE_MS). A dead worker\'s runs become INTERRUPTED.' }),
    runs: t.prismaField({
      type: ['Run'],
      description: 'The active runs it holds, oldest first.',
      resolve: (query, node, _args, ctx) => ctx.prisma.run.findMany({ ...query, where: { id: { in: node.runIds } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),
    }),
  }),
});

const Cluster = builder.objectRef<{ nodes: ClusterNodeInfo[] }>('Cluster').implement({
  description: 'The processes that share this board.',
  fields: (t) => ({
    nodes: t.field({ type: [ClusterNode], description: 'Every registered node, oldest first.', resolve: (cluster) => cluster.nodes }),
  }),
});

builder.queryField('cluster', (t) =>
  t.field({ type: Cluster, description: 'The nodes sharing this board, their roles, heartbeats and runs.', resolve: async (_root, _args, ctx) => ({ nodes: await ctx.orchestrator.clusterNodes() }) }),
);
