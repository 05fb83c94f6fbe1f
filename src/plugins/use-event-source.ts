/**
 * GraphQL over SSE as a browser's EventSource expects it.
 *
 * Every message of a subscription whose payload carries a
 * `seq` (runEvents, boardEvents; the batched fields' last element) gets `id: <seq>`, so an EventSource that reconnects sends it back as
 * `Last-Event-ID` and the subscription continues after it (see `Context.lastEventId`).
 *
 * yoga's SSE writer prints each result with the result's own `stringify` when it has one; this plugin
 * gives each result one that appends the id field to the `data:` line it writes.
 *
 * An EventSource cannot set headers, so yoga's CSRF prevention (a custom header on every GET) would
 * refuse it. A GET that asks for `text/event-stream` may only subscribe (yoga runs no mutation over
 * GET), and a cross-site EventSource sends an Origin that use-request-origin refuses, so such GETs
 * are let through; every other request still needs the header.
 */
import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { useCSRFRefusal } from './use-request-origin.js';

/** The seq of a result's single root field (the last one when it is a list of events), if it has one. */
function seqOf(result: ExecutionResult): number | undefined {
  const data = result.data;
  if (!data) return undefined;
  const keys = Object.keys(data);
  if (keys.length !== 1) return undefined;
  const value: unknown = data[keys[0]!];
  const last: unknown = Array.isArray(value) ? value.at(-1) : value;
  const seq = last && typeof last === 'object' && 'seq' in last ? last.seq : undefined;
  return typeof seq === 'number' ? seq : undefined;
}

function wantsEventStream(request: Request): boolean {
  return request.headers.get('accept')?.includes('text/event-stream') ?? false;
}

/** yoga's CSRF prevention with a coded refusal (useCSRFRefusal), except for an EventSource's GET (see above). */
export function useCSRFRefusalForAllButEventSource(): Plugin {
  const csrf = useCSRFRefusal();
  return {
    onRequestParse(payload) {
      if (payload.request.method === 'GET' && wantsEventStream(payload.request)) return;
      return csrf.onRequestParse?.(payload);
    },
  };
}

/** Adds `id: <seq>` to each SSE message that has one. */
export function useSSEEventIds(): Plugin {
  return {
    onResultProcess({ request, result, setResult }) {
      if (!wantsEventStream(request)) return;
      if (!(Symbol.asyncIterator in Object(result))) return;
      const source = (result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator]();
      const withIds: AsyncIterableIterator<ExecutionResult> = {
        async next() {
          const step = await source.next();
          if (step.done) return step;
          const seq = seqOf(step.value);
          if (seq === undefined) return step;
          return { done: false, value: { ...step.value, stringify: (sanitized: unknown) => `${JSON.stringify(sanitized)}\nid: ${seq}` } as ExecutionResult };
        },
        return: async (value?: unknown) => (await source.return?.(value)) ?? { done: true, value: undefined },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
      setResult(withIds);
    },
  };
}
