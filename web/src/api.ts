/**
 * The page's one connection to runboard: the SDK's client on this origin, the token kept for the tab,
 * coded errors in words, and live streams that resume from their last seq after a dropped socket.
 */
import { createRunboardClient, RunboardError, type RunboardClient } from '../../sdk/client.js';

const TOKEN_KEY = 'runboard.token';
/** The GraphQL endpoint on this origin; subscriptions use it as ws(s)://. */
export const ENDPOINT = new URL('/graphql', location.href).toString();

/** The token entered for this tab (sessionStorage: gone when the tab closes), if any. */
export const savedToken = (): string | undefined => sessionStorage.getItem(TOKEN_KEY) ?? undefined;
/** Keeps (or, with undefined, forgets) the tab's token. */
export function saveToken(token: string | undefined): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A client for this origin. Reconnects are the page's own (`follow`), from the last seq it applied. */
export function connect(token: string | undefined): RunboardClient {
  return createRunboardClient({ url: ENDPOINT, token, fetch: (input, init) => fetch(input, init), webSocketImpl: WebSocket, retryAttempts: 0 });
}

/** What each error code means to a person. */
const WORDS: Record<string, string> = {
  UNAUTHENTICATED: 'The server needs a token, or the one given is wrong.',
  FORBIDDEN: 'That is not allowed.',
  NOT_FOUND: 'It no longer exists.',
  CONFLICT: 'That cannot be done in the current state.',
  BAD_USER_INPUT: 'Something entered is not valid.',
  AGENT_UNAVAILABLE: 'That agent is not available on the server.',
  NETWORK_ERROR: 'The server cannot be reached.',
  CONNECTION_CLOSED: 'The live connection was lost; reconnecting.',
  HTTP_ERROR: 'The server answered with an HTTP error.',
  INTERNAL_SERVER_ERROR: 'The server failed; its log has the details.',
};

/** An error as one line for a person: the meaning of its code, then the server's message. */
export function inWords(error: unknown): string {
  if (error instanceof RunboardError) {
    const meaning = error.code ? WORDS[error.code] : undefined;
    return meaning ? `${meaning} (${error.message})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Whether the error means the token is missing or wrong. */
export const isUnauthenticated = (error: unknown) => error instanceof RunboardError && error.code === 'UNAUTHENTICATED';

/**
 * Follows a sequenced stream until `signal` aborts: after a dropped socket it waits and resubscribes
 * from the last seq it handed on, so each entry reaches `onEntry` once. `onState` tells the page
 * whether it is live.
 */
export async function follow<T extends { seq: number }>(
  open: (since: number) => AsyncIterable<T>,
  since: number,
  onEntry: (entry: T) => void,
  onState: (state: 'live' | 'reconnecting', error?: unknown) => void,
  signal: AbortSignal,
): Promise<void> {
  let last = since;
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      onState('live');
      for await (const entry of open(last)) {
        if (signal.aborted) return;
        if (entry.seq <= last) continue;
        last = entry.seq;
        attempt = 0;
        onEntry(entry);
      }
      return;
    } catch (error) {
      if (signal.aborted) return;
      onState('reconnecting', error);
      await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 5_000)));
    }
  }
}
