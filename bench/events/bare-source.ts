/**
 * The baseline of `npm run bench:events`, run as its own process: a bare `ws` broadcaster that
 * speaks just enough graphql-transport-ws (ack, subscribe, next, complete, pong) for the same
 * subscriber processes, and sends them byte-identical `next` messages with no GraphQL execution and
 * no persistence. Answers the conductor's requests over IPC (shared.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { serve, TEXT, writePaced, type WriteLoad } from './shared.js';

/** One subscription: its socket and the id its client gave it. */
interface Subscriber {
  readonly socket: WebSocket;
  readonly id: string;
}

const http = createServer();
const wss = new WebSocketServer({ server: http, handleProtocols: () => 'graphql-transport-ws' });
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/graphql`;
/** Live runs by id (the id subscribers send), with their subscribers. */
let live = new Map<string, Subscriber[]>();
let runIds: string[] = [];
/** Settled histories by id: how many texts each replays. */
const histories = new Map<string, number>();
let subscribed = 0;

/** What graphql-ws sends for one event: the same bytes runboard sends for FOLLOW_QUERY. */
function next(id: string, event: string): string {
  return `{"id":${JSON.stringify(id)},"type":"next","payload":{"data":{"runEvents":${event}}}}`;
}
const complete = (id: string) => `{"id":${JSON.stringify(id)},"type":"complete"}`;

/** Sends a whole history as one message per event, then completes, as runboard's replay does. */
async function replay(subscriber: Subscriber, count: number): Promise<void> {
  const text = JSON.stringify(TEXT);
  for (let seq = 1; seq <= count; seq++) {
    subscriber.socket.send(next(subscriber.id, `{"seq":${seq},"text":${text}}`));
    // Yield to the socket now and then, as a server must; otherwise all of it is buffered at once.
    if (seq % 1_000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  subscriber.socket.send(next(subscriber.id, `{"seq":${count + 1}}`));
  subscriber.socket.send(complete(subscriber.id));
}

wss.on('connection', (socket) => {
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { type: string; id?: string; payload?: { variables?: { id?: string } } };
    switch (message.type) {
      case 'connection_init':
        return socket.send('{"type":"connection_ack"}');
      case 'ping':
        return socket.send('{"type":"pong"}');
      case 'subscribe': {
        const subscriber = { socket, id: message.id! };
        const runId = message.payload?.variables?.id ?? '';
        const history = histories.get(runId);
        if (history !== undefined) return void replay(subscriber, history);
        live.get(runId)?.push(subscriber);
        subscribed++;
        return;
      }
      case 'complete':
        return;
      default:
        socket.close(4400, `unknown message type ${message.type}`);
    }
  });
});

/** Sends one event to every subscriber of a run, in the same tick, as a broadcaster would. */
function broadcast(run: number, event: string, last: boolean): Promise<void> {
  for (const subscriber of live.get(runIds[run])!) {
    subscriber.socket.send(next(subscriber.id, event));
    if (last) subscriber.socket.send(complete(subscriber.id));
  }
  // Accepted, as an append is, once the tick is over.
  return new Promise((resolve) => setImmediate(resolve));
}

serve(
  {
    url: () => url,
    createRuns: (count: number) => {
      runIds = Array.from({ length: count }, (_, i) => `bare-${Date.now()}-${i}`);
      live = new Map(runIds.map((id) => [id, []]));
      subscribed = 0;
      return runIds;
    },
    /** Subscriptions to the current load's runs so far. */
    subscribed: () => subscribed,
    write: (load: WriteLoad) => {
      const seqs = runIds.map(() => 0);
      return writePaced(
        runIds.length,
        load,
        (run, text) => broadcast(run, `{"seq":${++seqs[run]},"text":${JSON.stringify(text)}}`, false),
        (run) => broadcast(run, `{"seq":${++seqs[run]}}`, true),
      );
    },
    history: (count: number) => {
      const id = `bare-history-${histories.size}`;
      histories.set(id, count);
      return id;
    },
  },
  async () => {
    for (const socket of wss.clients) socket.terminate();
    wss.close();
    http.close();
  },
);
