/**
 * Expected failures of the orchestrator. Each is a plain error class; `src/schema/errors.ts` is the one
 * place that maps them to GraphQL `extensions.code`. Nothing here knows about GraphQL.
 */

/** Base class: anything extending it is safe to show to a client verbatim. */
export class RunboardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The input is malformed: too long, empty, out of range, or the wrong kind of id. */
export class InvalidInputError extends RunboardError {
  constructor(
    message: string,
    /** The input field at fault, when there is one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The thing named does not exist. */
export class NotFoundError extends RunboardError {
  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`${kind} ${id} not found`);
  }
}

/** The request is well formed but the current state refuses it (an active run, a dirty checkout…). */
export class ConflictError extends RunboardError {
  constructor(
    message: string,
    /** Paths involved, when the conflict is about files. */
    readonly paths: readonly string[] = [],
  ) {
    super(message);
  }
}

/** A read ran out of its time budget (the server is busy); nothing was changed, and asking again later may work. */
export class ReadTimeoutError extends RunboardError {
  constructor(
    /** What was being read, e.g. "the diff of run-branch". */
    readonly what: string,
    /** The budget it ran out of. */
    readonly budgetMs: number,
  ) {
    super(`reading ${what} took longer than ${budgetMs} ms (the server is busy reading git); nothing was changed, try again or ask for less at once`);
  }
}
