/**
 * The only module in runboard that runs git.
 *
 * Every call goes through `runGit`: an argument array (never a shell string), a timeout, no stdin,
 * a fixed C locale and no pager, and machine output (`-z`, `--porcelain`) only. Caller text never
 * becomes a flag: refs are validated and resolved to a sha first, and paths follow `--`. No
 * program the repository's `.git` names runs (hooks, fsmonitor, filters, drivers: see below).
 * Operations that change one checkout (the main one or a run's worktree) are serialized per path;
 * review reads take no lock and run in a pool of their own, within a time budget.
 * Nothing here knows about GraphQL or the database: these are functions over paths.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ConflictError, InvalidInputError, NotFoundError, ReadTimeoutError, RunboardError } from './errors.js';
import { KeyedMutex, Semaphore } from './lock.js';

/** How long one git command may run before it is killed. @default 30_000 // ms */
export const GIT_TIMEOUT_MS = 30_000;
/** Patch size returned when a request does not name one. @default 1_048_576 // bytes (1 MiB) */
export const DEFAULT_PATCH_BYTES = 1024 * 1024;
/** Largest patch a request may ask for; larger requests are refused. 16_777_216 // bytes (16 MiB) */
export const MAX_PATCH_BYTES = 16 * 1024 * 1024;
/** Paths listed per status category, and untracked files listed by `uncommittedChanges`; counts cover the rest. @default 200 */
export const MAX_LISTED_PATHS = 200;
/** Commits returned by `commitsAhead` unless a smaller `limit` is given. @default 500 */
export const MAX_COMMITS = 500;

/** Output of a buffered (non-patch) git command beyond this fails the command. 64 MiB // bytes */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Untracked files larger than this are listed without a line count. 1 MiB // bytes */
const UNTRACKED_COUNT_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Running git

/** What went wrong in a failed git command, read once from its output by `classifyFailure`. */
export type GitErrorKind = 'NOT_A_REPOSITORY' | 'CONFLICT' | 'DIRTY' | 'BAD_REVISION' | 'NOT_ON_REMOTE' | 'LOCKED' | 'TIMEOUT' | 'UNKNOWN';

/** A git command failed in a way the caller did not expect. `kind` says how. */
export class GitError extends RunboardError {
  /** A git failure is the server's: its message may hold paths and git's own words, so it is masked. */
  readonly category = 'internal';
  constructor(
    message: string,
    readonly kind: GitErrorKind,
    /** git's exit code; null when it was killed or never started. */
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function classifyFailure(output: string, timedOut: boolean): GitErrorKind {
  if (timedOut) return 'TIMEOUT';
  if (/not a git repository/i.test(output)) return 'NOT_A_REPOSITORY';
  if (/couldn't find remote ref/i.test(output)) return 'NOT_ON_REMOTE';
  // Another git process holds a lock: "Unable to create '…/index.lock': File exists", "cannot lock ref".
  if (/\.lock'?: File exists|cannot lock ref|Another git process seems to be running/i.test(output)) return 'LOCKED';
  if (/^CONFLICT \(|Automatic merge failed|unmerged files|resolve your current index/im.test(output)) return 'CONFLICT';
  if (/would be overwritten|uncommitted changes|Your local changes|untracked working tree files/i.test(output)) return 'DIRTY';
  if (/unknown revision|bad revision|Needed a single revision|not a valid object name|invalid reference/i.test(output)) {
    return 'BAD_REVISION';
  }
  return 'UNKNOWN';
}

interface GitOptions {
  /** Directory git runs in: the main checkout or a run's worktree. */
  cwd: string;
  /** The command may write; read-only commands run with GIT_OPTIONAL_LOCKS=0. @default false */
  writes?: boolean;
  /**
   * The command reads and writes only objects and refs, never working-tree files, so no
   * attribute-selected program (filter, merge driver) can run, and the scan of the repository's
   * config that `repositoryConfigGuard` does is skipped. @default false
   */
  objectsOnly?: boolean;
  /** Exit codes that are answers rather than failures (1 from `merge-base --is-ancestor`). */
  okExitCodes?: readonly number[];
  /** Extra settings, as `-c key=value` would give them. */
  config?: Readonly<Record<string, string>>;
  /** Stream stdout and kill git once more than this many bytes have arrived. */
  stdoutLimit?: number;
}

interface GitResult {
  stdout: string;
  exitCode: number;
  /** Only with `stdoutLimit`: output was cut. */
  truncated: boolean;
}

/** Variables that would point git at some other repository (set, e.g., when we run inside a hook). */
const REPOSITORY_VARIABLES = [
  'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR', 'GIT_NAMESPACE', 'GIT_PREFIX',
];

/**
 * git's environment: settings go in GIT_CONFIG_COUNT/KEY/VALUE rather than `-c key=value`, which
 * would misread a key whose subsection holds "=" (a filter named by the repository, say).
 */
function gitEnvironment(writes: boolean, settings: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of REPOSITORY_VARIABLES) delete env[name];
  for (const name of Object.keys(env)) if (/^GIT_CONFIG_(PARAMETERS|COUNT|KEY_\d+|VALUE_\d+)$/.test(name)) delete env[name];
  delete env.GIT_EXTERNAL_DIFF;
  const entries = Object.entries(settings);
  entries.forEach(([key, value], i) => Object.assign(env, { [`GIT_CONFIG_KEY_${i}`]: key, [`GIT_CONFIG_VALUE_${i}`]: value }));
  env.GIT_CONFIG_COUNT = String(entries.length);
  Object.assign(env, {
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    GIT_EDITOR: ':',
    LC_ALL: 'C',
    LANG: 'C',
    // A path that starts with ':' or holds '*' is a file name, never pathspec magic.
    GIT_LITERAL_PATHSPECS: '1',
  });
  if (!writes) env.GIT_OPTIONAL_LOCKS = '0';
  return env;
}

// ---------------------------------------------------------------------------------------------
// Not running the repository's programs
//
// A run's agent shares the repository's `.git` with the main checkout: it can write `.git/config`
// (and files it includes), `.git/hooks` and `.git/info/attributes`. So runboard's own git commands
// must not run programs named there. Hooks and fsmonitor are turned off outright; every other key
// that names a program is taken from the user's own (global or system) config when it sets one,
// and otherwise made inert. Diffs also pass --no-ext-diff and --no-textconv. The agent runs as the
// same OS user, so this does not stop it from editing the user's global config: README's
// Security section says how to get a hard boundary.

/** Settings on every command: no hooks, no fsmonitor, no signing (gpg.program), no background gc, no submodule recursion. */
const FIXED_CONFIG: Readonly<Record<string, string>> = {
  'core.hooksPath': '/dev/null',
  'core.fsmonitor': 'false',
  'commit.gpgSign': 'false',
  'tag.gpgSign': 'false',
  'log.showSignature': 'false',
  'merge.verifySignatures': 'false',
  'gc.auto': '0',
  'maintenance.auto': 'false',
  'submodule.recurse': 'false',
};

/** Keys (as `git config --list` spells them: section and name lowercased) whose value is a program git may run. */
const PROGRAM_KEYS: readonly RegExp[] = [
  /^filter\..+\.(clean|smudge|process)$/,
  /^merge\..+\.driver$/,
  /^diff\..+\.(command|textconv)$/,
  /^diff\.external$/,
  /^core\.(pager|editor|sshcommand|gitproxy|askpass|alternaterefscommand)$/,
  /^sequence\.editor$/,
  /^pager\..+$/,
  /^gpg\.(.+\.)?program$/,
  /^credential\.(.+\.)?helper$/,
  /^uploadpack\.packobjectshook$/,
  /^remote\..+\.(uploadpack|receivepack)$/,
];

/**
 * What a repository-defined program key becomes when the user's own config does not set it. A
 * merge driver becomes git's own three-way text merge (so a file still merges, or conflicts, as
 * without the driver); everything else becomes empty, which git treats as "no program".
 */
function inertValue(key: string): string {
  return /^merge\..+\.driver$/.test(key) ? 'git merge-file --marker-size=%L %A %O %B' : '';
}

/**
 * Settings that replace every program-naming key the repository's own config (`local` and
 * `worktree` scopes, with whatever they include) sets. Read right before each command that may
 * touch working-tree files, so a key added since the last command is covered too.
 */
async function repositoryConfigGuard(cwd: string, timeoutMs: number): Promise<Record<string, string>> {
  const { stdout } = await runGitNow(['config', '--list', '--show-scope', '-z'], { cwd, objectsOnly: true }, timeoutMs);
  const fields = stdout.split('\0');
  const userValues = new Map<string, string>();
  const repositoryKeys = new Set<string>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const scope = fields[i];
    const entry = fields[i + 1];
    const newline = entry.indexOf('\n');
    const key = newline < 0 ? entry : entry.slice(0, newline);
    if (!PROGRAM_KEYS.some((pattern) => pattern.test(key))) continue;
    if (scope === 'local' || scope === 'worktree') repositoryKeys.add(key);
    else if (scope === 'global' || scope === 'system') userValues.set(key, newline < 0 ? '' : entry.slice(newline + 1));
  }
  const guard: Record<string, string> = {};
  for (const key of repositoryKeys) {
    guard[key] = userValues.get(key) ?? inertValue(key);
    // A blanked filter must not fail the files it was "required" for.
    const filter = /^(filter\..+)\.(clean|smudge|process)$/.exec(key);
    if (filter && !userValues.has(key)) guard[`${filter[1]}.required`] = 'false';
  }
  return guard;
}

// ---------------------------------------------------------------------------------------------
// Pools and read budgets
//
// Control work (creating and removing worktrees, merging) and review reads (diffs, commits, status)
// queue for git in separate pools, so a flood of reads never delays a startRun or a merge; and
// reads never take the per-checkout locks, which only writers need. A review read runs within a
// time budget that covers its wait for the pool too, and ends in ReadTimeoutError when spent.

/** Git processes control work runs at once. @default 8 */
export const MAX_CONCURRENT_GIT = 8;
/** Git processes review reads run at once, all requests together. @default 4 */
export const MAX_CONCURRENT_READS = 4;
/** Time one review read (a diff, a commit list, a status) may take, waiting included. @default 10_000 // ms */
export const READ_BUDGET_MS = 10_000;

const controlPool = new Semaphore(MAX_CONCURRENT_GIT);
const readPool = new Semaphore(MAX_CONCURRENT_READS);
const readBudget = new AsyncLocalStorage<{ what: string; deadline: number; budgetMs: number }>();

/**
 * Runs `read` as one review read of `what`: its git commands use the read pool and share one time
 * budget. Nested calls keep the outer budget. @default budgetMs READ_BUDGET_MS
 */
export function reviewRead<T>(what: string, read: () => Promise<T>, budgetMs = READ_BUDGET_MS): Promise<T> {
  if (readBudget.getStore()) return read();
  return readBudget.run({ what, deadline: Date.now() + budgetMs, budgetMs }, read);
}

async function runGit(args: readonly string[], opts: GitOptions): Promise<GitResult> {
  const budget = readBudget.getStore();
  const remaining = () => (budget ? budget.deadline - Date.now() : GIT_TIMEOUT_MS);
  const release = budget ? await readPool.acquireWithin(remaining()) : await controlPool.acquire();
  if (!release) throw new ReadTimeoutError(budget!.what, budget!.budgetMs);
  try {
    const timeoutMs = Math.min(GIT_TIMEOUT_MS, remaining());
    if (timeoutMs <= 0) throw new ReadTimeoutError(budget!.what, budget!.budgetMs);
    const guard = opts.objectsOnly ? {} : await repositoryConfigGuard(opts.cwd, timeoutMs);
    return await runGitNow(args, { ...opts, config: { ...guard, ...opts.config } }, Math.min(GIT_TIMEOUT_MS, remaining()));
  } catch (error) {
    if (budget && error instanceof GitError && error.kind === 'TIMEOUT' && remaining() <= 0) {
      throw new ReadTimeoutError(budget.what, budget.budgetMs);
    }
    throw error;
  } finally {
    release();
  }
}

async function runGitNow(args: readonly string[], opts: GitOptions, timeoutMs: number): Promise<GitResult> {
  const settings = { 'core.quotepath': 'off', ...opts.config, ...FIXED_CONFIG };
  const limit = opts.stdoutLimit;
  const subprocess = execa('git', ['--no-pager', ...args], {
    cwd: opts.cwd,
    env: gitEnvironment(opts.writes ?? false, settings),
    extendEnv: false,
    stdin: 'ignore',
    timeout: Math.max(1, timeoutMs),
    reject: false,
    stripFinalNewline: false,
    maxBuffer: MAX_OUTPUT_BYTES,
    buffer: limit === undefined ? true : { stdout: false },
  });
  const streamed = limit === undefined ? undefined : await readCapped(subprocess, limit);
  const result = await subprocess;
  const exitCode = typeof result.exitCode === 'number' ? result.exitCode : null;
  const stdout = streamed?.text ?? String(result.stdout ?? '');
  // Killing git ourselves once we had enough is not a failure.
  if (streamed?.truncated) return { stdout, exitCode: 0, truncated: true };
  if (exitCode === 0 || (exitCode !== null && opts.okExitCodes?.includes(exitCode))) {
    return { stdout, exitCode, truncated: false };
  }
  const stderr = String(result.stderr ?? '');
  if (exitCode === null && !result.timedOut && !(await isDirectory(opts.cwd))) {
    throw new NotFoundError('directory', opts.cwd);
  }
  const kind = classifyFailure(`${stderr}\n${stdout}`, result.timedOut);
  const detail = kind === 'TIMEOUT' ? `timed out after ${timeoutMs} ms` : firstLine(stderr) || result.shortMessage;
  throw new GitError(`git ${args[0]} failed: ${detail}`, kind, exitCode, stderr);
}

/** Reads stdout as it arrives and stops git once more than `limit` bytes came; never holds more. */
async function readCapped(subprocess: ReturnType<typeof execa>, limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of subprocess.stdout!) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    chunks.push(bytes);
    size += bytes.length;
    if (size > limit) {
      over = true;
      subprocess.kill();
      break;
    }
  }
  const capped = capUtf8(Buffer.concat(chunks), limit);
  return { text: capped.text, truncated: over || capped.truncated };
}

/**
 * Decodes `bytes` and keeps at most `limit` bytes of the UTF-8 result, cutting after the last whole
 * line if there is one and never inside a character. Invalid input bytes become U+FFFD (3 bytes),
 * so the limit is applied to the re-encoded text, not to git's bytes.
 */
function capUtf8(bytes: Buffer, limit: number): { text: string; truncated: boolean } {
  const text = bytes.toString('utf8');
  const encoded = Buffer.from(text, 'utf8');
  if (encoded.length <= limit) return { text, truncated: false };
  let end = limit;
  while (end > 0 && (encoded[end] & 0xc0) === 0x80) end--; // step back over continuation bytes
  const lastNewline = encoded.lastIndexOf(0x0a, end - 1);
  if (lastNewline >= 0) end = lastNewline + 1;
  return { text: encoded.subarray(0, end).toString('utf8'), truncated: true };
}

// ---------------------------------------------------------------------------------------------
// Serializing work on one checkout

const checkoutLocks = new KeyedMutex();

/** Runs `work` holding the locks of all `paths`, taken in sorted order so two callers cannot deadlock. */
function withLocks<T>(paths: readonly string[], work: () => Promise<T>): Promise<T> {
  const keys = [...new Set(paths.map((p) => path.resolve(p)))].sort();
  const run = (i: number): Promise<T> => (i === keys.length ? work() : checkoutLocks.run(keys[i], () => run(i + 1)));
  return run(0);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const firstLine = (text: string) => text.trim().split('\n')[0]?.replace(/^(fatal|error): /, '') ?? '';
const splitNul = (text: string) => text.split('\0').filter((field) => field !== '');
const unique = (items: readonly string[]) => [...new Set(items)];

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), () => false);
}

async function pathExists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** The real path of `p`, or of its parent plus its name when `p` itself is gone. */
async function canonicalPath(p: string): Promise<string> {
  const absolute = path.resolve(p);
  try {
    return await fs.realpath(absolute);
  } catch {
    return fs.realpath(path.dirname(absolute)).then((dir) => path.join(dir, path.basename(absolute)), () => absolute);
  }
}

/** Rejects text that could be read as an option or is not a plausible ref name. */
function checkRefText(value: string, field: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 255) {
    throw new InvalidInputError(`${field} must be 1 to 255 characters`, field);
  }
  if (value.startsWith('-') || value.includes('..') || /[\x00-\x20\x7f]/.test(value)) {
    throw new InvalidInputError(`${field} "${value}" is not a valid git ref`, field);
  }
}

/** Resolves a local branch (`refs/heads/…`), a branch as last fetched from the remote (`tracking`), or, for `base`, any revision, to a commit sha. */
async function resolveCommit(cwd: string, name: string, kind: 'branch' | 'tracking' | 'base'): Promise<string> {
  checkRefText(name, kind === 'tracking' ? 'branch' : kind);
  const ref = kind === 'branch' ? `refs/heads/${name}` : kind === 'tracking' ? trackingRef(name) : name;
  const { stdout, exitCode } = await runGit(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
    cwd,
    objectsOnly: true,
    okExitCodes: [1],
  });
  if (exitCode !== 0) throw new NotFoundError(kind === 'base' ? 'revision' : 'branch', name);
  return stdout.trim();
}

/** The sha a local branch points at, or null when there is no such branch. */
export async function branchSha(repoRoot: string, branch: string): Promise<string | null> {
  return resolveCommit(repoRoot, branch, 'branch').catch((error) => {
    if (error instanceof NotFoundError) return null;
    throw error;
  });
}

async function isAncestor(cwd: string, ancestor: string, descendant: string): Promise<boolean> {
  const { exitCode } = await runGit(['merge-base', '--is-ancestor', ancestor, descendant], { cwd, objectsOnly: true, okExitCodes: [1] });
  return exitCode === 0;
}

function checkMaxBytes(maxBytes: number | undefined): number {
  const value = maxBytes ?? DEFAULT_PATCH_BYTES;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PATCH_BYTES) {
    throw new InvalidInputError(`maxBytes must be an integer from 1 to ${MAX_PATCH_BYTES}`, 'maxBytes');
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Repositories

/** A repository runboard works on. */
export interface RepositoryInfo {
  /** Absolute top-level directory of the main checkout. */
  root: string;
  /** Checked-out branch, or null when HEAD is detached. */
  branch: string | null;
  headSha: string;
}

async function readHead(cwd: string): Promise<Omit<RepositoryInfo, 'root'>> {
  const [symbolic, head] = await Promise.all([
    runGit(['symbolic-ref', '--quiet', 'HEAD'], { cwd, objectsOnly: true, okExitCodes: [1] }),
    runGit(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { cwd, objectsOnly: true, okExitCodes: [1] }),
  ]);
  if (head.exitCode !== 0) throw new InvalidInputError(`${cwd} has no commits yet`, 'path');
  const ref = symbolic.exitCode === 0 ? symbolic.stdout.trim() : '';
  return { branch: ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null, headSha: head.stdout.trim() };
}

/**
 * Resolves `repoPath` (any directory inside a checkout) to its repository.
 * Throws InvalidInputError with one line when the path is missing, not a git checkout, or has no commit.
 */
export async function openRepository(repoPath: string): Promise<RepositoryInfo> {
  if (typeof repoPath !== 'string' || repoPath.trim() === '' || repoPath.includes('\0')) {
    throw new InvalidInputError('repository path must be a non-empty path', 'path');
  }
  const absolute = path.resolve(repoPath);
  const stat = await fs.stat(absolute).catch(() => null);
  if (!stat) throw new InvalidInputError(`${repoPath} does not exist`, 'path');
  if (!stat.isDirectory()) throw new InvalidInputError(`${repoPath} is not a directory`, 'path');
  // The usual case in one git process (start-up pays for each): top level, HEAD's commit, HEAD's ref
  // ("HEAD" when detached). Anything unusual (no commit yet, not a repository) takes the steps below, which say what is wrong.
  const quick = await runGit(['rev-parse', '--show-toplevel', 'HEAD^{commit}', '--symbolic-full-name', 'HEAD'], { cwd: absolute, objectsOnly: true, okExitCodes: [128] }).catch(() => null);
  const [top, sha, ref] = quick?.exitCode === 0 ? quick.stdout.split('\n') : [];
  if (top && sha && /^[0-9a-f]{40,64}$/.test(sha) && ref) {
    return { root: top, branch: ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : null, headSha: sha };
  }
  let root: string;
  try {
    root = (await runGit(['rev-parse', '--show-toplevel'], { cwd: absolute, objectsOnly: true })).stdout.trim();
  } catch (error) {
    if (!(error instanceof GitError)) throw error;
    if (error.kind === 'NOT_A_REPOSITORY') throw new InvalidInputError(`${repoPath} is not a git repository`, 'path');
    throw new InvalidInputError(`${repoPath} cannot be used as a git checkout: ${firstLine(error.stderr)}`, 'path');
  }
  return { root, ...(await readHead(root)) };
}

/** An operation left half done in a checkout. */
export type RepositoryState = 'CLEAN' | 'MERGING' | 'REBASING' | 'CHERRY_PICKING' | 'REVERTING';

/** Changed paths of a checkout, each list capped at MAX_LISTED_PATHS; `counts` are the full numbers. */
export interface DirtyPaths {
  staged: string[];
  unstaged: string[];
  /** Untracked files; an untracked directory is listed once, as `dir/`. */
  untracked: string[];
  conflicted: string[];
  counts: { staged: number; unstaged: number; untracked: number; conflicted: number };
}

/** HEAD, half-done operation and local changes of a checkout. */
export interface RepositoryStatus extends RepositoryInfo {
  state: RepositoryState;
  dirty: DirtyPaths;
}

/** Ignored paths are only collected when asked for (merge needs them; listing them can be slow). */
type StatusScan = Omit<DirtyPaths, 'counts'> & { ignored: string[] };

/** Parses `git status --porcelain=v2 -z`. Paths may hold spaces, so each record is cut at a fixed field count. */
function parseStatus(output: string): StatusScan {
  const scan: StatusScan = { staged: [], unstaged: [], untracked: [], conflicted: [], ignored: [] };
  const fields = output.split('\0');
  const afterSpaces = (record: string, count: number) => {
    let at = -1;
    for (let i = 0; i < count; i++) at = record.indexOf(' ', at + 1);
    return record.slice(at + 1);
  };
  for (let i = 0; i < fields.length; i++) {
    const record = fields[i];
    const xy = record.slice(2, 4);
    switch (record[0]) {
      case '1': // ordinary change: 1 XY sub mH mI mW hH hI path
      case '2': {
        // rename or copy: 2 XY sub mH mI mW hH hI Xscore path, then the original path as its own field
        const changedPath = afterSpaces(record, record[0] === '1' ? 8 : 9);
        if (record[0] === '2') i++;
        if (xy[0] !== '.') scan.staged.push(changedPath);
        if (xy[1] !== '.') scan.unstaged.push(changedPath);
        break;
      }
      case 'u': // unmerged: u XY sub m1 m2 m3 mW h1 h2 h3 path
        scan.conflicted.push(afterSpaces(record, 10));
        break;
      case '?':
        scan.untracked.push(record.slice(2));
        break;
      case '!':
        scan.ignored.push(record.slice(2));
        break;
      default: // '#' headers and the final empty field
        break;
    }
  }
  return scan;
}

const STATE_MARKERS: ReadonlyArray<readonly [string, RepositoryState]> = [
  ['rebase-merge', 'REBASING'],
  ['rebase-apply', 'REBASING'], // also `git am`; either way the checkout is mid-operation
  ['MERGE_HEAD', 'MERGING'],
  ['CHERRY_PICK_HEAD', 'CHERRY_PICKING'],
  ['REVERT_HEAD', 'REVERTING'],
];

async function readOperationState(cwd: string): Promise<RepositoryState> {
  const args = STATE_MARKERS.flatMap(([marker]) => ['--git-path', marker]);
  const markerPaths = (await runGit(['rev-parse', ...args], { cwd, objectsOnly: true })).stdout.split('\n');
  for (let i = 0; i < STATE_MARKERS.length; i++) {
    if (await pathExists(path.resolve(cwd, markerPaths[i]))) return STATE_MARKERS[i][1];
  }
  return 'CLEAN';
}

/** Untracked (and, if asked, ignored) directories are listed once, as `dir/`. */
async function scanStatus(cwd: string, withIgnored = false): Promise<StatusScan> {
  const ignored = withIgnored ? ['--ignored=traditional'] : [];
  const { stdout } = await runGit(['status', '--porcelain=v2', '-z', '--untracked-files=normal', ...ignored], { cwd });
  return parseStatus(stdout);
}

async function readStatus(cwd: string, withIgnored = false) {
  const [head, state, scan] = await Promise.all([readHead(cwd), readOperationState(cwd), scanStatus(cwd, withIgnored)]);
  return { ...head, state, ...scan };
}

/** HEAD, any half-done merge/rebase/cherry-pick/revert, and changed paths of the checkout at `root`. */
export async function repositoryStatus(root: string): Promise<RepositoryStatus> {
  return reviewRead(`the status of ${root}`, async () => {
    const { branch, headSha, state, staged, unstaged, untracked, conflicted } = await readStatus(root);
    const cap = (paths: string[]) => paths.slice(0, MAX_LISTED_PATHS);
    const counts = { staged: staged.length, unstaged: unstaged.length, untracked: untracked.length, conflicted: conflicted.length };
    const dirty = { staged: cap(staged), unstaged: cap(unstaged), untracked: cap(untracked), conflicted: cap(conflicted), counts };
    return { root, branch, headSha, state, dirty };
  });
}

// ---------------------------------------------------------------------------------------------
// Branch names

/** Longest slug taken from a card title. @default 40 // characters */
const MAX_SLUG_LENGTH = 40;

/**
 * The branch for a run: `runboard/<slug>-<run id>`. The slug is the title in ASCII lowercase
 * [a-z0-9-] (diacritics stripped, everything else dropped, at most 40 characters, `card` when
 * nothing is left); the run id part is its last 8 letters or digits. Any title gives a valid name.
 */
export function branchNameFor(title: string, runId: string): string {
  const slug =
    String(title ?? '')
      .normalize('NFKD')
      .replace(/\p{M}/gu, '') // the accents NFKD split off
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, MAX_SLUG_LENGTH)
      .replace(/-+$/, '') || 'card';
  const id = String(runId ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  if (!id) throw new InvalidInputError('run id must contain letters or digits', 'runId');
  return `runboard/${slug}-${id}`;
}

/** Throws InvalidInputError unless `name` is a valid branch name (`git check-ref-format --branch`). */
export async function validateBranchName(name: string): Promise<void> {
  checkRefText(name, 'branch');
  const check = await runGit(['check-ref-format', '--branch', name], { cwd: os.tmpdir(), objectsOnly: true, okExitCodes: [1, 128] });
  // `--branch` expands shorthands such as `@{-1}`; only a name that comes back unchanged is literal.
  if (check.exitCode !== 0 || check.stdout.trim() !== name) {
    throw new InvalidInputError(`"${name}" is not a valid branch name`, 'branch');
  }
}

// ---------------------------------------------------------------------------------------------
// Worktrees

/** One entry of `git worktree list`. The first is the main checkout. */
export interface WorktreeInfo {
  path: string;
  headSha: string | null;
  /** Checked-out branch (without `refs/heads/`), or null when detached or bare. */
  branch: string | null;
  main: boolean;
  bare: boolean;
  detached: boolean;
  locked: boolean;
  /** git knows the directory is gone; `pruneWorktrees` will forget it. */
  prunable: boolean;
}

function parseWorktreeList(output: string): WorktreeInfo[] {
  const worktrees: WorktreeInfo[] = [];
  let current: WorktreeInfo | null = null;
  for (const field of output.split('\0')) {
    if (field === '') {
      // An empty field ends a record.
      if (current) worktrees.push(current);
      current = null;
      continue;
    }
    const space = field.indexOf(' ');
    const key = space < 0 ? field : field.slice(0, space);
    const value = space < 0 ? '' : field.slice(space + 1);
    if (key === 'worktree') {
      const main = worktrees.length === 0;
      current = { path: value, headSha: null, branch: null, main, bare: false, detached: false, locked: false, prunable: false };
      continue;
    }
    if (!current) continue;
    if (key === 'HEAD') current.headSha = value;
    else if (key === 'branch') current.branch = value.replace(/^refs\/heads\//, '');
    else if (key === 'bare' || key === 'detached' || key === 'locked' || key === 'prunable') current[key] = true;
    // Attributes added by newer git are ignored.
  }
  if (current) worktrees.push(current);
  return worktrees;
}

/** The worktrees git knows for the repository at `repoRoot`, main checkout first. */
export async function listWorktrees(repoRoot: string): Promise<WorktreeInfo[]> {
  return parseWorktreeList((await runGit(['worktree', 'list', '--porcelain', '-z'], { cwd: repoRoot, objectsOnly: true })).stdout);
}

/** Whether `worktreePath` is a directory that is the top level of a git checkout. Never throws. */
export async function worktreeExists(worktreePath: string): Promise<boolean> {
  try {
    if (!(await isDirectory(worktreePath))) return false;
    const real = await fs.realpath(worktreePath);
    const { stdout } = await runGit(['rev-parse', '--show-toplevel'], { cwd: real, objectsOnly: true });
    return (await fs.realpath(stdout.trim())) === real;
  } catch {
    return false;
  }
}

/** Forgets worktrees whose directories are gone. */
export async function pruneWorktrees(repoRoot: string): Promise<void> {
  // objectsOnly: prune deletes only git's own records under .git/worktrees, never a working-tree file.
  await withLocks([repoRoot], () => runGit(['worktree', 'prune'], { cwd: repoRoot, writes: true, objectsOnly: true }));
}

/**
 * Forgets git's records of checkouts whose directories are gone (`pruneWorktrees`, run only when git
 * lists one) and answers the real paths of the checkouts of `repoRoot` that exist, the main one
 * included: one git command for any number of runs, where `worktreeExists` is one per path.
 */
export async function reconcileWorktrees(repoRoot: string): Promise<Set<string>> {
  const listed = await listWorktrees(repoRoot);
  const [real] = await Promise.all([
    Promise.all(listed.map((worktree) => fs.realpath(worktree.path).catch(() => null))),
    listed.some((worktree) => worktree.prunable) ? pruneWorktrees(repoRoot) : undefined,
  ]);
  return new Set(real.filter((found): found is string => found !== null));
}

/** Where and from what to start a run's worktree. */
export interface CreateWorktreeInput {
  /** Top level of the main checkout (`RepositoryInfo.root`). */
  repoRoot: string;
  /** Directory that holds runboard's worktrees; created when missing. */
  worktreesDir: string;
  /** Card title, used for the branch name. */
  title: string;
  runId: string;
  /** Start the branch here instead of at the main checkout's HEAD (a clone's fetched base branch). */
  start?: { branch: string | null; sha: string };
}

/** A new worktree on a new branch. */
export interface CreatedWorktree {
  path: string;
  branch: string;
  /** Main checkout's branch at creation, or null when it was detached. */
  baseBranch: string | null;
  baseSha: string;
}

/** `<worktreesDir>/<last segment of the branch>`: where a run's worktree lives, on any node. */
export function worktreePathFor(worktreesDir: string, branch: string, field = 'branch'): string {
  const dir = path.resolve(worktreesDir);
  const worktreePath = path.resolve(dir, branch.slice(branch.lastIndexOf('/') + 1));
  if (!worktreePath.startsWith(dir + path.sep)) throw new InvalidInputError(`worktree path ${worktreePath} would leave ${dir}`, field);
  return worktreePath;
}

/**
 * Creates branch `branchNameFor(title, runId)` at the main checkout's HEAD and checks it out in
 * `<worktreesDir>/<last segment of the branch>`. ConflictError when the branch or directory exists.
 */
export async function createWorktree(input: CreateWorktreeInput): Promise<CreatedWorktree> {
  const branch = branchNameFor(input.title, input.runId);
  await validateBranchName(branch);
  const worktreesDir = path.resolve(input.worktreesDir);
  const worktreePath = worktreePathFor(worktreesDir, branch, 'title');
  const cwd = input.repoRoot;
  return withLocks([cwd, worktreePath], async () => {
    const head = input.start ? { branch: input.start.branch, headSha: input.start.sha } : await readHead(cwd);
    if (await pathExists(worktreePath)) throw new ConflictError(`${worktreePath} already exists`, [worktreePath]);
    const existing = await runGit(['show-ref', '--verify', '--quiet', `refs/heads/${branch}`], { cwd, objectsOnly: true, okExitCodes: [1] });
    if (existing.exitCode === 0) throw new ConflictError(`branch ${branch} already exists`);
    await fs.mkdir(worktreesDir, { recursive: true });
    await runGit(['worktree', 'add', '--quiet', '-b', branch, '--', worktreePath, head.headSha], { cwd, writes: true });
    return { path: worktreePath, branch, baseBranch: head.branch, baseSha: head.headSha };
  });
}

/** Which worktree and branch to clean up. */
export interface RemoveWorktreeInput {
  repoRoot: string;
  path: string;
  branch: string;
  /** Keep the branch when it has commits the main checkout's HEAD (or `against`) lacks. @default true */
  keepBranchIfUnmerged?: boolean;
  /** What "merged" is measured against, as a full ref (a clone has no HEAD of its own). @default the main checkout's HEAD */
  against?: string;
}

/** What `removeWorktree` did. */
export interface RemovedWorktree {
  /** A directory or a registration was removed. */
  worktreeRemoved: boolean;
  branchDeleted: boolean;
  /** Commits on the branch not reachable from the main checkout's HEAD (`main..branch`). */
  unmergedCommits: number;
}

/**
 * Removes a run's worktree (a directory already deleted by hand is just pruned), then deletes its
 * branch with `git branch -d` semantics against the main checkout's HEAD: a branch with unmerged
 * commits is kept unless `keepBranchIfUnmerged` is false. A squash-merged branch counts as unmerged.
 */
export async function removeWorktree(input: RemoveWorktreeInput): Promise<RemovedWorktree> {
  const { repoRoot, branch, keepBranchIfUnmerged = true } = input;
  checkRefText(branch, 'branch');
  const target = await canonicalPath(input.path);
  return withLocks([repoRoot, input.path], async () => {
    const worktrees = await listWorktrees(repoRoot);
    const canonical = await Promise.all(worktrees.map((w) => canonicalPath(w.path)));
    if (canonical[0] === target) {
      throw new InvalidInputError(`${input.path} is the main checkout, not a run's worktree`, 'path');
    }
    const registered = canonical.includes(target);
    let worktreeRemoved = false;
    if (registered && (await pathExists(target))) {
      await runGit(['worktree', 'remove', '--force', '--', target], { cwd: repoRoot, writes: true });
      worktreeRemoved = true;
    } else if (registered) {
      await runGit(['worktree', 'prune'], { cwd: repoRoot, writes: true });
      worktreeRemoved = true;
    } // A directory git does not know as a worktree is left alone: it is not ours to delete.

    const tip = await branchSha(repoRoot, branch);
    if (!tip) return { worktreeRemoved, branchDeleted: false, unmergedCommits: 0 };
    const against = input.against ? await resolveCommit(repoRoot, input.against, 'base') : (await readHead(repoRoot)).headSha;
    const { stdout } = await runGit(['rev-list', '--count', `${against}..${tip}`], { cwd: repoRoot, objectsOnly: true });
    const unmergedCommits = Number(stdout.trim());
    const checkedOutElsewhere = (await listWorktrees(repoRoot)).some((w) => w.branch === branch);
    if (checkedOutElsewhere || (unmergedCommits > 0 && keepBranchIfUnmerged)) {
      return { worktreeRemoved, branchDeleted: false, unmergedCommits };
    }
    await runGit(['branch', '-D', '--', branch], { cwd: repoRoot, writes: true });
    return { worktreeRemoved, branchDeleted: true, unmergedCommits };
  });
}

// ---------------------------------------------------------------------------------------------
// What a run has done

/** A run's branch compared with a base (a branch name or sha, usually the card's base). */
export interface BranchRange {
  repoRoot: string;
  branch: string;
  base: string;
  /** Read `branch` as last fetched from the remote of record (`fetchBranches`), not the local branch. @default false */
  tracking?: boolean;
}

async function resolveRange({ repoRoot, branch, base, tracking = false }: BranchRange): Promise<{ branchSha: string; baseSha: string }> {
  const [branchSha, baseSha] = await Promise.all([
    resolveCommit(repoRoot, branch, tracking ? 'tracking' : 'branch'),
    resolveCommit(repoRoot, base, 'base'),
  ]);
  return { branchSha, baseSha };
}

/** The two trees a branch's diff compares: where it left base (the empty tree if it never shared history), and its tip. */
async function branchDiffRevisions(input: BranchRange): Promise<[string, string]> {
  const { branchSha, baseSha } = await resolveRange(input);
  const { stdout, exitCode } = await runGit(['merge-base', baseSha, branchSha], { cwd: input.repoRoot, objectsOnly: true, okExitCodes: [1] });
  if (exitCode === 0) return [stdout.trim(), branchSha];
  // stdin is 'ignore', so this hashes zero bytes: the empty tree's id, written nowhere.
  return [(await runGit(['hash-object', '-t', 'tree', '--stdin'], { cwd: input.repoRoot, objectsOnly: true })).stdout.trim(), branchSha];
}

/** One commit. */
export interface CommitInfo {
  sha: string;
  subject: string;
  body: string;
  authorName: string;
  authorEmail: string;
  authoredAt: Date;
}

/** Commits on a branch since it left its base, newest first. */
export interface CommitsAhead {
  commits: CommitInfo[];
  /** There were more than `limit` commits. */
  truncated: boolean;
}

const UNIT = '\x1f';
const LOG_FORMAT = ['%H', '%an', '%ae', '%aI', '%s', '%b'].join('%x1f');

function parseLog(output: string): CommitInfo[] {
  return splitNul(output).map((record) => {
    const [sha, authorName, authorEmail, authoredAt, subject, ...body] = record.split(UNIT);
    return { sha, subject, body: body.join(UNIT).trimEnd(), authorName, authorEmail, authoredAt: new Date(authoredAt) };
  });
}

/**
 * Commits on the branch since it left base (`base..branch`, the same set as `mergeBase..branch`),
 * newest first. @default limit MAX_COMMITS
 */
export async function commitsAhead(input: BranchRange & { limit?: number }): Promise<CommitsAhead> {
  const limit = input.limit ?? MAX_COMMITS;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_COMMITS) {
    throw new InvalidInputError(`limit must be an integer from 1 to ${MAX_COMMITS}`, 'limit');
  }
  return reviewRead(`the commits of ${input.branch}`, async () => {
    const { branchSha, baseSha } = await resolveRange(input);
    const { stdout } = await runGit(
      ['log', '-z', `--format=${LOG_FORMAT}`, '--no-show-signature', `--max-count=${limit + 1}`, `${baseSha}..${branchSha}`, '--'],
      { cwd: input.repoRoot, objectsOnly: true },
    );
    const commits = parseLog(stdout);
    return { commits: commits.slice(0, limit), truncated: commits.length > limit };
  });
}

/** Commits the branch has that base lacks (`ahead`) and the reverse (`behind`). */
export async function aheadBehind(input: BranchRange): Promise<{ ahead: number; behind: number }> {
  return reviewRead(`how far ${input.branch} is ahead and behind`, async () => {
    const { branchSha, baseSha } = await resolveRange(input);
    const range = `${baseSha}...${branchSha}`;
    const { stdout } = await runGit(['rev-list', '--left-right', '--count', range, '--'], { cwd: input.repoRoot, objectsOnly: true });
    const [behind, ahead] = stdout.trim().split(/\s+/).map(Number);
    return { ahead, behind };
  });
}

/** How a file changed. */
export type FileChangeStatus = 'ADDED' | 'MODIFIED' | 'DELETED' | 'RENAMED' | 'COPIED' | 'TYPE_CHANGED';

/** One changed file. Binary files have zero additions and deletions. */
export interface FileChange {
  path: string;
  /** The source of a rename or copy. */
  previousPath: string | null;
  status: FileChangeStatus;
  additions: number;
  deletions: number;
  binary: boolean;
}

/** Sums over every changed file. */
export interface DiffTotals {
  filesChanged: number;
  insertions: number;
  deletions: number;
}

/** A set of changes with a patch capped at the requested size. */
export interface DiffResult {
  files: FileChange[];
  totals: DiffTotals;
  patch: string;
  /** The patch was cut at a line (or, failing that, character) boundary to fit `maxBytes`. */
  truncated: boolean;
  /** UTF-8 length of `patch`. */
  patchBytes: number;
}

const STATUS_BY_LETTER: Readonly<Record<string, FileChangeStatus>> = {
  A: 'ADDED', M: 'MODIFIED', D: 'DELETED', R: 'RENAMED', C: 'COPIED', T: 'TYPE_CHANGED',
};

/** The diff options every diff here shares: no colour, no external diff or textconv program, renames detected. */
const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv', '-M'];

/** Two revisions: a diff of trees, which reads no working-tree file. One (HEAD) compares with the working tree. */
const comparesCommits = (revisions: readonly string[]) => revisions.length === 2;

/** Lists changed files by combining `--name-status -z` (status, renames) and `--numstat -z` (line counts). */
async function listChanges(cwd: string, revisions: readonly string[]): Promise<FileChange[]> {
  const objectsOnly = comparesCommits(revisions);
  const [names, counts] = await Promise.all([
    runGit(['diff', ...DIFF_FLAGS, '--name-status', '-z', ...revisions, '--'], { cwd, objectsOnly }),
    runGit(['diff', ...DIFF_FLAGS, '--numstat', '-z', ...revisions, '--'], { cwd, objectsOnly }),
  ]);
  // numstat: "added\tdeleted\tpath\0", or for renames "added\tdeleted\t\0old\0new\0"; binary is "-\t-".
  const lineCounts = new Map<string, { additions: number; deletions: number; binary: boolean }>();
  const numFields = counts.stdout.split('\0');
  for (let i = 0; i < numFields.length; i++) {
    const [added, deleted, ...rest] = numFields[i].split('\t');
    if (deleted === undefined) continue;
    let filePath = rest.join('\t');
    if (filePath === '') {
      filePath = numFields[i + 2];
      i += 2;
    }
    const binary = added === '-';
    lineCounts.set(filePath, { additions: binary ? 0 : Number(added), deletions: binary ? 0 : Number(deleted), binary });
  }
  // name-status: "M\0path\0", or for renames and copies "R100\0old\0new\0".
  const files: FileChange[] = [];
  const nameFields = names.stdout.split('\0');
  for (let i = 0; i + 1 < nameFields.length; i += 2) {
    const letter = nameFields[i][0];
    let previousPath: string | null = null;
    let filePath = nameFields[i + 1];
    if (letter === 'R' || letter === 'C') {
      previousPath = filePath;
      filePath = nameFields[i + 2];
      i++;
    }
    // 'U' (unmerged) only shows up in a conflicted worktree; the file is modified either way.
    const status = STATUS_BY_LETTER[letter] ?? 'MODIFIED';
    const lines = lineCounts.get(filePath) ?? { additions: 0, deletions: 0, binary: false };
    files.push({ path: filePath, previousPath, status, ...lines });
  }
  return files;
}

async function readPatch(cwd: string, revisions: readonly string[], paths: readonly string[], maxBytes: number) {
  const { stdout, truncated } = await runGit(
    ['diff', ...DIFF_FLAGS, '--patch', '--src-prefix=a/', '--dst-prefix=b/', ...revisions, '--', ...paths],
    { cwd, stdoutLimit: maxBytes, objectsOnly: comparesCommits(revisions) },
  );
  return { patch: stdout, truncated, patchBytes: Buffer.byteLength(stdout) };
}

function totalsOf(files: readonly FileChange[]): DiffTotals {
  return {
    filesChanged: files.length,
    insertions: files.reduce((sum, f) => sum + f.additions, 0),
    deletions: files.reduce((sum, f) => sum + f.deletions, 0),
  };
}

/**
 * What the branch changed since it left `base`: diffed against their merge base, so commits added
 * to base later do not show. The patch is streamed and cut at `maxBytes`.
 * @default maxBytes DEFAULT_PATCH_BYTES (1 MiB); at most MAX_PATCH_BYTES (16 MiB)
 */
export async function diff(input: BranchRange & { maxBytes?: number }): Promise<DiffResult> {
  const maxBytes = checkMaxBytes(input.maxBytes);
  return reviewRead(`the diff of ${input.branch}`, async () => {
    const revisions = await branchDiffRevisions(input);
    const [files, patch] = await Promise.all([
      listChanges(input.repoRoot, revisions),
      readPatch(input.repoRoot, revisions, [], maxBytes),
    ]);
    return { files, totals: totalsOf(files), ...patch };
  });
}

/** One file of a branch's diff. */
export interface FileDiff {
  file: FileChange;
  patch: string;
  truncated: boolean;
  patchBytes: number;
}

/** Rejects paths that are absolute or climb out of the repository. */
function checkRepoPath(filePath: string): string {
  if (typeof filePath !== 'string' || filePath === '' || filePath.length > 4096 || filePath.includes('\0')) {
    throw new InvalidInputError('path must be a non-empty relative path', 'path');
  }
  if (path.posix.isAbsolute(filePath) || path.win32.isAbsolute(filePath) || filePath.split(/[\\/]/).includes('..')) {
    throw new InvalidInputError(`path "${filePath}" must be relative to the repository and must not contain ".."`, 'path');
  }
  return filePath;
}

/**
 * The patch of one file (by its new or, for a rename, old path) in `diff(input)`.
 * NotFoundError when the branch did not change it. @default maxBytes DEFAULT_PATCH_BYTES
 */
export async function fileDiff(input: BranchRange & { path: string; maxBytes?: number }): Promise<FileDiff> {
  const filePath = checkRepoPath(input.path);
  const maxBytes = checkMaxBytes(input.maxBytes);
  return reviewRead(`the diff of ${filePath} on ${input.branch}`, async () => {
    const revisions = await branchDiffRevisions(input);
    const files = await listChanges(input.repoRoot, revisions);
    const file = files.find((f) => f.path === filePath || f.previousPath === filePath);
    if (!file) throw new NotFoundError('changed file', filePath);
    // Both sides of a rename must be in the pathspec, or git shows an add and a delete.
    const paths = file.previousPath ? [file.previousPath, file.path] : [file.path];
    return { file, ...(await readPatch(input.repoRoot, revisions, paths, maxBytes)) };
  });
}

/** Uncommitted work in a run's worktree. Untracked files are listed (up to MAX_LISTED_PATHS) but not in the patch. */
export interface UncommittedChanges extends DiffResult {
  /** Untracked files beyond MAX_LISTED_PATHS: counted in `totals.filesChanged`, not listed. */
  untrackedOmitted: number;
}

function countLines(bytes: Buffer): number {
  if (bytes.length === 0) return 0;
  let lines = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) lines++;
  return bytes[bytes.length - 1] === 0x0a ? lines : lines + 1;
}

async function describeUntracked(root: string, relative: string): Promise<FileChange> {
  const change: FileChange = { path: relative, previousPath: null, status: 'ADDED', additions: 0, deletions: 0, binary: false };
  try {
    const stat = await fs.lstat(path.join(root, relative));
    if (!stat.isFile() || stat.size > UNTRACKED_COUNT_BYTES) return change; // listed, not counted
    const bytes = await fs.readFile(path.join(root, relative));
    // git's own test: a NUL in the first 8000 bytes means binary.
    if (bytes.subarray(0, 8000).includes(0)) return { ...change, binary: true };
    return { ...change, additions: countLines(bytes) };
  } catch {
    return change; // the agent may delete it while we look
  }
}

/**
 * Working tree and index of a run's worktree against its HEAD, plus untracked files (status ADDED,
 * line counts for text files up to 1 MiB). NotFoundError when the worktree is gone.
 * @default maxBytes DEFAULT_PATCH_BYTES
 */
export async function uncommittedChanges(worktreePath: string, maxBytes?: number): Promise<UncommittedChanges> {
  const limit = checkMaxBytes(maxBytes);
  const cwd = path.resolve(worktreePath);
  // No checkout lock: reading is safe while the agent (or a merge) writes, and must not wait for one.
  return reviewRead(`the uncommitted changes in ${worktreePath}`, async () => {
    if (!(await worktreeExists(worktreePath))) throw new NotFoundError('worktree', worktreePath);
    const [tracked, patch, others] = await Promise.all([
      listChanges(cwd, ['HEAD']),
      readPatch(cwd, ['HEAD'], [], limit),
      runGit(['ls-files', '--others', '--exclude-standard', '-z'], { cwd }),
    ]);
    const untrackedPaths = splitNul(others.stdout);
    const untracked: FileChange[] = [];
    // One at a time, so memory stays at one file of at most UNTRACKED_COUNT_BYTES.
    for (const relative of untrackedPaths.slice(0, MAX_LISTED_PATHS)) untracked.push(await describeUntracked(cwd, relative));
    const files = [...tracked, ...untracked];
    return {
      files,
      totals: { ...totalsOf(files), filesChanged: tracked.length + untrackedPaths.length },
      ...patch,
      untrackedOmitted: untrackedPaths.length - untracked.length,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Merging a run into the main checkout
//
// The merge is computed away from the main checkout: `git merge-tree --write-tree` finds conflicts
// and builds the merged tree, `git commit-tree` makes the commit; both write only objects. So a
// conflicting merge never touches main at all, and nothing needs undoing. A clean result reaches
// main in one step, `git merge --ff-only` to the new commit, which takes the index lock before
// anything else (a busy repository is left as it was), refuses before writing a file if any file
// it would write has local changes (a concurrent edit is never overwritten), and moves the branch
// last. If that step is cut short (a crash, a kill, a full disk), `finishInterruptedMerge` finds
// out how far it got and puts back exactly the files it wrote. The caller records the plan before
// the step (`beforeUpdate`), so a restart knows which merge to look at.

/** MERGE makes a merge commit (`--no-ff`); SQUASH makes one ordinary commit. */
export type MergeStrategy = 'MERGE' | 'SQUASH';

/** A merge about to move main's branch from `preHead` to `mergeSha`: what a restart needs to finish or undo it. */
export interface MergePlan {
  repoRoot: string;
  /** The branch checked out in the main checkout. */
  into: string;
  preHead: string;
  mergeSha: string;
}

/** What to merge, into the main checkout's current branch. */
export interface MergeInput {
  repoRoot: string;
  /** The run's worktree; when it still exists it must have no uncommitted changes. */
  worktreePath?: string | null;
  branch: string;
  strategy: MergeStrategy;
  /** Refuse (ConflictError) unless the main checkout has this branch checked out: the one the run started from. */
  expectedBranch?: string;
  /** Commit message. @default "Merge branch '<branch>'" */
  message?: string;
  /** Called with the plan once the merge commit exists, right before main is touched; if it throws, main is not touched. */
  beforeUpdate?: (plan: MergePlan) => Promise<void>;
}

/** Outcome of a merge; when `ok` is false the main checkout was not touched. */
export interface MergeResult {
  ok: boolean;
  /** The new HEAD of the main checkout. */
  sha: string | null;
  conflictingPaths: string[];
  message: string;
}

function notMerged(message: string, conflictingPaths: string[] = []): MergeResult {
  return { ok: false, sha: null, conflictingPaths, message };
}

/** Commit identity settings, only for keys the repository does not configure. */
async function fallbackIdentity(cwd: string): Promise<Record<string, string>> {
  const fallback: Record<string, string> = { 'user.name': 'runboard', 'user.email': 'runboard@localhost' };
  const config: Record<string, string> = {};
  for (const key of Object.keys(fallback)) {
    const { stdout, exitCode } = await runGit(['config', '--get', key], { cwd, objectsOnly: true, okExitCodes: [1] });
    if (exitCode !== 0 || stdout.trim() === '') config[key] = fallback[key];
  }
  return config;
}

/**
 * Untracked or ignored files in main that the merge would write over. git refuses for untracked
 * files but silently overwrites ignored ones (a user's `.env`), so both are refused up front.
 */
async function filesInTheWay(cwd: string, untracked: readonly string[], headSha: string, branchSha: string) {
  if (untracked.length === 0) return [];
  // `a...b` diffs from the merge base: exactly the files the merge would write.
  const { stdout } = await runGit(['diff', '--no-renames', '--name-only', '-z', `${headSha}...${branchSha}`, '--'], { cwd, objectsOnly: true });
  const changed = splitNul(stdout);
  // Untracked directories are listed as "dir/"; a file the branch adds at "dir" collides too.
  return changed.filter((p) => untracked.some((u) => u === p || (u.endsWith('/') && (p.startsWith(u) || u === `${p}/`))));
}

/** The merged tree of two commits and the paths that conflict, written to the object store only. */
async function mergeTrees(cwd: string, ours: string, theirs: string): Promise<{ tree: string; conflicts: string[] }> {
  // Exit 1 means conflicts: then the output is the tree, then each conflicted path, NUL-separated.
  const { stdout } = await runGit(['merge-tree', '--write-tree', '--name-only', '--no-messages', '-z', ours, theirs], { cwd, okExitCodes: [1] });
  const [tree, ...conflicts] = splitNul(stdout);
  return { tree, conflicts: unique(conflicts) };
}

async function commitTree(cwd: string, tree: string, parents: readonly string[], message: string, config: Record<string, string>): Promise<string> {
  const parentArgs = parents.flatMap((parent) => ['-p', parent]);
  const { stdout } = await runGit(['commit-tree', '--no-gpg-sign', ...parentArgs, '-m', message, tree], { cwd, objectsOnly: true, config });
  return stdout.trim();
}

async function treeOf(cwd: string, commit: string): Promise<string> {
  return (await runGit(['rev-parse', '--verify', `${commit}^{tree}`], { cwd, objectsOnly: true })).stdout.trim();
}

/** Moves main from `plan.preHead` to `plan.mergeSha`, or leaves it as it was and says why. Holds main's lock. */
async function updateMain(plan: MergePlan, branch: string): Promise<void> {
  const { repoRoot, into } = plan;
  try {
    await runGit(['merge', '--ff-only', '--quiet', '--no-stat', '--no-autostash', '--no-verify-signatures', plan.mergeSha], { cwd: repoRoot, writes: true });
    return;
  } catch (error) {
    if (!(error instanceof GitError)) throw error;
    // Each of these refusals happens before git writes anything.
    if (error.kind === 'LOCKED') {
      throw new ConflictError(`repository busy: another git process holds a lock in ${repoRoot} (${firstLine(error.stderr)}); nothing was changed, try again`);
    }
    if (error.kind === 'DIRTY') {
      throw new ConflictError(`files in ${repoRoot} changed while ${branch} was being merged (${firstLine(error.stderr)}); nothing was changed`, dirtyPathsOf(error.stderr));
    }
    if ((await branchSha(repoRoot, into)) !== plan.preHead && /fast-forward/i.test(error.stderr)) {
      throw new ConflictError(`${into} moved while ${branch} was being merged; nothing was changed, try again`);
    }
    // Anything else may have stopped half way: put back what it wrote before reporting it.
    const repaired = await repairMain(plan, false);
    if (repaired.state === 'MERGED') return;
    throw error;
  }
}

/** The paths git lists, one per tab-indented line, under "would be overwritten". */
function dirtyPathsOf(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('\t')).map((line) => line.slice(1));
}

/**
 * Merges `branch` into the main checkout's current branch with a merge commit (MERGE, two parents)
 * or one squashed commit (SQUASH). Refuses with ConflictError, before touching anything, when main
 * is detached, mid-operation, has changes to tracked files, or untracked files in the way, or when
 * the run's worktree has uncommitted changes; also when another git process holds main's lock, or
 * a file the merge writes changed meanwhile. Conflicts, an already-merged branch or an empty squash
 * return `ok: false`, and main was never touched.
 */
export async function merge(input: MergeInput): Promise<MergeResult> {
  const { repoRoot, branch, strategy } = input;
  if (strategy !== 'MERGE' && strategy !== 'SQUASH') {
    throw new InvalidInputError(`unknown merge strategy ${String(strategy)}`, 'strategy');
  }
  checkRefText(branch, 'branch');
  const message = input.message ?? `Merge branch '${branch}'`;
  if (typeof message !== 'string' || message.trim() === '' || message.includes('\0')) {
    throw new InvalidInputError('merge message must be non-empty text', 'message');
  }
  const worktreePath = input.worktreePath ? path.resolve(input.worktreePath) : null;

  return withLocks(worktreePath ? [repoRoot, worktreePath] : [repoRoot], async () => {
    const branchSha = await resolveCommit(repoRoot, branch, 'branch');
    const main = await readStatus(repoRoot, true);
    if (main.branch === null) throw new ConflictError(`${repoRoot} has a detached HEAD; check out the branch to merge into`);
    if (main.branch === branch) throw new ConflictError(`${branch} is the branch checked out in ${repoRoot}`);
    if (input.expectedBranch !== undefined && main.branch !== input.expectedBranch) {
      throw new ConflictError(`${repoRoot} has ${main.branch} checked out, but the run started from ${input.expectedBranch}; check that out to merge`);
    }
    if (main.state !== 'CLEAN') {
      const what = `${repoRoot} is in the middle of an operation (${main.state}); finish or abort it first`;
      throw new ConflictError(what, main.conflicted);
    }
    const mainChanges = unique([...main.conflicted, ...main.staged, ...main.unstaged]);
    if (mainChanges.length > 0) throw new ConflictError(`${repoRoot} has uncommitted changes to tracked files`, mainChanges);
    await refuseUncommitted(worktreePath);
    const into = main.branch;
    if (await isAncestor(repoRoot, branchSha, main.headSha)) {
      return notMerged(`${branch} is already merged into ${into}; nothing to merge`);
    }
    const blocked = await filesInTheWay(repoRoot, [...main.untracked, ...main.ignored], main.headSha, branchSha);
    if (blocked.length > 0) {
      throw new ConflictError(`merging ${branch} would overwrite untracked or ignored files in ${repoRoot}`, blocked);
    }

    // The branch was resolved to a sha above, so nothing caller-supplied reaches git as a revision.
    const merged = await mergeTrees(repoRoot, main.headSha, branchSha);
    if (merged.conflicts.length > 0) {
      const files = merged.conflicts.length === 1 ? '1 file' : `${merged.conflicts.length} files`;
      return notMerged(`merging ${branch} into ${into} conflicts in ${files}; ${into} was not touched`, merged.conflicts);
    }
    if (strategy === 'SQUASH' && merged.tree === (await treeOf(repoRoot, main.headSha))) {
      return notMerged(`squashing ${branch} changes nothing: its changes are already on ${into}`);
    }
    const config = await fallbackIdentity(repoRoot);
    const parents = strategy === 'MERGE' ? [main.headSha, branchSha] : [main.headSha];
    const plan: MergePlan = { repoRoot, into, preHead: main.headSha, mergeSha: await commitTree(repoRoot, merged.tree, parents, message, config) };
    await input.beforeUpdate?.(plan);
    await updateMain(plan, branch);
    const how = strategy === 'MERGE' ? 'merge commit' : 'squashed';
    return { ok: true, sha: plan.mergeSha, conflictingPaths: [], message: `merged ${branch} into ${into} (${how}) as ${plan.mergeSha.slice(0, 12)}` };
  });
}

/** ConflictError, naming the files, when the run's worktree (if it still exists) has uncommitted changes: they would not be merged. */
async function refuseUncommitted(worktreePath: string | null): Promise<void> {
  if (!worktreePath || !(await worktreeExists(worktreePath))) return;
  const run = await scanStatus(worktreePath);
  const runChanges = unique([...run.conflicted, ...run.staged, ...run.unstaged, ...run.untracked]);
  if (runChanges.length > 0) throw new ConflictError(`the run's worktree ${worktreePath} has uncommitted changes`, runChanges);
}

/** How far an interrupted merge got, and what `finishInterruptedMerge` did about it. */
export interface InterruptedMergeOutcome {
  /**
   * MERGED: the branch reached the merge commit (main is merged). RESTORED: it had not; every file
   * the merge wrote is back as it was, but `keptPaths`. MOVED: the branch is somewhere else now, so
   * nothing was touched. BUSY: a running git process holds main's index lock; nothing was touched.
   */
  state: 'MERGED' | 'RESTORED' | 'MOVED' | 'BUSY';
  /** Files the merge writes whose content is neither the old nor the merged one: someone's edits, left alone. */
  keptPaths: string[];
  message: string;
}

/**
 * Finds out how far the merge of `plan` got before it was interrupted, and completes the picture:
 * main ends up either merged or exactly as before (except files someone else changed since, which
 * are left alone and listed). With `removeStaleLock`, an index lock that no running process holds
 * is taken to be the interrupted git's and removed (start-up after a crash); otherwise any lock
 * means BUSY.
 */
export async function finishInterruptedMerge(plan: MergePlan, { removeStaleLock = false } = {}): Promise<InterruptedMergeOutcome> {
  checkRefText(plan.into, 'branch');
  return withLocks([plan.repoRoot], () => repairMain(plan, removeStaleLock));
}

async function repairMain(plan: MergePlan, removeStaleLock: boolean): Promise<InterruptedMergeOutcome> {
  const { repoRoot, into, preHead, mergeSha } = plan;
  const lockPath = path.resolve(repoRoot, (await runGit(['rev-parse', '--git-path', 'index.lock'], { cwd: repoRoot, objectsOnly: true })).stdout.trim());
  if (await pathExists(lockPath)) {
    if (!removeStaleLock || isOpenByAnyProcess(await fs.realpath(lockPath).catch(() => lockPath))) {
      return { state: 'BUSY', keptPaths: [], message: `${lockPath} is held by another git process; the merge into ${into} was left as it is` };
    }
    await fs.rm(lockPath, { force: true });
  }
  const tip = await branchSha(repoRoot, into);
  if (tip === mergeSha || (tip !== null && (await isAncestor(repoRoot, mergeSha, tip)))) {
    return { state: 'MERGED', keptPaths: [], message: `the merge into ${into} had completed as ${mergeSha.slice(0, 12)}` };
  }
  if (tip !== preHead) {
    return { state: 'MOVED', keptPaths: [], message: `${into} moved to ${tip?.slice(0, 12) ?? 'nowhere'} since; the interrupted merge was left alone` };
  }

  // The branch never moved: put back each file the merge wrote (its content is the merged one) and
  // the index entries of every path the merge touches, and leave any other content alone.
  const { stdout } = await runGit(['diff', '--no-renames', '--name-only', '-z', preHead, mergeSha, '--'], { cwd: repoRoot, objectsOnly: true });
  const paths = splitNul(stdout);
  const [before, after] = await Promise.all([blobIds(repoRoot, preHead, paths), blobIds(repoRoot, mergeSha, paths)]);
  const format = (await runGit(['rev-parse', '--show-object-format'], { cwd: repoRoot, objectsOnly: true })).stdout.trim();
  const restore: string[] = [];
  const remove: string[] = [];
  const keptPaths: string[] = [];
  const emptyBlob = worktreeBlobIdOf(Buffer.alloc(0), format);
  for (const relative of paths) {
    const now = await worktreeBlobId(path.join(repoRoot, relative), format);
    const was = before.get(relative) ?? null;
    const will = after.get(relative) ?? null;
    if (now === was) continue;
    // An empty file where content belongs is git's own write, cut off between creating and filling it.
    if (now === will || (now === emptyBlob && will !== null)) (was === null ? remove : restore).push(relative);
    else keptPaths.push(relative);
  }
  const ours = paths.filter((p) => !keptPaths.includes(p));
  for (const chunk of chunks(ours)) await runGit(['reset', '--quiet', preHead, '--', ...chunk], { cwd: repoRoot, writes: true });
  for (const chunk of chunks(restore)) await runGit(['checkout', preHead, '--', ...chunk], { cwd: repoRoot, writes: true });
  for (const relative of remove) await removeFileAndEmptyParents(repoRoot, relative);
  const kept = keptPaths.length ? `; ${keptPaths.length} file(s) changed by someone else were left alone` : '';
  return { state: 'RESTORED', keptPaths, message: `the merge into ${into} had not completed; ${into} is back as it was${kept}` };
}

/** Blob ids of `paths` in `commit`; paths the commit lacks are absent. */
async function blobIds(cwd: string, commit: string, paths: readonly string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const chunk of chunks(paths)) {
    const { stdout } = await runGit(['ls-tree', '-r', '-z', '--full-tree', commit, '--', ...chunk], { cwd, objectsOnly: true });
    for (const record of splitNul(stdout)) {
      const tab = record.indexOf('\t');
      ids.set(record.slice(tab + 1), record.slice(0, tab).split(' ')[2]);
    }
  }
  return ids;
}

/** The blob id git would give the file (a symlink: its target) as it is on disk, unfiltered; null when there is none. */
async function worktreeBlobId(file: string, format: string): Promise<string | null> {
  const stat = await fs.lstat(file).catch(() => null);
  if (!stat || !(stat.isFile() || stat.isSymbolicLink())) return null;
  return worktreeBlobIdOf(stat.isSymbolicLink() ? Buffer.from(await fs.readlink(file)) : await fs.readFile(file), format);
}

function worktreeBlobIdOf(content: Buffer, format: string): string {
  return createHash(format === 'sha256' ? 'sha256' : 'sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

async function removeFileAndEmptyParents(root: string, relative: string): Promise<void> {
  await fs.rm(path.join(root, relative), { force: true });
  for (let dir = path.dirname(relative); dir !== '.'; dir = path.dirname(dir)) {
    if (!(await fs.rmdir(path.join(root, dir)).then(() => true, () => false))) return; // not empty: someone's files
  }
}

/** Path lists cut to keep each command line well under the system's argument limit. */
function chunks<T>(items: readonly T[], size = 500): T[][] {
  const result: T[][] = [];
  for (let at = 0; at < items.length; at += size) result.push(items.slice(at, at + size));
  return result;
}

/** Whether a process on this machine has `file` open (a live git holding its lock). True when /proc cannot tell. */
function isOpenByAnyProcess(file: string): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return true;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === file) return true;
      } catch {
        // closed while we looked
      }
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// A node's clone of the remote of record
//
// In cluster mode the repository of record is a git remote, and each node keeps its own bare clone
// under its data dir (nothing is shared between nodes' filesystems). Run worktrees are added to
// that clone; a run's branch is pushed to the remote as it moves; review reads fetch the branch
// into `refs/remotes/origin/…` and read it from there, so every node answers from the branch as
// pushed. A merge is computed in the clone's object store (merge-tree + commit-tree, no work
// tree) and reaches the remote by a normal push, which the remote applies atomically or refuses:
// a conflict or a refused push leaves the remote's base branch as it was.
// Fetches and pushes of one clone are serialized (they update the same tracking refs).

/** The name the clone gives the remote of record. */
export const REMOTE_NAME = 'origin';

const remoteLocks = new KeyedMutex();

/** `refs/remotes/origin/<branch>`: the branch as last fetched from (or pushed to) the remote. */
export function trackingRef(branch: string): string {
  return `refs/remotes/${REMOTE_NAME}/${branch}`;
}

/** A remote given as a path (not a URL or `host:path`) is made absolute, so the clone finds it from anywhere. */
function normaliseRemote(remote: string): string {
  if (typeof remote !== 'string' || remote.trim() === '' || remote.includes('\0') || /[\r\n]/.test(remote) || remote.startsWith('-')) {
    throw new InvalidInputError('the remote of record must be a URL or a path', 'repo');
  }
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(remote);
  const scpLike = /^[^/]+:/.test(remote) && !path.isAbsolute(remote);
  return isUrl || scpLike ? remote : path.resolve(remote);
}

/** The node's clone of a remote, as `openClone` found or made it. */
export interface CloneInfo {
  /** The bare clone under the node's data dir. */
  clonePath: string;
  /** The remote's URL or absolute path. */
  remote: string;
}

/**
 * Settings for every command that talks to the remote. The remote is named by the URL runboard
 * holds, never by the clone's `remote.origin.url`, which an agent working in a worktree can edit;
 * and git's `ext::` transport (a command line as a URL) stays off whatever the clone's config says.
 */
const TRANSPORT_CONFIG: Readonly<Record<string, string>> = { 'protocol.ext.allow': 'never' };

/**
 * Makes (or reopens) the node's bare clone of `remote` at `clonePath`. Nothing is fetched yet:
 * branches are fetched when used. InvalidInputError when `clonePath` holds something else, or a
 * clone of another remote.
 */
export async function openClone(remoteText: string, clonePath: string): Promise<CloneInfo> {
  const remote = normaliseRemote(remoteText);
  const target = path.resolve(clonePath);
  return withLocks([target], async () => {
    if (await pathExists(target)) {
      // Only the clone itself: git would otherwise find a repository the data dir happens to sit in.
      const gitDir = await runGit(['rev-parse', '--absolute-git-dir'], { cwd: target, objectsOnly: true }).catch(() => null);
      if (!gitDir || (await canonicalPath(gitDir.stdout.trim())) !== (await canonicalPath(target))) {
        throw new InvalidInputError(`${target} exists and is not runboard's clone`, 'repo');
      }
      const url = await runGit(['config', '--get', `remote.${REMOTE_NAME}.url`], { cwd: target, objectsOnly: true, okExitCodes: [1] }).catch((error) => {
        if (error instanceof GitError) throw new InvalidInputError(`${target} exists and is not runboard's clone`, 'repo');
        throw error;
      });
      if (url.stdout.trim() !== remote) throw new InvalidInputError(`${target} is a clone of ${url.stdout.trim() || 'nothing'}, not ${remote}`, 'repo');
      return { clonePath: await fs.realpath(target), remote };
    }
    await fs.mkdir(path.dirname(target), { recursive: true });
    const temporary = `${target}.tmp-${process.pid}`;
    await fs.rm(temporary, { recursive: true, force: true });
    await runGit(['init', '--quiet', '--bare', temporary], { cwd: path.dirname(target), objectsOnly: true, writes: true });
    await runGit(['remote', 'add', '--', REMOTE_NAME, remote], { cwd: temporary, objectsOnly: true, writes: true });
    // Renamed into place once complete, so a node stopped half way does not leave a clone without a remote.
    await fs.rename(temporary, target);
    return { clonePath: await fs.realpath(target), remote };
  });
}

/** The remote's default branch (what its HEAD names), or null when it does not say. */
export async function remoteDefaultBranch({ clonePath, remote }: CloneInfo): Promise<string | null> {
  return remoteLocks.run(clonePath, async () => {
    const { stdout } = await runGit(['ls-remote', '--symref', '--', remote, 'HEAD'], { cwd: clonePath, writes: true, config: TRANSPORT_CONFIG });
    const match = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(stdout);
    return match ? match[1] : null;
  });
}

/**
 * Fetches `branches` from the remote into their tracking refs (forced: the remote is the record).
 * Returns the branches the remote does not have (their tracking refs are left as they were).
 */
export async function fetchBranches({ clonePath, remote }: CloneInfo, branches: readonly string[]): Promise<string[]> {
  const wanted = unique(branches);
  for (const branch of wanted) checkRefText(branch, 'branch');
  return remoteLocks.run(clonePath, async () => {
    const fetch = (names: readonly string[]) =>
      runGit(
        ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', '--', remote, ...names.map((b) => `+refs/heads/${b}:${trackingRef(b)}`)],
        { cwd: clonePath, writes: true, config: TRANSPORT_CONFIG },
      );
    try {
      await fetch(wanted);
      return [];
    } catch (error) {
      if (!(error instanceof GitError) || error.kind !== 'NOT_ON_REMOTE') throw error;
    }
    // One of them is missing, and a fetch with a missing ref fetches nothing: one at a time then.
    const missing: string[] = [];
    for (const branch of wanted) {
      await fetch([branch]).catch((error) => {
        if (!(error instanceof GitError) || error.kind !== 'NOT_ON_REMOTE') throw error;
        missing.push(branch);
      });
    }
    return missing;
  });
}

/** The sha of `branch` as last fetched from (or pushed to) the remote, or null when there is none. */
export async function trackingSha(clonePath: string, branch: string): Promise<string | null> {
  return resolveCommit(clonePath, branch, 'tracking').catch((error) => {
    if (error instanceof NotFoundError) return null;
    throw error;
  });
}

/** A run's branch here (`local`) and as last fetched or pushed (`pushed`), in one cheap look; null where absent. */
export async function branchTips(clonePath: string, branch: string): Promise<{ local: string | null; pushed: string | null }> {
  checkRefText(branch, 'branch');
  const local = `refs/heads/${branch}`;
  const pushed = trackingRef(branch);
  const { stdout } = await runGit(['for-each-ref', '--format=%(objectname) %(refname)', local, pushed], { cwd: clonePath, objectsOnly: true });
  const tips = new Map(stdout.split('\n').filter(Boolean).map((line) => [line.slice(line.indexOf(' ') + 1), line.slice(0, line.indexOf(' '))]));
  return { local: tips.get(local) ?? null, pushed: tips.get(pushed) ?? null };
}

/**
 * What a push did. `REJECTED_MOVED`: not a fast-forward of the remote's branch, or another push was
 * updating it at that moment (the remote could not lock or update the ref). `REJECTED_STALE`: the
 * remote's branch was not the expected sha (someone else moved it).
 */
export type PushOutcome = 'PUSHED' | 'UP_TO_DATE' | 'REJECTED_MOVED' | 'REJECTED_STALE' | 'REJECTED';

/** Where to push and what the remote's branch must be for the push to go through. */
export interface PushInput {
  clone: CloneInfo;
  /** The commit to push. */
  sha: string;
  /** The remote's branch to set. */
  branch: string;
  /**
   * Replace the remote's branch only if it is this sha (null: only if it does not exist), even when
   * the push is not a fast-forward (a run's branch whose commit the agent amended). Without it, a
   * normal push: only a fast-forward is accepted.
   */
  expect?: string | null;
}

/**
 * Pushes `sha` to the remote's `branch` and, when the remote took it, moves the tracking ref too.
 * A refusal (not a fast-forward, a stale expectation, the remote's own hooks) is an outcome, not an
 * error; an unreachable remote is a GitError.
 */
export async function pushCommit(input: PushInput): Promise<{ outcome: PushOutcome; detail: string }> {
  const { clone: { clonePath, remote }, sha, branch } = input;
  checkRefText(branch, 'branch');
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha)) throw new InvalidInputError(`${sha} is not a commit id`, 'sha');
  const target = `refs/heads/${branch}`;
  const lease = input.expect === undefined ? [] : [`--force-with-lease=${target}:${input.expect ?? ''}`];
  return remoteLocks.run(clonePath, async () => {
    const { stdout } = await runGit(
      ['push', '--porcelain', '--no-verify', '--no-signed', '--no-follow-tags', '--no-recurse-submodules', ...lease, '--', remote, `${sha}:${target}`],
      { cwd: clonePath, writes: true, okExitCodes: [1], config: TRANSPORT_CONFIG },
    );
    // Porcelain: "<flag>\t<from>:<to>\t<summary>" per ref; "!" is a refusal, "=" up to date.
    const line = stdout.split('\n').find((l) => l.split('\t')[1]?.endsWith(`:${target}`));
    if (!line) throw new GitError(`git push reported nothing for ${target}`, 'UNKNOWN', 1, stdout);
    const [flag, , summary = ''] = line.split('\t');
    if (flag === '!') {
      const outcome = /stale info/.test(summary)
        ? 'REJECTED_STALE'
        : /non-fast-forward|fetch first|failed to update ref|failed to lock|cannot lock ref/.test(summary)
          ? 'REJECTED_MOVED'
          : 'REJECTED';
      return { outcome, detail: summary.trim() };
    }
    await runGit(['update-ref', trackingRef(branch), sha], { cwd: clonePath, objectsOnly: true, writes: true });
    return { outcome: flag === '=' ? 'UP_TO_DATE' : 'PUSHED', detail: summary.trim() };
  });
}

/**
 * The worktree of a run's `branch` on this node, at `<worktreesDir>/<last segment>`, made from the
 * branch as pushed when this node lacks it (a refine on another worker), or brought forward to it
 * when this node's copy is behind. The local branch keeps commits not yet pushed (it is ahead);
 * ConflictError when it has diverged from the remote's, or the remote lacks the branch.
 * Call `fetchBranches` first.
 */
export async function worktreeFromRemote(input: { clonePath: string; worktreesDir: string; branch: string }): Promise<string> {
  const { clonePath, branch } = input;
  checkRefText(branch, 'branch');
  const worktreePath = worktreePathFor(input.worktreesDir, branch);
  return withLocks([clonePath, worktreePath], async () => {
    const pushed = await trackingSha(clonePath, branch);
    if (!pushed) throw new ConflictError(`branch ${branch} is not on the remote`);
    const local = await branchSha(clonePath, branch);
    const diverged = () => new ConflictError(`branch ${branch} here has diverged from the remote's; nothing was changed`);
    if (await worktreeExists(worktreePath)) {
      if (local === pushed || (local && (await isAncestor(clonePath, pushed, local)))) return worktreePath; // as pushed, or ahead
      if (!local || !(await isAncestor(clonePath, local, pushed))) throw diverged();
      // Behind (another worker refined the run since): fast-forward; git refuses, writing nothing, over local edits.
      await runGit(['merge', '--ff-only', '--quiet', '--no-stat', '--no-autostash', '--no-verify-signatures', pushed], { cwd: worktreePath, writes: true });
      return worktreePath;
    }
    let start = pushed;
    if (local && local !== pushed) {
      if (await isAncestor(clonePath, pushed, local)) start = local;
      else if (!(await isAncestor(clonePath, local, pushed))) throw diverged();
    }
    if (await pathExists(worktreePath)) throw new ConflictError(`${worktreePath} already exists`, [worktreePath]);
    await runGit(['worktree', 'prune'], { cwd: clonePath, writes: true });
    await fs.mkdir(path.dirname(worktreePath), { recursive: true });
    await runGit(['worktree', 'add', '--quiet', '-B', branch, '--', worktreePath, start], { cwd: clonePath, writes: true });
    return worktreePath;
  });
}

/** What to merge into which branch of the remote, through the node's clone. */
export interface RemoteMergeInput {
  clone: CloneInfo;
  /** The run's branch, as pushed. */
  branch: string;
  /** The remote's branch to merge into. */
  into: string;
  strategy: MergeStrategy;
  /** The run's worktree on this node, if it has one: refused (ConflictError) while it has uncommitted changes. */
  worktreePath?: string | null;
  /** @default "Merge branch '<branch>'" */
  message?: string;
}

/**
 * Merges the remote's `branch` into its `into` (a merge commit, or one squashed commit), computed in
 * the clone's object store, then pushes `into` normally (no force). If the push is refused because
 * `into` moved meanwhile (another merge), fetches and tries once more; then CONFLICT. A conflicting,
 * empty or already-merged merge returns `ok: false`. Whenever the result is not ok, or an error is
 * thrown, the remote's `into` is as it was. Callers serialize merges cluster-wide; this serializes
 * them within the process.
 */
export async function mergeAndPush(input: RemoteMergeInput): Promise<MergeResult> {
  const { clone, branch, into, strategy } = input;
  const { clonePath } = clone;
  if (strategy !== 'MERGE' && strategy !== 'SQUASH') throw new InvalidInputError(`unknown merge strategy ${String(strategy)}`, 'strategy');
  checkRefText(branch, 'branch');
  checkRefText(into, 'branch');
  const message = input.message ?? `Merge branch '${branch}'`;
  if (typeof message !== 'string' || message.trim() === '' || message.includes('\0')) {
    throw new InvalidInputError('merge message must be non-empty text', 'message');
  }
  return mergeLocks.run(clonePath, async () => {
    await refuseUncommitted(input.worktreePath ? path.resolve(input.worktreePath) : null);
    for (let attempt = 1; ; attempt++) {
      const missing = await fetchBranches(clone, [into, branch]);
      if (missing.includes(into)) throw new ConflictError(`the remote has no branch ${into} to merge into`);
      if (missing.includes(branch)) throw new NotFoundError('branch', branch);
      const [intoSha, branchSha] = await Promise.all([resolveCommit(clonePath, into, 'tracking'), resolveCommit(clonePath, branch, 'tracking')]);
      if (await isAncestor(clonePath, branchSha, intoSha)) return notMerged(`${branch} is already merged into ${into}; nothing to merge`);
      const merged = await mergeTrees(clonePath, intoSha, branchSha);
      if (merged.conflicts.length > 0) {
        const files = merged.conflicts.length === 1 ? '1 file' : `${merged.conflicts.length} files`;
        return notMerged(`merging ${branch} into ${into} conflicts in ${files}; ${into} was not touched`, merged.conflicts);
      }
      if (strategy === 'SQUASH' && merged.tree === (await treeOf(clonePath, intoSha))) {
        return notMerged(`squashing ${branch} changes nothing: its changes are already on ${into}`);
      }
      const parents = strategy === 'MERGE' ? [intoSha, branchSha] : [intoSha];
      const mergeSha = await commitTree(clonePath, merged.tree, parents, message, await fallbackIdentity(clonePath));
      const pushed = await pushCommit({ clone, sha: mergeSha, branch: into });
      if (pushed.outcome === 'PUSHED' || pushed.outcome === 'UP_TO_DATE') {
        const how = strategy === 'MERGE' ? 'merge commit' : 'squashed';
        return { ok: true, sha: mergeSha, conflictingPaths: [], message: `merged ${branch} into ${into} (${how}) as ${mergeSha.slice(0, 12)} and pushed it` };
      }
      if (pushed.outcome === 'REJECTED_MOVED' && attempt === 1) continue; // another merge landed first: merge onto it
      const why = pushed.outcome === 'REJECTED_MOVED' ? `${into} kept moving on the remote` : `the remote refused the push (${pushed.detail})`;
      throw new ConflictError(`${why} while ${branch} was being merged; ${into} was not changed, try again`);
    }
  });
}

const mergeLocks = new KeyedMutex();
