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

/** One paragraph telling the agent how to reach its card on the board with curl. */
const BOARD_ACCESS = [
  'You can update this card on the runboard board, a GraphQL API at $RUNBOARD_URL:',
  `curl -s "$RUNBOARD_URL" -H "Authorization: Bearer $RUNBOARD_RUN_TOKEN" -H 'content-type: application/json' -d '{"query":"{ currentRun { card { id } } }"}'`,
  'gives your card id; with it you may addComment(cardId, author, body), updateCard(id, input: { description }), addCardTags / removeCardTags(id, tags)',
  'and moveCard(id, column: REVIEW) when your work is ready. Nothing else is allowed, and the token stops working when this run ends.',
].join(' ');

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
