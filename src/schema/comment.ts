import { builder } from './builder.js';
import { Card } from './card.js';

export const Comment = builder.prismaNode('Comment', {
  id: { field: 'id' },
  nullable: true, // node(id) answers null for an unknown id, as Relay expects
  fields: (t) => ({
    author: t.exposeString('author'),
    body: t.exposeString('body'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    card: t.relation('card'),
  }),
});

builder.mutationFields((t) => ({
  addComment: t.prismaField({
    type: Comment,
    args: {
      cardId: t.arg.globalID({ for: Card, required: true }),
      author: t.arg.string({ required: true }),
      body: t.arg.string({ required: true }),
    },
    resolve: async (query, _root, { cardId, author, body }, ctx) => {
      const id = await ctx.orchestrator.board.addComment(ctx.principal, cardId.id, author, body);
      return ctx.prisma.comment.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  deleteComment: t.prismaField({
    type: Card,
    description: 'Deletes a comment and returns its card.',
    args: { id: t.arg.globalID({ for: Comment, required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const cardId = await ctx.orchestrator.board.deleteComment(ctx.principal, id.id);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: cardId } });
    },
  }),
}));
