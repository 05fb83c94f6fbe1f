/**
 * The orchestrator: everything runboard does, with no GraphQL in it. The schema layer translates
 * GraphQL into calls on this object.
 */
import { Board } from './board.js';
import type { Database } from './db.js';
import type { RepositoryInfo } from './git.js';
import { Workspaces } from './workspaces.js';

export interface OrchestratorOptions {
  db: Database;
  /** The main checkout, as `openRepository` found it at start-up. */
  repository: RepositoryInfo;
  /** Where worktrees and logs live. */
  dataDir: string;
}

export class Orchestrator {
  readonly db: Database;
  readonly board: Board;
  readonly workspaces: Workspaces;
  readonly repository: RepositoryInfo;
  readonly dataDir: string;

  constructor({ db, repository, dataDir }: OrchestratorOptions) {
    this.db = db;
    this.repository = repository;
    this.dataDir = dataDir;
    this.board = new Board(db);
    this.workspaces = new Workspaces(db, repository.root, dataDir);
  }

  /** Start-up reconciliation with what is on disk: worktrees deleted while runboard was down. */
  async start(): Promise<void> {
    await this.workspaces.reconcile();
  }

  /** Ends everything the orchestrator started (agents, playtests), then closes the database. */
  async shutdown(): Promise<void> {
    await this.db.close();
  }
}
