/**
 * Liveness and readiness for supervisors and load balancers. `/healthz` answers 200 while the
 * process serves HTTP at all; `/readyz` answers 200 only when `check` says the server can do its
 * work, else 503, both with a JSON body naming what failed.
 */
import type { Plugin } from 'graphql-yoga';
import type { Readiness } from '../orchestrator/health.js';

export interface HealthOptions {
  /** Runs on every `/readyz` request; should not throw (a throw counts as not ready). */
  check: () => Promise<Readiness>;
  /** @default '/healthz' */
  healthEndpoint?: string;
  /** @default '/readyz' */
  readyEndpoint?: string;
}

export function useHealth({ check, healthEndpoint = '/healthz', readyEndpoint = '/readyz' }: HealthOptions): Plugin {
  return {
    onRequest({ url, endResponse, fetchAPI }) {
      const json = (status: number, body: unknown) =>
        new fetchAPI.Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' } });
      if (url.pathname === healthEndpoint) return endResponse(json(200, { status: 'ok' }));
      if (url.pathname !== readyEndpoint) return;
      return check().then(
        (report) => endResponse(json(report.ready ? 200 : 503, report)),
        (error: unknown) => endResponse(json(503, { ready: false, failed: ['check'], checks: { check: { ok: false, error: (error as Error).message } } })),
      );
    },
  };
}
