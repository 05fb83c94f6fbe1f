import { builder } from './builder.js';
import { recordAgentChange, requireCardAccess } from './auth.js';
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
      requireCardAccess(ctx, cardId.id);
      // An agent signs as itself, whatever name it gives, so it cannot write as a person.
      const signed = ctx.principal.kind === 'agent' ? `agent (run ${ctx.principal.runId.slice(-8)})` : author;
      const id = await ctx.orchestrator.board.addComment(cardId.id, signed, body);
      await recordAgentChange(ctx, 'addComment', { commentId: id, body: body.slice(0, 2_000) });
      return ctx.prisma.comment.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  deleteComment: t.prismaField({
    type: Card,
    description: 'Deletes a comment and returns its card.',
    args: { id: t.arg.globalID({ for: Comment, required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const cardId = await ctx.orchestrator.board.deleteComment(id.id);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: cardId } });
    },
  }),
}));
