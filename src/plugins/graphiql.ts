/**
 * Options for yoga's built-in GraphiQL, which `createYoga({ renderGraphiQL })` serves
 * self-contained (no CDN) with subscriptions over graphql-ws on the GraphQL endpoint itself.
 * It opens on operations a person can run straight away, top to bottom.
 */
import type { GraphiQLOptions } from 'graphql-yoga';

/** yoga's `renderGraphiQL`, loading the renderer (a large self-contained page) only when someone first opens GraphiQL. */
export async function renderGraphiQLOnFirstUse(options: GraphiQLOptions): Promise<string> {
  const { renderGraphiQL } = await import('@graphql-yoga/render-graphiql');
  return renderGraphiQL(options);
}

export interface RunboardGraphiQLOptions {
  /** Whether the server requires a token; only then does the page say where to put one. The token itself is never embedded. @default false */
  tokenRequired?: boolean;
  /** @default 'runboard' */
  title?: string;
}

const TOKEN_HINT = `# This server requires a token. Open "Headers" below and enter
#   {"Authorization": "Bearer <token>"}
# with the RUNBOARD_TOKEN the server was started with.

`;

/** The example operations as one document; the run button asks which one to run. Lines fit the editor's width. */
export const EXAMPLE_OPERATIONS = `# Welcome to runboard. Press Run (Ctrl-Enter), pick an operation.
# Subscriptions use WebSocket (graphql-ws) on this endpoint.

# 1. The board: every card and its latest run.
query Board {
  cards(first: 50) {
    edges {
      node {
        id title column position tags
        runs(first: 1) { edges { node { id status } } }  # newest first
      }
    }
  }
}

# 2. Put a card on the board.
#    Then put its id in Variables: {"cardId": "<id>"}
mutation CreateCard {
  createCard(input: {
    title: "Make the player jump higher", column: TODO
  }) { id title column position }
}

# 3. Start the coding agent on the card, in its own worktree.
#    Then add the run's id: {"cardId": "...", "runId": "<id>"}
mutation StartRun($cardId: ID!) {
  startRun(input: { cardId: $cardId }) {
    id status branch worktreePath
  }
}

# 4. Follow everything the agent does, live; each kind of
#    event is its own type. After a disconnect, pass the
#    last seq you saw as "since".
subscription RunEvents($runId: ID!, $since: Int = 0) {
  runEvents(runId: $runId, since: $since) {
    __typename seq
    ... on StatusChangedEvent { status reason error }
    ... on AssistantTextEvent { text }
    ... on ToolStartedEvent { tool args }
    ... on ToolEndedEvent { tool isError output }
    ... on UsageEvent { totalTokens costUsd }
  }
}
`;

export function graphiqlOptions({ tokenRequired = false, title = 'runboard' }: RunboardGraphiQLOptions = {}): GraphiQLOptions {
  return {
    title,
    subscriptionsProtocol: 'WS',
    defaultQuery: (tokenRequired ? TOKEN_HINT : '') + EXAMPLE_OPERATIONS,
  };
}
