/**
 * The board: cards in columns with dense 0-based positions, their tags, references and comments.
 * Every write goes through `Database.write`, so position shifts and their reads never interleave.
 * Each operation takes the actor doing it and checks the policy (actor.ts) first; in the change's own
 * transaction it appends its board log entry and, for an agent, the `board_change` event on the
 * agent's run, so a change is never without its record. Both are published after the commit.
 */
import type { CardColumn, ReferenceKind } from '../generated/prisma/client.js';
import { actorRunId, requireOperator, requireOwnCard, type Actor } from './actor.js';
import type { BoardEventInput, BoardLog } from './board-log.js';
import type { Database, Tx } from './db.js';
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError } from './errors.js';
import type { EventLog } from './event-log.js';
import type { BoardChangeAction, RunEventDataByType } from './run-events.js';

/** Every board operation, by name; an agent may perform only the BoardChangeAction ones, on its own card. */
type BoardAction = BoardChangeAction | 'createCard' | 'deleteCard' | 'deleteComment' | 'addCardReference' | 'removeCardReference';
const AGENT_ACTIONS: ReadonlySet<string> = new Set<BoardChangeAction>(['addComment', 'updateCard', 'addCardTags', 'removeCardTags', 'moveCard']);
function isAgentAction(action: BoardAction): action is BoardChangeAction {
  return AGENT_ACTIONS.has(action);
}

export type { CardColumn, ReferenceKind };

/** Each column's place on the board, left to right; cards are listed in this order, then by position. */
export const COLUMN_ORDER: Readonly<Record<CardColumn, number>> = { BACKLOG: 0, TODO: 1, IN_PROGRESS: 2, REVIEW: 3, DONE: 4 };

/** Input limits, in characters (or items, for `tagsPerCard`). */
export const BOARD_LIMITS = {
  title: 200,
  description: 20_000,
  tag: 40,
  tagsPerCard: 20,
  commentAuthor: 100,
  commentBody: 10_000,
  referenceTarget: 2_000,
  referenceNote: 2_000,
} as const;

export interface CreateCardInput {
  title: string;
  description?: string | null;
  /** @default 'BACKLOG' */
  column?: CardColumn | null;
  /** 0-based; clamped to the end of the column. @default the end */
  position?: number | null;
  tags?: readonly string[] | null;
}

export interface UpdateCardInput {
  title?: string | null;
  description?: string | null;
}

export interface ReferenceInput {
  kind: ReferenceKind;
  target: string;
  note?: string | null;
}

/** What one board operation did inside its transaction. */
interface Change<T> {
  result: T;
  /** Its board log entries. */
  events: BoardEventInput[];
  /** What an agent's `board_change` event says besides the action. */
  audit: Omit<RunEventDataByType['board_change'], 'action'>;
}

/** The `withLock` name board changes hold, cluster-wide on Postgres. */
const BOARD_LOCK = 'board';

/** How much of a comment an agent's `board_change` event keeps. @default 2_000 // characters */
const AUDITED_BODY_CHARS = 2_000;

export class Board {
  constructor(
    private readonly db: Database,
    private readonly boardLog: BoardLog,
    private readonly eventLog: EventLog,
  ) {}

  /**
   * Runs one operation's transaction: `fn` makes the change, then its board log entries and, for an
   * agent, its `board_change` run event are written in the same transaction. Publishes after commit.
   */
  private async change<T>(actor: Actor, action: BoardAction, fn: (tx: Tx) => Promise<Change<T>>): Promise<T> {
    if (actor.kind === 'agent' && !isAgentAction(action)) throw new ForbiddenError(`an agent may not ${action}`);
    // Positions are read, then shifted: changes must not interleave. On SQLite every write is serialized
    // already; on Postgres the lock keeps two nodes (or two requests) from handing out one position twice.
    const { result, board, audit } = await this.db.withLock(BOARD_LOCK, () => this.db.write(async (tx) => {
      const change = await fn(tx);
      // The run's counter before the board's: the board log's counter is global, so it is taken last and held briefly
      // (and every writer takes the two in this order, which on Postgres keeps them from deadlocking).
      const audit = actor.kind === 'agent' && isAgentAction(action) ? await this.eventLog.appendTx(tx, actor.runId, [{ type: 'board_change', data: { action, ...change.audit } }]) : [];
      const board = await this.boardLog.appendTx(tx, actorRunId(actor), change.events);
      return { result: change.result, board, audit };
    }));
    this.boardLog.publish(board);
    if (actor.kind === 'agent') this.eventLog.publish(actor.runId, audit);
    return result;
  }

  /** Creates a card at `position` in its column (the end by default) and returns its id. Operator only. */
  createCard(actor: Actor, input: CreateCardInput): Promise<string> {
    requireOperator(actor, 'create cards');
    const title = requireText('title', input.title, BOARD_LIMITS.title);
    const description = optionalText('description', input.description, BOARD_LIMITS.description);
    const tags = normalizeTags(input.tags ?? []);
    const column = input.column ?? 'BACKLOG';
    return this.change(actor, 'createCard', async (tx) => {
      const size = await tx.card.count({ where: { column } });
      const position = clampPosition(input.position, size);
      await shift(tx, column, { gte: position }, +1);
      const card = await tx.card.create({
        data: { title, description, column, columnOrder: COLUMN_ORDER[column], position, tags: { create: tags.map((name) => ({ name })) } },
        select: { id: true },
      });
      return { result: card.id, events: [{ type: 'card_created', cardId: card.id, data: { title, column, position } }], audit: {} };
    });
  }

  /** Sets the fields given. An agent may change its own card's description, not its title. */
  async updateCard(actor: Actor, id: string, input: UpdateCardInput): Promise<void> {
    requireOwnCard(actor, id);
    if (actor.kind === 'agent' && input.title != null) throw new ForbiddenError('an agent may edit its card\'s description and tags, not its title');
    const data = {
      title: input.title == null ? undefined : requireText('title', input.title, BOARD_LIMITS.title),
      description: input.description == null ? undefined : optionalText('description', input.description, BOARD_LIMITS.description),
    };
    const fields = Object.entries(data).filter(([, value]) => value !== undefined).map(([field]) => field);
    await this.change(actor, 'updateCard', async (tx) => {
      await findCard(tx, id);
      const card = await tx.card.update({ where: { id }, data, select: { title: true } });
      return { result: undefined, events: [{ type: 'card_updated', cardId: id, data: { fields, title: card.title } }], audit: { description: input.description ?? null } };
    });
  }

  /** Moves a card to `position` in `column` (the end by default), closing and opening gaps. An agent, its own card only. */
  async moveCard(actor: Actor, id: string, column: CardColumn, position?: number | null): Promise<void> {
    requireOwnCard(actor, id);
    await this.change(actor, 'moveCard', async (tx) => {
      const card = await findCard(tx, id);
      await shift(tx, card.column, { gt: card.position }, -1);
      const size = await tx.card.count({ where: { column, id: { not: id } } });
      const target = clampPosition(position, size);
      await shift(tx, column, { gte: target }, +1, id);
      await tx.card.update({ where: { id }, data: { column, columnOrder: COLUMN_ORDER[column], position: target } });
      return {
        result: undefined,
        events: [{ type: 'card_moved', cardId: id, data: { fromColumn: card.column, fromPosition: card.position, column, position: target } }],
        audit: { column, position: position ?? null },
      };
    });
  }

  /** Deletes a card with its comments, tags and references; refused while it has runs (Orchestrator.deleteCard removes those first). Operator only. */
  async deleteCard(actor: Actor, id: string): Promise<void> {
    requireOperator(actor, 'delete cards');
    await this.change(actor, 'deleteCard', async (tx) => {
      const card = await findCard(tx, id);
      // A run started since the caller removed the card's runs.
      const runs = await tx.run.count({ where: { cardId: id } });
      if (runs > 0) throw new ConflictError(`card ${id} has runs; delete them first`);
      await tx.card.delete({ where: { id } });
      await shift(tx, card.column, { gt: card.position }, -1);
      return { result: undefined, events: [{ type: 'card_deleted', cardId: id, data: { column: card.column, position: card.position } }], audit: {} };
    });
  }

  /** Adds tags (trimmed, deduplicated, case kept); tags already present are left alone. An agent, its own card only. */
  async addTags(actor: Actor, cardId: string, names: readonly string[]): Promise<void> {
    requireOwnCard(actor, cardId);
    const tags = normalizeTags(names);
    await this.change(actor, 'addCardTags', async (tx) => {
      await findCard(tx, cardId);
      const existing = await tx.cardTag.findMany({ where: { cardId }, select: { name: true } });
      const fresh = tags.filter((name) => !existing.some((t) => t.name === name));
      if (existing.length + fresh.length > BOARD_LIMITS.tagsPerCard) {
        throw new InvalidInputError(`a card has at most ${BOARD_LIMITS.tagsPerCard} tags`, 'tags');
      }
      if (fresh.length) await tx.cardTag.createMany({ data: fresh.map((name) => ({ cardId, name })) });
      await touch(tx, cardId);
      return { result: undefined, events: [await tagsChanged(tx, cardId)], audit: { tags: [...names] } };
    });
  }

  /** Removes tags; names not present are ignored. An agent, its own card only. */
  async removeTags(actor: Actor, cardId: string, names: readonly string[]): Promise<void> {
    requireOwnCard(actor, cardId);
    await this.change(actor, 'removeCardTags', async (tx) => {
      await findCard(tx, cardId);
      await tx.cardTag.deleteMany({ where: { cardId, name: { in: names.map((n) => n.trim()) } } });
      await touch(tx, cardId);
      return { result: undefined, events: [await tagsChanged(tx, cardId)], audit: { tags: [...names] } };
    });
  }

  /** Adds a comment and returns its id. An agent comments on its own card only, and signs as itself whatever `author` says. */
  async addComment(actor: Actor, cardId: string, author: string, body: string): Promise<string> {
    requireOwnCard(actor, cardId);
    // An agent cannot write as a person.
    const signed = actor.kind === 'agent' ? `agent (run ${actor.runId.slice(-8)})` : author;
    const data = {
      cardId,
      author: requireText('author', signed, BOARD_LIMITS.commentAuthor),
      body: requireText('body', body, BOARD_LIMITS.commentBody),
    };
    return this.change(actor, 'addComment', async (tx) => {
      await findCard(tx, cardId);
      const comment = await tx.comment.create({ data, select: { id: true } });
      await touch(tx, cardId);
      return {
        result: comment.id,
        events: [{ type: 'comment_added', cardId, data: { commentId: comment.id, author: data.author } }],
        audit: { commentId: comment.id, body: data.body.slice(0, AUDITED_BODY_CHARS) },
      };
    });
  }

  /** Deletes a comment and returns its card's id. Operator only. */
  deleteComment(actor: Actor, id: string): Promise<string> {
    requireOperator(actor, 'delete comments');
    return this.change(actor, 'deleteComment', async (tx) => {
      const comment = await tx.comment.findUnique({ where: { id }, select: { cardId: true } });
      if (!comment) throw new NotFoundError('Comment', id);
      await tx.comment.delete({ where: { id } });
      return { result: comment.cardId, events: [{ type: 'comment_deleted', cardId: comment.cardId, data: { commentId: id } }], audit: {} };
    });
  }

  /** Adds a reference. A CARD reference's target is the referenced card's id, which must exist. Operator only. */
  async addReference(actor: Actor, cardId: string, input: ReferenceInput): Promise<string> {
    requireOperator(actor, 'add references');
    const target = validateReferenceTarget(input.kind, input.target);
    const note = optionalText('note', input.note, BOARD_LIMITS.referenceNote);
    return this.change(actor, 'addCardReference', async (tx) => {
      await findCard(tx, cardId);
      if (input.kind === 'CARD') await findCard(tx, target);
      const reference = await tx.cardReference.create({ data: { cardId, kind: input.kind, target, note }, select: { id: true } });
      await touch(tx, cardId);
      return { result: reference.id, events: [{ type: 'reference_added', cardId, data: { referenceId: reference.id, kind: input.kind, target } }], audit: {} };
    });
  }

  /** Deletes a reference and returns its card's id. Operator only. */
  removeReference(actor: Actor, id: string): Promise<string> {
    requireOperator(actor, 'remove references');
    return this.change(actor, 'removeCardReference', async (tx) => {
      const reference = await tx.cardReference.findUnique({ where: { id }, select: { cardId: true } });
      if (!reference) throw new NotFoundError('CardReference', id);
      await tx.cardReference.delete({ where: { id } });
      return { result: reference.cardId, events: [{ type: 'reference_removed', cardId: reference.cardId, data: { referenceId: id } }], audit: {} };
    });
  }
}

/** A card_tags_changed entry with the card's tags as they are now in `tx`. */
async function tagsChanged(tx: Tx, cardId: string): Promise<BoardEventInput> {
  const tags = await tx.cardTag.findMany({ where: { cardId }, select: { name: true }, orderBy: { name: 'asc' } });
  return { type: 'card_tags_changed', cardId, data: { tags: tags.map((t) => t.name) } };
}

async function findCard(tx: Tx, id: string) {
  const card = await tx.card.findUnique({ where: { id }, select: { id: true, column: true, position: true } });
  if (!card) throw new NotFoundError('Card', id);
  return card;
}

/** Moves every card of `column` whose position matches by `delta`, except `exceptId`. */
function shift(tx: Tx, column: CardColumn, position: { gt: number } | { gte: number }, delta: 1 | -1, exceptId?: string) {
  return tx.card.updateMany({
    where: { column, position, ...(exceptId ? { id: { not: exceptId } } : {}) },
    data: { position: { increment: delta } },
  });
}

/** Bumps `updatedAt`, so a card's timestamp reflects changes to its tags, comments and references. */
function touch(tx: Tx, id: string) {
  return tx.card.update({ where: { id }, data: { updatedAt: new Date() }, select: { id: true } });
}

function clampPosition(position: number | null | undefined, size: number): number {
  if (position == null) return size;
  if (!Number.isInteger(position) || position < 0) throw new InvalidInputError('position must be a non-negative integer', 'position');
  return Math.min(position, size);
}

function requireText(field: string, value: string, max: number): string {
  const text = value.trim();
  if (!text) throw new InvalidInputError(`${field} must not be empty`, field);
  return checkLength(field, text, max);
}

function optionalText(field: string, value: string | null | undefined, max: number): string {
  return checkLength(field, value ?? '', max);
}

function checkLength(field: string, text: string, max: number): string {
  if (text.length > max) throw new InvalidInputError(`${field} is longer than ${max} characters`, field);
  if (text.includes('\u0000')) throw new InvalidInputError(`${field} must not contain NUL characters`, field);
  return text;
}

function normalizeTags(names: readonly string[]): string[] {
  const tags = [...new Set(names.map((name) => requireText('tag', name, BOARD_LIMITS.tag)))];
  if (tags.length > BOARD_LIMITS.tagsPerCard) throw new InvalidInputError(`a card has at most ${BOARD_LIMITS.tagsPerCard} tags`, 'tags');
  return tags;
}

function validateReferenceTarget(kind: ReferenceKind, raw: string): string {
  const target = requireText('target', raw, BOARD_LIMITS.referenceTarget);
  switch (kind) {
    case 'URL': {
      let url: URL | undefined;
      try {
        url = new URL(target);
      } catch {
        // reported below
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new InvalidInputError('a URL reference needs an http(s) URL', 'target');
      return target;
    }
    case 'FILE':
      // A path in the repository, as the agent would open it: relative and never climbing out.
      if (target.startsWith('/') || target.split(/[\\/]/).includes('..')) {
        throw new InvalidInputError('a FILE reference is a path relative to the repository, without ".."', 'target');
      }
      return target;
    case 'CARD':
    case 'NOTE':
      return target;
  }
}
