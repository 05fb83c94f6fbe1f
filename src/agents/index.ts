/**
 * The agents runboard can drive, one driver folder each, assembled into the catalog runs pick from.
 * The run lifecycle only sees the AgentDriver interface; this is the one place that names drivers.
 *
 * Built-in presets give each known agent its protocol, its command (found on PATH, pi from this
 * project) and its no-ask mode. The configuration (an agents file, RUNBOARD_AGENTS) may override a
 * preset's command, arguments and environment, or add named agents of a protocol runboard speaks.
 */
import { AgentCatalog } from '../orchestrator/agent-catalog.js';
import { ClaudeDriver } from './claude/driver.js';
import { CodexDriver } from './codex/driver.js';
import type { AgentDriver } from '../orchestrator/agent-driver.js';
import { AcpDriver } from './acp/driver.js';
import { PiDriver } from './pi/driver.js';
import { AGENT_PRESETS, type AgentDefinition } from './presets.js';

export { AGENT_PRESETS, AGENT_PROTOCOLS, type AgentDefinition, type AgentProtocol } from './presets.js';

/** The agents part of runboard's configuration (src/config.ts). */
export interface AgentConfig {
  /** pi's program and leading arguments (RUNBOARD_AGENT_COMMAND). @default pi from this project's dependencies */
  piCommand?: readonly string[] | null;
  /** Added after pi's `--mode rpc` (RUNBOARD_AGENT_ARGS). */
  piArgs?: readonly string[];
  /** Claude Code's program and leading arguments. @default claude on PATH */
  claudeCommand?: readonly string[] | null;
  /** Added after runboard's own Claude Code flags. */
  claudeArgs?: readonly string[];
  /** The environment agents get on top of the server's (drivers look for the user's agent config there). */
  agentEnv?: Readonly<Record<string, string>>;
  /** Codex's program and leading arguments, started as `<command> app-server`. @default codex on PATH */
  codexCommand?: readonly string[] | null;
  /** Preset overrides and custom agents, applied over the presets by name. */
  agents?: readonly AgentDefinition[];
  /** The agent a run gets when it names none. @default 'pi' */
  defaultAgent?: string | null;
}

/** Every configured agent, by name: the presets with their overrides, then the custom agents. */
export function createAgentCatalog(config: AgentConfig = {}): AgentCatalog {
  const definitions = new Map(AGENT_PRESETS.map((preset) => [preset.name, preset]));
  // The per-agent flags (--agent-command and --agent-args for pi, --claude-command…) override a preset like a definition would.
  const override = (name: string, command: readonly string[] | null | undefined, args?: readonly string[]) =>
    definitions.set(name, { ...definitions.get(name)!, ...(command?.length ? { command } : {}), ...(args?.length ? { args } : {}) });
  override('pi', config.piCommand, config.piArgs);
  override('claude', config.claudeCommand, config.claudeArgs);
  override('codex', config.codexCommand);
  for (const definition of config.agents ?? []) {
    const preset = definitions.get(definition.name);
    definitions.set(definition.name, { ...preset, ...withoutUndefined(definition), name: definition.name });
  }
  return new AgentCatalog([...definitions.values()].map((definition) => createDriver(definition, config.agentEnv ?? {})), config.defaultAgent ?? 'pi');
}

/** The driver for one definition; a definition without a command or protocol is refused by config.ts first. */
function createDriver(definition: AgentDefinition, agentEnv: Readonly<Record<string, string>>): AgentDriver {
  const protocol = definition.protocol ?? 'acp';
  switch (protocol) {
    case 'pi-rpc':
      return new PiDriver({ name: definition.name, command: definition.command, args: definition.args, env: definition.env });
    case 'claude-stream-json':
      return new ClaudeDriver({ name: definition.name, command: definition.command, args: definition.args, env: { ...agentEnv, ...definition.env } });
    case 'codex-app-server':
      return new CodexDriver({ name: definition.name, command: definition.command, env: definition.env });
    case 'acp':
      if (!definition.command?.length) throw new Error(`agent "${definition.name}" has no command`);
      return new AcpDriver({
        name: definition.name,
        command: definition.command,
        args: definition.args,
        env: definition.env,
        noAskMode: definition.mode ?? null,
        resume: definition.resume,
        usage: definition.usage,
      });
  }
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
