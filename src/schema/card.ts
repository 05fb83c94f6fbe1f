import { encodeGlobalID } from '@pothos/plugin-relay';
import { AGENT_PROMPT_SELECT, PROMPT_COMMENT_LIMIT, renderCardPrompt } from '../orchestrator/prompt.js';
import { builder } from './builder.js';
import { orNotFound } from './errors.js';

export const CardColumnEnum = builder.enumType('CardColumn', {
  description: 'The board columns, in board order.',
  values: ['BACKLOG', 'TODO', 'IN_PROGRESS', 'REVIEW', 'DONE'] as const,
});

export const Card = builder.prismaNode('Card', {
  id: { field: 'id' },
  nullable: true, // node(id) answers null for an unknown id, as Relay expects
  description: 'A unit of work on the board. Agents work cards in runs.',
  fields: (t) => ({
    title: t.exposeString('title'),
    description: t.exposeString('description'),
    column: t.expose('column', { type: CardColumnEnum }),
    position: t.exposeInt('position', { description: '0-based order within the column.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    tags: t.stringList({
      select: { tags: { select: { name: true }, orderBy: { name: 'asc' } } },
      resolve: (card) => card.tags.map((tag) => tag.name),
    }),
    references: t.relation('references', { query: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] } }),
    comments: t.relatedConnection('comments', { cursor: 'id', totalCount: true, query: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] } }),
    runs: t.relatedConnection('runs', { cursor: 'id', totalCount: true, query: { orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] } }),
    agentPrompt: t.string({
      description: `The card rendered as the text an agent receives: title, description, tags, references and the newest ${PROMPT_COMMENT_LIMIT} comments. Runs use it as their default prompt.`,
      select: AGENT_PROMPT_SELECT,
      resolve: (card) => renderCardPrompt(card),
    }),
  }),
});

builder.queryFields((t) => ({
  card: t.prismaField({
    type: Card,
    description: 'One card. Unknown ids are NOT_FOUND.',
    args: { id: t.arg.globalID({ for: Card, required: true }) },
    resolve: (query, _root, { id }, ctx) => orNotFound('Card', id.id, ctx.prisma.card.findUnique({ ...query, where: { id: id.id } })),
  }),
  cards: t.prismaConnection({
    type: Card,
    cursor: 'id',
    description: 'Cards in board order: by column (BACKLOG, TODO, IN_PROGRESS, REVIEW, DONE), then by position. Filter by column and tag.',
    args: {
      column: t.arg({ type: CardColumnEnum }),
      tag: t.arg.string(),
    },
    resolve: (query, _root, { column, tag }, ctx) =>
      ctx.prisma.card.findMany({
        ...query,
        where: { column: column ?? undefined, tags: tag ? { some: { name: tag } } : undefined },
        orderBy: [{ columnOrder: 'asc' }, { position: 'asc' }, { id: 'asc' }],
      }),
  }),
}));

const CreateCardInput = builder.inputType('CreateCardInput', {
  fields: (t) => ({
    title: t.string({ required: true }),
    description: t.string(),
    column: t.field({ type: CardColumnEnum, description: 'Defaults to BACKLOG.' }),
    position: t.int({ description: '0-based position in the column; defaults to the end. Larger values mean the end.' }),
    tags: t.stringList(),
  }),
});

const UpdateCardInput = builder.inputType('UpdateCardInput', {
  fields: (t) => ({
    title: t.string(),
    description: t.string(),
  }),
});

builder.mutationFields((t) => ({
  createCard: t.prismaField({
    type: Card,
    args: { input: t.arg({ type: CreateCardInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const id = await ctx.orchestrator.board.createCard(ctx.principal, input);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  updateCard: t.prismaField({
    type: Card,
    args: { id: t.arg.globalID({ for: Card, required: true }), input: t.arg({ type: UpdateCardInput, required: true }) },
    resolve: async (query, _root, { id, input }, ctx) => {
      await ctx.orchestrator.board.updateCard(ctx.principal, id.id, input);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: id.id } });
    },
  }),
  moveCard: t.prismaField({
    type: Card,
    description: 'Moves a card to a column and position (default: the end), renumbering the cards around it.',
    args: {
      id: t.arg.globalID({ for: Card, required: true }),
      column: t.arg({ type: CardColumnEnum, required: true }),
      position: t.arg.int(),
    },
    resolve: async (query, _root, { id, column, position }, ctx) => {
      await ctx.orchestrator.board.moveCard(ctx.principal, id.id, column, position);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: id.id } });
    },
  }),
  deleteCard: t.field({
    type: 'ID',
    description: 'Deletes a card with its comments, references and settled runs; CONFLICT while a run is active. Returns the deleted card\'s id.',
    args: { id: t.arg.globalID({ for: Card, required: true }) },
    resolve: async (_root, { id }, ctx) => {
      await ctx.orchestrator.deleteCard(ctx.principal, id.id);
      return encodeGlobalID('Card', id.id);
    },
  }),
  addCardTags: t.prismaField({
    type: Card,
    args: { id: t.arg.globalID({ for: Card, required: true }), tags: t.arg.stringList({ required: true }) },
    resolve: async (query, _root, { id, tags }, ctx) => {
      await ctx.orchestrator.board.addTags(ctx.principal, id.id, tags);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: id.id } });
    },
  }),
  removeCardTags: t.prismaField({
    type: Card,
    args: { id: t.arg.globalID({ for: Card, required: true }), tags: t.arg.stringList({ required: true }) },
    resolve: async (query, _root, { id, tags }, ctx) => {
      await ctx.orchestrator.board.removeTags(ctx.principal, id.id, tags);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: id.id } });
    },
  }),
}));
