/**
 * What every JSON-lines agent protocol shares: one stdout line is one JSON object, and a `type` the
 * vocabulary does not know is kept as an `UnknownMessage`. A line that is not a JSON object is the agent
 * breaking its protocol, reported as AgentProtocolError.
 */

/** A stdout line that is not a JSON object. */
export class AgentProtocolError extends Error {}

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

/** A line whose `type` (or shape) the vocabulary does not know: kept, never dropped silently. */
export interface UnknownMessage {
  readonly type: 'unknown';
  readonly originalType: string | null;
  readonly raw: Record<string, unknown>;
}

/** Wraps a line the vocabulary cannot place. */
export function unknownMessage(originalType: string | null, raw: Record<string, unknown>): UnknownMessage {
  return { type: 'unknown', originalType, raw };
}
