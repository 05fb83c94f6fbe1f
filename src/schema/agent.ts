/** The configured agents and what each can do (AgentDriver capabilities), for choosing one per run. */
import type { AgentDriver } from '../orchestrator/agent-driver.js';
import { builder } from './builder.js';

const SteerSupportEnum = builder.enumType('SteerSupport', {
  values: {
    NATIVE: { description: 'The agent takes a steer at its next model request by its own mechanism.' },
    EMULATED: { description: 'runboard cancels the current turn and prompts with the steer (ACP has no steer).' },
    NONE: { description: 'A steer waits like a follow-up.' },
  },
});
const FollowUpSupportEnum = builder.enumType('FollowUpSupport', {
  values: {
    NATIVE: { description: 'The agent queues a follow-up itself until its turn ends.' },
    QUEUED: { description: 'runboard holds the follow-up and sends it when the turn ends.' },
  },
});

const AgentCapabilities = builder.objectRef<AgentDriver['capabilities']>('AgentCapabilities').implement({
  fields: (t) => ({
    steer: t.field({ type: SteerSupportEnum, resolve: (c) => c.steer }),
    followUp: t.field({ type: FollowUpSupportEnum, resolve: (c) => c.followUp }),
    resume: t.exposeBoolean('resume', { description: 'A settled run can be refined in the same session.' }),
    usage: t.exposeBoolean('usage', { description: 'Runs report tokens (UsageEvent).' }),
    cost: t.exposeBoolean('cost', { description: 'UsageEvent carries a cost.' }),
  }),
});

const Agent = builder.objectRef<AgentDriver>('Agent').implement({
  description: 'A configured coding agent; `startRun(input: { agent })` picks one by name.',
  fields: (t) => ({
    name: t.exposeString('name'),
    protocol: t.exposeString('protocol', { description: '`pi-rpc`, `claude-stream-json`, `codex-app-server` or `acp`.' }),
    command: t.string({ description: 'Its command line.', resolve: (driver) => driver.describe() }),
    isDefault: t.boolean({ description: 'Runs that name no agent get this one.', resolve: (driver, _args, ctx) => driver.name === ctx.orchestrator.agents.defaultName }),
    available: t.boolean({ description: 'Its program was found (checked at most once a minute).', resolve: async (driver, _args, ctx) => (await ctx.orchestrator.agents.availability(driver)).available }),
    version: t.string({ nullable: true, resolve: async (driver, _args, ctx) => (await ctx.orchestrator.agents.availability(driver)).version }),
    capabilities: t.field({ type: AgentCapabilities, resolve: (driver) => driver.capabilities }),
  }),
});

builder.queryField('agents', (t) =>
  t.field({
    type: [Agent],
    description: 'Every configured agent, in configuration order.',
    resolve: (_root, _args, ctx) => ctx.orchestrator.agents.all(),
  }),
);
