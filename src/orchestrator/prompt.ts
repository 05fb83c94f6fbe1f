/** Renders a card into the text an agent receives as its default prompt. */
import type { Prisma, ReferenceKind } from '../generated/prisma/client.js';

export interface PromptCard {
  title: string;
  description: string;
  tags: readonly { name: string }[];
  references: readonly { kind: ReferenceKind; target: string; note: string }[];
  /** Oldest first; the caller bounds how many (see PROMPT_COMMENT_LIMIT). */
  comments: readonly { author: string; body: string; createdAt: Date }[];
}

/** How many of the newest comments a prompt includes, so a long discussion cannot swamp it. */
export const PROMPT_COMMENT_LIMIT = 20;

const REFERENCE_LABEL: Record<ReferenceKind, string> = {
  FILE: 'File',
  URL: 'Link',
  CARD: 'Related card',
  NOTE: 'Note',
};

/** The Prisma `select` that loads a card as `renderAgentPrompt` needs it (newest comments first). */
export const AGENT_PROMPT_SELECT = {
  title: true,
  description: true,
  tags: { select: { name: true }, orderBy: { name: 'asc' } },
  references: { select: { kind: true, target: true, note: true }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] },
  comments: { select: { author: true, body: true, createdAt: true }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: PROMPT_COMMENT_LIMIT },
} satisfies Prisma.CardSelect;

/** Renders a card loaded with AGENT_PROMPT_SELECT, whose comments come newest first. */
export function renderCardPrompt(card: PromptCard): string {
  return renderAgentPrompt({ ...card, comments: [...card.comments].reverse() });
}

/**
 * The operations the prompt teaches an agent, as the GraphQL documents it is shown. They are the
 * prompt's only spelling of the API, and a test validates and runs each one with an agent token, so
 * a schema change that would break agents fails there instead of in a run.
 */
export const AGENT_OPERATIONS = {
  /** Its run and card (the card id the others take). */
  currentRun: '{ currentRun { id card { id title column } } }',
  addComment: 'mutation($cardId: ID!, $body: String!) { addComment(cardId: $cardId, author: "agent", body: $body) { id } }',
  updateDescription: 'mutation($id: ID!, $description: String!) { updateCard(id: $id, input: { description: $description }) { id } }',
  addTags: 'mutation($id: ID!, $tags: [String!]!) { addCardTags(id: $id, tags: $tags) { id } }',
  removeTags: 'mutation($id: ID!, $tags: [String!]!) { removeCardTags(id: $id, tags: $tags) { id } }',
  moveToReview: 'mutation($id: ID!) { moveCard(id: $id, column: REVIEW) { column } }',
} as const;

/** Telling the agent how to reach its card on the board with curl. */
const BOARD_ACCESS = [
  'You can update this card on the runboard board, a GraphQL API at $RUNBOARD_URL. Send each operation below as JSON {"query": ..., "variables": {...}}:',
  `curl -s "$RUNBOARD_URL" -H "Authorization: Bearer $RUNBOARD_RUN_TOKEN" -H 'content-type: application/json' -d '${JSON.stringify({ query: AGENT_OPERATIONS.currentRun })}'`,
  'gives your card id (currentRun.card.id). With it:',
  `- comment (variables cardId, body): ${AGENT_OPERATIONS.addComment}`,
  `- edit the description (variables id, description): ${AGENT_OPERATIONS.updateDescription}`,
  `- add or remove tags (variables id, tags): ${AGENT_OPERATIONS.addTags} / ${AGENT_OPERATIONS.removeTags}`,
  `- when your work is ready (variable id): ${AGENT_OPERATIONS.moveToReview}`,
  'Nothing else is allowed: only your own card, not its title, and the token stops working when this run ends.',
].join('\n');

/** The prompt for a card: its content, then how to work and how to reach the board. */
export function renderAgentPrompt(card: PromptCard): string {
  const sections = [`# ${card.title}`];
  if (card.description.trim()) sections.push(card.description.trim());
  if (card.tags.length) sections.push(`Tags: ${card.tags.map((t) => t.name).join(', ')}`);
  if (card.references.length) {
    const lines = card.references.map((r) => `- ${REFERENCE_LABEL[r.kind]}: ${r.target}${r.note ? ` (${r.note})` : ''}`);
    sections.push(['## References', ...lines].join('\n'));
  }
  if (card.comments.length) {
    const lines = card.comments.map((c) => `- ${c.author} (${c.createdAt.toISOString()}): ${c.body}`);
    sections.push(['## Discussion', ...lines].join('\n'));
  }
  sections.push('Work in the current directory, which is a git worktree on its own branch. Commit your changes with clear messages when you are done.');
  sections.push(BOARD_ACCESS);
  return sections.join('\n\n');
}
