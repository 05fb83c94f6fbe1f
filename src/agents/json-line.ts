/**
 * What every JSON-lines agent protocol shares: one stdout line is one JSON object. A line that is not
 * one is the agent breaking its protocol, reported as the orchestrator's AgentProtocolError.
 */
import { AgentProtocolError } from '../orchestrator/agent-protocol.js';

/** Parses one stdout line into a JSON object; anything else throws AgentProtocolError (with the line's start). */
export function parseJsonObjectLine(line: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new AgentProtocolError(`not JSON: ${line.slice(0, 200)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AgentProtocolError(`not a JSON object: ${line.slice(0, 200)}`);
  return value as Record<string, unknown>;
}

/** Whether `value` is a non-null, non-array object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
