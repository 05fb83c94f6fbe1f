/**
 * The agents runboard can drive, one driver folder each, assembled into the catalog runs pick from.
 * The run lifecycle only sees the AgentDriver interface; this is the one place that names drivers.
 */
import { AgentCatalog } from '../orchestrator/agent-catalog.js';
import { CodexDriver } from './codex/driver.js';
import { PiDriver } from './pi/driver.js';

export interface AgentConfig {
  /** pi's program and leading arguments. @default pi from this project's dependencies */
  piCommand?: readonly string[] | null;
  /** Added after pi's `--mode rpc`. */
  piArgs?: readonly string[];
  /** Codex's program and leading arguments, started as `<command> app-server`. @default codex on PATH */
  codexCommand?: readonly string[] | null;
  /** The agent a run gets when it names none. @default 'pi' */
  defaultAgent?: string | null;
}

/** Every configured agent, by name. */
export function createAgentCatalog(config: AgentConfig = {}): AgentCatalog {
  const drivers = [new PiDriver({ command: config.piCommand, args: config.piArgs }), new CodexDriver({ command: config.codexCommand })];
  return new AgentCatalog(drivers, config.defaultAgent ?? 'pi');
}
