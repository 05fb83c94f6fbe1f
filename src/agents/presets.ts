/**
 * The agents runboard knows by name, and the shape of a configured agent. Kept apart from the drivers
 * so the configuration (src/config.ts) can check definitions without loading any agent protocol.
 */

/** The protocols a configured agent may speak, by the AgentDriver.protocol name. */
export const AGENT_PROTOCOLS = ['pi-rpc', 'claude-stream-json', 'codex-app-server', 'acp'] as const;
/** A protocol runboard speaks to agents. */
export type AgentProtocol = (typeof AGENT_PROTOCOLS)[number];

/** One agent as configured: a preset's overrides (any field), or a new agent (its command at least). */
export interface AgentDefinition {
  readonly name: string;
  /** @default the preset's; `acp` for a new agent */
  readonly protocol?: AgentProtocol;
  /** The program and its leading arguments, parsed (no shell). */
  readonly command?: readonly string[];
  /** The arguments that start its protocol; they replace the preset's (gemini's `--acp`). */
  readonly args?: readonly string[];
  /** Added to its environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** ACP: the session mode that asks nothing; null for none. */
  readonly mode?: string | null;
  /** ACP: a refinement may load its session (`session/load`). */
  readonly resume?: boolean;
  /** ACP: its prompt responses carry token counts. */
  readonly usage?: boolean;
}

/**
 * The built-in presets, in the order Query.agents lists them. gemini-cli's `session/load` fails and
 * clobbers the stored chat (AGENTS-ACP.md §9), so its runs cannot be refined.
 */
export const AGENT_PRESETS: readonly AgentDefinition[] = [
  { name: 'pi', protocol: 'pi-rpc' },
  { name: 'claude', protocol: 'claude-stream-json', command: ['claude'] },
  { name: 'codex', protocol: 'codex-app-server', command: ['codex'] },
  { name: 'gemini', protocol: 'acp', command: ['gemini'], args: ['--acp'], mode: 'yolo', resume: false, usage: true },
];

