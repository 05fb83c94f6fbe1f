/**
 * The agents runboard can drive, one driver folder each, assembled into the catalog runs pick from.
 * The run lifecycle only sees the AgentDriver interface; this is the one place that names drivers.
 */
import { AgentCatalog } from '../orchestrator/agent-catalog.js';
import { ClaudeDriver } from './claude/driver.js';
import { CodexDriver } from './codex/driver.js';
import { PiDriver } from './pi/driver.js';

export interface AgentConfig {
  /** pi's program and leading arguments. @default pi from this project's dependencies */
  piCommand?: readonly string[] | null;
  /** Added after pi's `--mode rpc`. */
  piArgs?: readonly string[];
  /** Claude Code's program and leading arguments. @default claude on PATH */
  claudeCommand?: readonly string[] | null;
  /** Added after runboard's own Claude Code flags. */
  claudeArgs?: readonly string[];
  /** The environment agents get on top of the server's (drivers look for the user's agent config there). */
  agentEnv?: Readonly<Record<string, string>>;
  /** Codex's program and leading arguments, started as `<command> app-server`. @default codex on PATH */
  codexCommand?: readonly string[] | null;
  /** The agent a run gets when it names none. @default 'pi' */
  defaultAgent?: string | null;
}

/** Every configured agent, by name. */
export function createAgentCatalog(config: AgentConfig = {}): AgentCatalog {
  const drivers = [
    new PiDriver({ command: config.piCommand, args: config.piArgs }),
    new ClaudeDriver({ command: config.claudeCommand, args: config.claudeArgs, env: config.agentEnv }),
    new CodexDriver({ command: config.codexCommand }),
  ];
  return new AgentCatalog(drivers, config.defaultAgent ?? 'pi');
}
