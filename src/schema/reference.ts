import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { InvalidInputError } from '../orchestrator/errors.js';
import { builder } from './builder.js';
import { Card } from './card.js';

export const ReferenceKindEnum = builder.enumType('ReferenceKind', {
  values: {
    FILE: { description: 'A path in the repository, relative to its root.' },
    URL: { description: 'An http(s) link.' },
    CARD: { description: 'Another card, by its global id.' },
    NOTE: { description: 'Free text.' },
  },
});

export const CardReference = builder.prismaNode('CardReference', {
  id: { field: 'id' },
  nullable: true, // node(id) answers null for an unknown id, as Relay expects
  description: 'Something a card points at: a file, a link, another card or a note.',
  fields: (t) => ({
    kind: t.expose('kind', { type: ReferenceKindEnum }),
    target: t.string({
      description: 'The path, URL, note text, or for CARD the referenced card\'s global id.',
      select: { kind: true, target: true },
      resolve: (ref) => (ref.kind === 'CARD' ? encodeGlobalID('Card', ref.target) : ref.target),
    }),
    note: t.exposeString('note'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    card: t.relation('card'),
  }),
});

const ReferenceInput = builder.inputType('ReferenceInput', {
  fields: (t) => ({
    kind: t.field({ type: ReferenceKindEnum, required: true }),
    target: t.string({ required: true, description: 'For CARD, the referenced card\'s global id.' }),
    note: t.string(),
  }),
});

builder.mutationFields((t) => ({
  addCardReference: t.prismaField({
    type: CardReference,
    args: { cardId: t.arg.globalID({ for: Card, required: true }), input: t.arg({ type: ReferenceInput, required: true }) },
    resolve: async (query, _root, { cardId, input }, ctx) => {
      const target = input.kind === 'CARD' ? cardIdOf(input.target) : input.target;
      const id = await ctx.orchestrator.board.addReference(ctx.principal, cardId.id, { ...input, target });
      return ctx.prisma.cardReference.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  removeCardReference: t.prismaField({
    type: Card,
    description: 'Deletes a reference and returns its card.',
    args: { id: t.arg.globalID({ for: CardReference, required: true }) },
    resolve: async (query, _root, { id }, ctx) => {
      const cardId = await ctx.orchestrator.board.removeReference(ctx.principal, id.id);
      return ctx.prisma.card.findUniqueOrThrow({ ...query, where: { id: cardId } });
    },
  }),
}));

/** A CARD reference names its target by global id, like every other id in the API. */
function cardIdOf(globalId: string): string {
  let decoded: { typename: string; id: string } | undefined;
  try {
    decoded = decodeGlobalID(globalId);
  } catch {
    // reported below
  }
  if (decoded?.typename !== 'Card') throw new InvalidInputError('a CARD reference\'s target must be a Card id', 'target');
  return decoded.id;
}
