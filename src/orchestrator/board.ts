/**
 * The board: cards in columns with dense 0-based positions, their tags, references and comments.
 * Every write goes through `Database.write`, so position shifts and their reads never interleave.
 */
import type { CardColumn, ReferenceKind } from '../generated/prisma/client.js';
import type { Database, Tx } from './db.js';
import { ConflictError, InvalidInputError, NotFoundError } from './errors.js';

export type { CardColumn, ReferenceKind };

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

export class Board {
  constructor(private readonly db: Database) {}

  /** Creates a card at `position` in its column (the end by default) and returns its id. */
  createCard(input: CreateCardInput): Promise<string> {
    const title = requireText('title', input.title, BOARD_LIMITS.title);
    const description = optionalText('description', input.description, BOARD_LIMITS.description);
    const tags = normalizeTags(input.tags ?? []);
    const column = input.column ?? 'BACKLOG';
    return this.db.write(async (tx) => {
      const size = await tx.card.count({ where: { column } });
      const position = clampPosition(input.position, size);
      await shift(tx, column, { gte: position }, +1);
      const card = await tx.card.create({
        data: { title, description, column, position, tags: { create: tags.map((name) => ({ name })) } },
        select: { id: true },
      });
      return card.id;
    });
  }

  async updateCard(id: string, input: UpdateCardInput): Promise<void> {
    const data = {
      title: input.title == null ? undefined : requireText('title', input.title, BOARD_LIMITS.title),
      description: input.description == null ? undefined : optionalText('description', input.description, BOARD_LIMITS.description),
    };
    await this.db.write(async (tx) => {
      await findCard(tx, id);
      await tx.card.update({ where: { id }, data });
    });
  }

  /** Moves a card to `position` in `column` (the end by default), closing and opening gaps. */
  async moveCard(id: string, column: CardColumn, position?: number | null): Promise<void> {
    await this.db.write(async (tx) => {
      const card = await findCard(tx, id);
      await shift(tx, card.column, { gt: card.position }, -1);
      const size = await tx.card.count({ where: { column, id: { not: id } } });
      const target = clampPosition(position, size);
      await shift(tx, column, { gte: target }, +1, id);
      await tx.card.update({ where: { id }, data: { column, position: target } });
    });
  }

  /** Deletes a card with its comments, tags and references; refused while it has runs (Orchestrator.deleteCard removes those first). */
  async deleteCard(id: string): Promise<void> {
    await this.db.write(async (tx) => {
      const card = await findCard(tx, id);
      // A run started since the caller removed the card's runs.
      const runs = await tx.run.count({ where: { cardId: id } });
      if (runs > 0) throw new ConflictError(`card ${id} has runs; delete them first`);
      await tx.card.delete({ where: { id } });
      await shift(tx, card.column, { gt: card.position }, -1);
    });
  }

  /** Adds tags (trimmed, deduplicated, case kept); tags already present are left alone. */
  async addTags(cardId: string, names: readonly string[]): Promise<void> {
    const tags = normalizeTags(names);
    await this.db.write(async (tx) => {
      await findCard(tx, cardId);
      const existing = await tx.cardTag.findMany({ where: { cardId }, select: { name: true } });
      const fresh = tags.filter((name) => !existing.some((t) => t.name === name));
      if (existing.length + fresh.length > BOARD_LIMITS.tagsPerCard) {
        throw new InvalidInputError(`a card has at most ${BOARD_LIMITS.tagsPerCard} tags`, 'tags');
      }
      if (fresh.length) await tx.cardTag.createMany({ data: fresh.map((name) => ({ cardId, name })) });
      await touch(tx, cardId);
    });
  }

  async removeTags(cardId: string, names: readonly string[]): Promise<void> {
    await this.db.write(async (tx) => {
      await findCard(tx, cardId);
      await tx.cardTag.deleteMany({ where: { cardId, name: { in: names.map((n) => n.trim()) } } });
      await touch(tx, cardId);
    });
  }

  async addComment(cardId: string, author: string, body: string): Promise<string> {
    const data = {
      cardId,
      author: requireText('author', author, BOARD_LIMITS.commentAuthor),
      body: requireText('body', body, BOARD_LIMITS.commentBody),
    };
    return this.db.write(async (tx) => {
      await findCard(tx, cardId);
      const comment = await tx.comment.create({ data, select: { id: true } });
      await touch(tx, cardId);
      return comment.id;
    });
  }

  /** Deletes a comment and returns its card's id. */
  deleteComment(id: string): Promise<string> {
    return this.db.write(async (tx) => {
      const comment = await tx.comment.findUnique({ where: { id }, select: { cardId: true } });
      if (!comment) throw new NotFoundError('Comment', id);
      await tx.comment.delete({ where: { id } });
      return comment.cardId;
    });
  }

  /** Adds a reference. A CARD reference's target is the referenced card's id, which must exist. */
  async addReference(cardId: string, input: ReferenceInput): Promise<string> {
    const target = validateReferenceTarget(input.kind, input.target);
    const note = optionalText('note', input.note, BOARD_LIMITS.referenceNote);
    return this.db.write(async (tx) => {
      await findCard(tx, cardId);
      if (input.kind === 'CARD') await findCard(tx, target);
      const reference = await tx.cardReference.create({ data: { cardId, kind: input.kind, target, note }, select: { id: true } });
      await touch(tx, cardId);
      return reference.id;
    });
  }

  /** Deletes a reference and returns its card's id. */
  removeReference(id: string): Promise<string> {
    return this.db.write(async (tx) => {
      const reference = await tx.cardReference.findUnique({ where: { id }, select: { cardId: true } });
      if (!reference) throw new NotFoundError('CardReference', id);
      await tx.cardReference.delete({ where: { id } });
      return reference.cardId;
    });
  }
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
