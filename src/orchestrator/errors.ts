/**
 * Failures of the orchestrator. Each is a plain error class that declares its `category`: whose fault
 * it is and how a caller should read it. `src/schema/errors.ts` is the one place that maps categories to
 * GraphQL `extensions.code`, with a table tsc checks for completeness. Nothing here knows about GraphQL.
 */

/**
 * What a failure means to the caller. Every category but `internal` is the caller's to fix or to read
 * (bad input, a missing thing, a refused state); `internal` is the server's own fault and is masked.
 */
export type ErrorCategory = 'invalid_input' | 'not_found' | 'conflict' | 'timeout' | 'unauthenticated' | 'forbidden' | 'subscriber_too_slow' | 'internal';

/**
 * Base class. A subclass must declare its `category` (it is abstract), so a new error class cannot reach a
 * client without a decision. Only a caller's-fault category is shown to the client verbatim.
 */
export abstract class RunboardError extends Error {
  abstract readonly category: ErrorCategory;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The input is malformed: too long, empty, out of range, or the wrong kind of id. */
export class InvalidInputError extends RunboardError {
  readonly category = 'invalid_input';
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
  readonly category = 'not_found';
  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`${kind} ${id} not found`);
  }
}

/** The request is well formed but the current state refuses it (an active run, a dirty checkout…). */
export class ConflictError extends RunboardError {
  readonly category = 'conflict';
  constructor(
    message: string,
    /** Paths involved, when the conflict is about files. */
    readonly paths: readonly string[] = [],
  ) {
    super(message);
  }
}

/** Known credentials that do not allow this: an agent reaching past its own card and run. */
export class ForbiddenError extends RunboardError {
  readonly category = 'forbidden';
}

/** Another live server holds the data dir (see data-dir-lock.ts). */
export class DataDirInUseError extends RunboardError {
  readonly category = 'conflict';
  constructor(readonly dataDir: string) {
    super(`data dir ${dataDir} is in use by another runboard server; stop it or choose another --data-dir`);
  }
}

/** A read ran out of its time budget (the server is busy); nothing was changed, and asking again later may work. */
export class ReadTimeoutError extends RunboardError {
  readonly category = 'timeout';
  constructor(
    /** What was being read, e.g. "the diff of run-branch". */
    readonly what: string,
    /** The budget it ran out of. */
    readonly budgetMs: number,
  ) {
    super(`reading ${what} took longer than ${budgetMs} ms (the server is busy reading git); nothing was changed, try again or ask for less at once`);
  }
}
