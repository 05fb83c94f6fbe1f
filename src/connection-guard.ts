/**
 * Bounds on the sockets under Node's HTTP server, which GraphQL never sees:
 * - at most `maxConnections` open at once, so idle sockets cannot use up the process's file
 *   descriptors. Over the cap, the oldest idle socket (no request in flight, not a WebSocket)
 *   makes room for the new one, so a flood of idle sockets cannot lock `/healthz` or the API out;
 *   only when every socket is busy is the newcomer refused;
 * - a socket that has bytes waiting to be sent, none of which leave for `stallTimeoutMs`, belongs
 *   to a client that stopped reading (an SSE or WebSocket subscriber that never reads): it is
 *   destroyed, which ends its subscription and frees what it held.
 * Refusals are logged as one summary line per `logIntervalMs`, so a flood cannot flood the log.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from './log.js';

export interface ConnectionGuardOptions {
  /** Open sockets at most, WebSockets and streams included. Keep it well below `ulimit -n`. @default 512 */
  maxConnections?: number;
  /** How long pending bytes may go without any being flushed before the socket is destroyed. @default 30_000 // ms */
  stallTimeoutMs?: number;
  /** How often sockets are checked for a stall. @default 1_000 // ms */
  checkIntervalMs?: number;
  /** At most one summary line of evictions, refusals and stalls per interval. @default 10_000 // ms */
  logIntervalMs?: number;
  logger: Logger;
}

/** What the guard is tracking; `dispose` stops its timer. */
export interface ConnectionGuard {
  /** Sockets open now. */
  readonly open: number;
  dispose(): void;
}

interface SocketState {
  /** Requests in flight; a WebSocket counts as busy for good. */
  busy: number;
  /** Bytes flushed at the last check, to see progress while bytes are pending. */
  flushed: number;
  /** When pending bytes last stopped moving, or undefined when nothing is pending. */
  stalledSince: number | undefined;
}

/** Applies the bounds above to `server`'s sockets. */
export function guardConnections(server: Server, { maxConnections = 512, stallTimeoutMs = 30_000, checkIntervalMs = 1_000, logIntervalMs = 10_000, logger }: ConnectionGuardOptions): ConnectionGuard {
  const sockets = new Map<Socket, SocketState>(); // insertion order: oldest first
  const counts = { evicted: 0, refused: 0, stalled: 0 };
  let lastLog = 0;

  const report = (now: number) => {
    if (counts.evicted + counts.refused + counts.stalled === 0 || now - lastLog < logIntervalMs) return;
    logger.warn({ ...counts, open: sockets.size, maxConnections }, `connections: ${counts.evicted} idle evicted and ${counts.refused} refused at the cap of ${maxConnections}, ${counts.stalled} ended for not reading`);
    counts.evicted = counts.refused = counts.stalled = 0;
    lastLog = now;
  };

  server.on('connection', (socket: Socket) => {
    if (sockets.size >= maxConnections) {
      const idle = oldestIdle();
      if (idle) {
        counts.evicted++;
        forget(idle);
        idle.destroy();
      } else {
        counts.refused++;
        socket.destroy();
        report(Date.now());
        return;
      }
    }
    sockets.set(socket, { busy: 0, flushed: 0, stalledSince: undefined });
    socket.once('close', () => forget(socket));
  });
  const forget = (socket: Socket) => sockets.delete(socket);
  // Under a flood the oldest sockets are the idle ones, so this usually stops at the first.
  const oldestIdle = (): Socket | undefined => {
    for (const [socket, state] of sockets) if (state.busy === 0) return socket;
    return undefined;
  };

  server.on('request', (req, res) => {
    const state = sockets.get(req.socket);
    if (!state) return;
    state.busy++;
    res.once('close', () => state.busy--);
  });
  server.on('upgrade', (req) => {
    const state = sockets.get(req.socket);
    if (state) state.busy = Infinity;
  });

  const timer = setInterval(() => {
    const now = Date.now();
    for (const [socket, state] of sockets) {
      const pending = socket.writableLength;
      if (pending === 0) {
        state.stalledSince = undefined;
        continue;
      }
      // bytesWritten counts what is still buffered too; the difference is what has left.
      const flushed = socket.bytesWritten - pending;
      if (state.stalledSince === undefined || flushed !== state.flushed) {
        state.flushed = flushed;
        state.stalledSince = now;
      } else if (now - state.stalledSince >= stallTimeoutMs) {
        counts.stalled++;
        forget(socket);
        socket.destroy();
      }
    }
    report(now);
  }, checkIntervalMs);
  timer.unref();

  return {
    get open() {
      return sockets.size;
    },
    dispose: () => clearInterval(timer),
  };
}
