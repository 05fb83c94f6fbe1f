/** The agents runs may use, by name: what `startRun(input: { agent })` picks from and `Query.agents` lists. */
import type { AgentDriver } from './agent-driver.js';
import { InvalidInputError } from './errors.js';

/** How long a probe of an agent's program is trusted. @default 60_000 // ms */
export const AGENT_PROBE_TTL_MS = 60_000;

/** Whether an agent's program is there, and its version. */
export interface AgentAvailability {
  readonly available: boolean;
  readonly version: string | null;
}

export class AgentCatalog {
  private readonly byName: ReadonlyMap<string, AgentDriver>;
  private readonly probes = new Map<string, { at: number; result: Promise<AgentAvailability> }>();

  /** `drivers` in the order `Query.agents` lists them; `defaultName` must be one of them. */
  constructor(
    drivers: readonly AgentDriver[],
    /** The agent a run gets when it names none. */
    readonly defaultName: string,
  ) {
    this.byName = new Map(drivers.map((driver) => [driver.name, driver]));
    if (!this.byName.has(defaultName)) throw new Error(`the default agent "${defaultName}" is not configured (configured: ${this.names().join(', ')})`);
  }

  /** Every configured agent, in order. */
  all(): AgentDriver[] {
    return [...this.byName.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Whether the agent's program is there, probed at most once per AGENT_PROBE_TTL_MS. */
  availability(driver: AgentDriver): Promise<AgentAvailability> {
    const cached = this.probes.get(driver.name);
    if (cached && Date.now() - cached.at < AGENT_PROBE_TTL_MS) return cached.result;
    const result = driver.probe().catch(() => ({ available: false, version: null }));
    this.probes.set(driver.name, { at: Date.now(), result });
    return result;
  }

  /**
   * The named agent (the default for null), when its program is there. BAD_USER_INPUT naming the
   * installed agents when it is unknown or missing.
   */
  async require(name: string | null | undefined): Promise<AgentDriver> {
    const driver = this.byName.get(name ?? this.defaultName);
    if (driver && (await this.availability(driver)).available) return driver;
    const installed: string[] = [];
    for (const candidate of this.byName.values()) if ((await this.availability(candidate)).available) installed.push(candidate.name);
    const what = driver ? `agent "${driver.name}" is configured but its program was not found` : `unknown agent "${name}"`;
    throw new InvalidInputError(`${what}; installed agents: ${installed.join(', ') || 'none'}`, 'agent');
  }

  /** The named agent (the default for null); BAD_USER_INPUT naming the configured ones when unknown. */
  get(name: string | null | undefined): AgentDriver {
    const driver = this.byName.get(name ?? this.defaultName);
    if (!driver) throw new InvalidInputError(`unknown agent "${name}"; configured agents: ${this.names().join(', ')}`, 'agent');
    return driver;
  }
}
