/**
 * A small typed client for runboard's GraphQL API: queries and mutations over HTTP (fetch),
 * subscriptions over graphql-ws on the same URL. Every method takes and returns the types that
 * `npm run codegen` generates from `sdk/operations/*.graphql`; `request` and `subscribe` accept any
 * generated TypedDocumentNode, so a new operation needs only a `.graphql` file and a re-run.
 */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import * as ops from './generated/graphql.js';

export interface RunboardClientOptions {
  /** The GraphQL endpoint, e.g. `http://127.0.0.1:4000/graphql`. Subscriptions use it as `ws(s)://`. */
  url: string;
  /** Sent as `Authorization: Bearer <token>` over HTTP and as `{ authorization }` in graphql-ws's `connection_init`. */
  token?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** A WebSocket constructor for graphql-ws. @default globalThis.WebSocket, else the `ws` package (Node 20) */
  webSocketImpl?: unknown;
  /** graphql-ws reconnects after a dropped socket and resubscribes with the original variables; 0 makes a drop end the subscription with CONNECTION_CLOSED instead, so the caller resumes from its own last seq. @default 5 */
  retryAttempts?: number;
}

/** A GraphQL error answer (`code` is the first error's `extensions.code`) or a transport failure. */
export class RunboardError extends Error {
  override readonly name = 'RunboardError';
  /** `extensions.code` (NOT_FOUND, CONFLICT, BAD_USER_INPUT, SUBSCRIBER_TOO_SLOW, …), or NETWORK_ERROR, HTTP_ERROR, CONNECTION_CLOSED, NO_DATA. */
  readonly code: string | undefined;
  /** The first error's `extensions` (e.g. `field`, `paths`, `resumeFrom`). */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Every error of the answer. */
  readonly errors: readonly GraphQLFormattedError[];

  constructor(message: string, code?: string, errors: readonly GraphQLFormattedError[] = []) {
    super(message);
    this.errors = errors;
    this.extensions = errors[0]?.extensions ?? {};
    this.code = typeof this.extensions.code === 'string' ? this.extensions.code : code;
  }

  /** The error for a GraphQL `errors` array: the first error's message and code. */
  static fromErrors(errors: readonly GraphQLFormattedError[]): RunboardError {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    return new RunboardError(`${errors[0]?.message ?? 'GraphQL error'}${more}`, undefined, errors);
  }
}

/** A card as the board operations return it. */
export type Card = ops.CardFieldsFragment;
/** A run as the run operations return it. */
export type Run = ops.RunFieldsFragment;
/** One entry of a run's event log: a union discriminated by `__typename` (see the `RunEvent` implementations in schema.graphql). */
export type RunEvent = ops.RunEventFieldsFragment;
/** One kind of run event, by its GraphQL type name: `RunEventOf<'ToolStartedEvent'>`. */
export type RunEventOf<Name extends RunEvent['__typename']> = Extract<RunEvent, { __typename: Name }>;

/** One change to the board: a union discriminated by `__typename` (see the `BoardEvent` implementations in schema.graphql). */
export type BoardEvent = ops.BoardEventFieldsFragment;

/** Where `followRunEvents` starts and when it ends. */
export interface FollowRunEventsOptions {
  /** Events with seq > since. @default 0 */
  since?: number;
  /** End after the run's terminal status (and a running playtest's exit). @default false: follow until you leave the loop */
  untilSettled?: boolean;
}
/** A run's commits and diff. */
export type RunDiff = NonNullable<ops.RunDiffQuery['run']>;
/** What `mergeRun` did: `ok: false` means a conflict, with the paths, and main left as it was. */
export type MergeResult = NonNullable<ops.MergeRunMutation['mergeRun']>;

/** Variables as an optional argument when the operation has no required ones. */
type VariablesArg<V> = {} extends V ? [variables?: V] : [variables: V];

/**
 * Follows a sequenced stream from `since`: each entry once, in seq order. A SUBSCRIBER_TOO_SLOW error
 * resubscribes from its `extensions.resumeFrom`; entries a reconnect replays are skipped by seq.
 */
async function* followFrom<T extends { seq: number }>(since: number, open: (from: number) => AsyncIterable<T | null | undefined>): AsyncGenerator<T, void, undefined> {
  let last = since;
  for (;;) {
    try {
      for await (const entry of open(last)) {
        if (!entry || entry.seq <= last) continue;
        last = entry.seq;
        yield entry;
      }
      return;
    } catch (error) {
      if (!(error instanceof RunboardError && error.code === 'SUBSCRIBER_TOO_SLOW')) throw error;
      const resumeFrom = error.extensions.resumeFrom;
      if (typeof resumeFrom === 'number') last = resumeFrom;
    }
  }
}

/** Builds a client. Nothing connects until the first call; `close()` ends the WebSocket, if one was opened. */
export function createRunboardClient(options: RunboardClientOptions) {
  const { url, token } = options;
  const doFetch = options.fetch ?? globalThis.fetch;
  const printed = new WeakMap<DocumentNode, string>();
  const source = (document: DocumentNode) => printed.get(document) ?? printed.set(document, print(document)).get(document)!;
  let ws: Client | undefined;

  /** Runs a query or mutation over HTTP and returns its `data`; throws RunboardError on any error. */
  async function request<R, V>(document: TypedDocumentNode<R, V>, ...[variables]: VariablesArg<V>): Promise<R> {
    let response: Response;
    try {
      response = await doFetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query: source(document), variables }),
      });
    } catch (error) {
      throw new RunboardError(`cannot reach ${url}: ${describe(error)}`, 'NETWORK_ERROR');
    }
    const body = (await response.json().catch(() => undefined)) as { data?: R | null; errors?: GraphQLFormattedError[] } | undefined;
    if (body?.errors?.length) throw RunboardError.fromErrors(body.errors);
    if (!response.ok) throw new RunboardError(`HTTP ${response.status} ${response.statusText} from ${url}`, 'HTTP_ERROR');
    if (!body?.data) throw new RunboardError(`no data in the answer from ${url}`, 'NO_DATA');
    return body.data;
  }

  async function socket(): Promise<Client> {
    if (ws) return ws;
    const impl = options.webSocketImpl ?? (globalThis as { WebSocket?: unknown }).WebSocket ?? (await import('ws')).default;
    return (ws ??= createClient({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: impl,
      connectionParams: token ? { authorization: `Bearer ${token}` } : undefined,
      retryAttempts: options.retryAttempts,
    }));
  }

  /**
   * Subscribes over graphql-ws and yields each result's `data` until the server completes the stream.
   * Throws RunboardError on a GraphQL error or a lost connection; leaving the loop early unsubscribes.
   */
  async function* subscribe<R, V>(document: TypedDocumentNode<R, V>, ...[variables]: VariablesArg<V>): AsyncGenerator<R, void, undefined> {
    const results = (await socket()).iterate<R>({ query: source(document), variables: variables as Record<string, unknown> | undefined });
    try {
      for (;;) {
        const step = await results.next().catch((error: unknown) => {
          throw socketError(error);
        });
        if (step.done) return;
        if (step.value.errors?.length) throw RunboardError.fromErrors(step.value.errors);
        yield step.value.data as R;
      }
    } finally {
      await results.return?.();
    }
  }

  /**
   * Every event of a run after `since`, in seq order and each once: until you leave the loop, or with
   * `untilSettled` until the run settles (its terminal StatusChangedEvent, or a running playtest's
   * PlaytestExitedEvent, is the last one). It subscribes to runEventBatches, so catching up costs a
   * message per 1,000 events, not per event. A SUBSCRIBER_TOO_SLOW error resubscribes from its
   * `extensions.resumeFrom`; events a graphql-ws reconnect replays are skipped by seq.
   */
  function followRunEvents(runId: string, { since = 0, untilSettled = false }: FollowRunEventsOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
    return followFrom(since, async function* (from) {
      for await (const { runEventBatches } of subscribe(ops.RunEventBatchesDocument, { runId, since: from, untilSettled })) yield* runEventBatches;
    });
  }

  /**
   * Every board change after `since`, in seq order and each once, until you leave the loop. Like
   * `followRunEvents`, it takes them a list per message (boardEventBatches), resubscribes after
   * SUBSCRIBER_TOO_SLOW and skips what a reconnect replays.
   */
  function followBoardEvents(since = 0): AsyncGenerator<BoardEvent, void, undefined> {
    return followFrom(since, async function* (from) {
      for await (const { boardEventBatches } of subscribe(ops.BoardEventBatchesDocument, { since: from })) yield* boardEventBatches;
    });
  }

  /** Runs whenever their status changes or they are merged, for one card or (without `cardId`) for all. Never ends by itself. */
  async function* followRunUpdates(cardId?: string): AsyncGenerator<Run, void, undefined> {
    for await (const { runUpdated } of subscribe(ops.RunUpdatedDocument, { cardId })) if (runUpdated) yield runUpdated;
  }

  return {
    request,
    subscribe,
    followRunEvents,
    followBoardEvents,
    followRunUpdates,
    /** Every card, in board order, following pages of 100. Optionally one column or one tag. */
    async board(filter: Pick<ops.BoardQueryVariables, 'column' | 'tag'> = {}): Promise<Card[]> {
      const cards: Card[] = [];
      for (let after: string | null | undefined; ; ) {
        const page = required((await request(ops.BoardDocument, { ...filter, first: 100, after })).cards, 'cards');
        cards.push(...page.edges.map((edge) => edge.node));
        if (!page.pageInfo.hasNextPage) return cards;
        after = page.pageInfo.endCursor;
      }
    },
    /** One card with its prompt, references and newest comments. NOT_FOUND for an unknown id. */
    card: async (id: string) => required((await request(ops.CardDocument, { id })).card, 'card'),
    /** Creates a card (in BACKLOG unless `input.column` says otherwise). */
    createCard: async (input: ops.CreateCardInput) => required((await request(ops.CreateCardDocument, { input })).createCard, 'createCard'),
    /** Moves a card to a column and position (default: the end). */
    moveCard: async (id: string, column: ops.CardColumn, position?: number) =>
      required((await request(ops.MoveCardDocument, { id, column, position })).moveCard, 'moveCard'),
    /** Adds a comment to a card. */
    addComment: async (cardId: string, body: string, author = 'automation') =>
      required((await request(ops.AddCommentDocument, { cardId, body, author })).addComment, 'addComment'),
    /** Starts an agent on a card; the run is QUEUED or STARTING. Follow it with `followRunEvents`. */
    startRun: async (input: ops.StartRunInput) => required((await request(ops.StartRunDocument, { input })).startRun, 'startRun'),
    /** One run. NOT_FOUND for an unknown id. */
    run: async (id: string) => required((await request(ops.RunDocument, { id })).run, 'run'),
    /** Runs, newest first (one page, default 50), optionally for one card and in one status. */
    runs: async (variables: ops.RunsQueryVariables = {}) =>
      required((await request(ops.RunsDocument, variables)).runs, 'runs').edges.map((edge) => edge.node),
    /** Steers (at the agent's next model request) or follows up (when it would stop) an active run. CONFLICT when not active. */
    sendRunMessage: async (runId: string, text: string, mode: ops.MessageMode = 'FOLLOW_UP') =>
      required((await request(ops.SendRunMessageDocument, { runId, text, mode })).sendRunMessage, 'sendRunMessage'),
    /** Stops an active run and returns it STOPPED. CONFLICT when not active. */
    stopRun: async (runId: string) => required((await request(ops.StopRunDocument, { runId })).stopRun, 'stopRun'),
    /** A run's commits and diff stat and files; the patch too with `withPatch`, cut to `maxBytes` (default 1 MiB). */
    runDiff: async (id: string, options: { maxBytes?: number; withPatch?: boolean } = {}) =>
      required((await request(ops.RunDiffDocument, { id, ...options })).run, 'run'),
    /** Merges a settled run into the main checkout. A conflict is `ok: false` with `conflictingPaths`, not an error. */
    mergeRun: async (runId: string, strategy: ops.MergeStrategy = 'MERGE') =>
      required((await request(ops.MergeRunDocument, { runId, strategy })).mergeRun, 'mergeRun'),
    /** Starts the run's playtest command in its worktree; follow its output in `followRunEvents`. CONFLICT when one is running. */
    startPlaytest: async (runId: string) => required((await request(ops.StartPlaytestDocument, { runId })).startPlaytest, 'startPlaytest'),
    /** Ends the run's playtest and its whole process group. CONFLICT when none is running. */
    stopPlaytest: async (runId: string) => required((await request(ops.StopPlaytestDocument, { runId })).stopPlaytest, 'stopPlaytest'),
    /** Closes the WebSocket, ending any subscription. HTTP calls keep working. */
    async close(): Promise<void> {
      const open = ws;
      ws = undefined;
      await open?.dispose();
    },
  };
}

/** The client `createRunboardClient` returns. */
export type RunboardClient = ReturnType<typeof createRunboardClient>;

function required<T>(value: T | null | undefined, field: string): T {
  if (value == null) throw new RunboardError(`${field} returned null`, 'NO_DATA');
  return value;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: string; message?: string } | undefined;
  return cause ? `${error.message} (${cause.code ?? cause.message})` : error.message;
}

/** graphql-ws rejects with the server's GraphQL errors, an Error, or the socket's CloseEvent. */
function socketError(error: unknown): RunboardError {
  if (error instanceof RunboardError) return error;
  if (Array.isArray(error)) return RunboardError.fromErrors(error as GraphQLFormattedError[]);
  if (error instanceof Error) return new RunboardError(error.message, 'NETWORK_ERROR');
  const { code, reason } = (error ?? {}) as { code?: number; reason?: string };
  return new RunboardError(`connection closed${code ? ` (${code}${reason ? ` ${reason}` : ''})` : ''}`, 'CONNECTION_CLOSED');
}
