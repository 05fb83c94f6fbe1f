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

/** A request to another process (a run's owner, say) got no answer in time; it may or may not have been carried out. */
export class TimeoutError extends RunboardError {
  readonly category = 'timeout';
}

/**
 * An error as it crosses a process boundary (run control between nodes): its category and message, and
 * the fields of the classes that carry any, so the receiver re-creates the same class (`fromWireError`).
 */
export interface WireError {
  category: ErrorCategory;
  message: string;
  /** InvalidInputError's field. */
  field?: string;
  /** NotFoundError's kind and id. */
  kind?: string;
  id?: string;
  /** ConflictError's paths. */
  paths?: string[];
}

/** An error of a category whose class this module does not know (it lives elsewhere), re-created from the wire. */
class RemoteError extends RunboardError {
  constructor(
    readonly category: ErrorCategory,
    message: string,
  ) {
    super(message);
  }
}

/** How each category is re-created: tsc checks that every category has one. */
const REVIVERS: { readonly [C in ErrorCategory]: (wire: WireError) => RunboardError } = {
  invalid_input: (wire) => new InvalidInputError(wire.message, wire.field),
  not_found: (wire) => (wire.kind !== undefined && wire.id !== undefined ? new NotFoundError(wire.kind, wire.id) : new RemoteError('not_found', wire.message)),
  conflict: (wire) => new ConflictError(wire.message, wire.paths ?? []),
  timeout: (wire) => new TimeoutError(wire.message),
  unauthenticated: (wire) => new RemoteError('unauthenticated', wire.message),
  forbidden: (wire) => new ForbiddenError(wire.message),
  subscriber_too_slow: (wire) => new RemoteError('subscriber_too_slow', wire.message),
  // Still the server's own fault on the receiving side, so still masked there.
  internal: (wire) => new RemoteError('internal', wire.message),
};

/** `error` as it crosses to another process: anything but a RunboardError is the server's own fault (`internal`). */
export function toWireError(error: unknown): WireError {
  if (!(error instanceof RunboardError)) return { category: 'internal', message: error instanceof Error ? error.message : String(error) };
  const wire: WireError = { category: error.category, message: error.message };
  if (error instanceof InvalidInputError && error.field !== undefined) wire.field = error.field;
  if (error instanceof NotFoundError) Object.assign(wire, { kind: error.kind, id: error.id });
  if (error instanceof ConflictError && error.paths.length) wire.paths = [...error.paths];
  return wire;
}

/** The error `toWireError` described, as the same class when this module has it, with the same category and message. */
export function fromWireError(wire: WireError): RunboardError {
  const revive = Object.hasOwn(REVIVERS, wire.category) ? REVIVERS[wire.category] : REVIVERS.internal;
  const error = revive(wire);
  error.message = String(wire.message); // a class that builds its message (NotFoundError) still says what the sender said
  return error;
}
