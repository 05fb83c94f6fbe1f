/** The GraphQL schema: each module registers its types and fields on the builder. */
import { builder } from './builder.js';
import './scalars.js';
import './card.js';
import './comment.js';
import './reference.js';
import './run.js';
import './run-events.js';
import './agent.js';
import './board-events.js';
import './review.js';
import './repository.js';
import './subscriptions.js';
import './playtest.js';
import './cluster.js';

export const schema = builder.toSchema({ sortSchema: true });
export type { Context } from './context.js';
