/**
 * The only module in runboard that runs git.
 *
 * Every call goes through `runGit`: an argument array (never a shell string), a timeout, no stdin,
 * a fixed C locale and no pager, and machine output (`-z`, `--porcelain`) only. Caller text never
 * becomes a flag: refs are validated and resolved to a sha first, and paths follow `--`.
 * Operations that touch one checkout (the main one or a run's worktree) are serialized per path.
 * Nothing here knows about GraphQL or the database: these are functions over paths.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ConflictError, InvalidInputError, NotFoundError, RunboardError } from './errors.js';
import { KeyedMutex } from './lock.js';

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
export type GitErrorKind = 'NOT_A_REPOSITORY' | 'CONFLICT' | 'DIRTY' | 'BAD_REVISION' | 'TIMEOUT' | 'UNKNOWN';

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
  /** Exit codes that are answers rather than failures (1 from `merge-base --is-ancestor`). */
  okExitCodes?: readonly number[];
  /** Extra `-c key=value` settings. */
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

function gitEnvironment(writes: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of REPOSITORY_VARIABLES) delete env[name];
  Object.assign(env, {
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    LC_ALL: 'C',
    LANG: 'C',
    // A path that starts with ':' or holds '*' is a file name, never pathspec magic.
    GIT_LITERAL_PATHSPECS: '1',
  });
  if (!writes) env.GIT_OPTIONAL_LOCKS = '0';
  return env;
}

/** Git processes running at once; more wait, so one wide query cannot fork hundreds. @default 8 */
export const MAX_CONCURRENT_GIT = 8;
let gitRunning = 0;
const gitWaiting: (() => void)[] = [];

async function runGit(args: readonly string[], opts: GitOptions): Promise<GitResult> {
  // A finishing call hands its slot straight to the next waiter, so the count never overshoots.
  if (gitRunning >= MAX_CONCURRENT_GIT) await new Promise<void>((resolve) => gitWaiting.push(resolve));
  else gitRunning += 1;
  try {
    return await runGitNow(args, opts);
  } finally {
    const next = gitWaiting.shift();
    if (next) next();
    else gitRunning -= 1;
  }
}

async function runGitNow(args: readonly string[], opts: GitOptions): Promise<GitResult> {
  const globalArgs = ['--no-pager', '-c', 'core.quotepath=off'];
  for (const [key, value] of Object.entries(opts.config ?? {})) globalArgs.push('-c', `${key}=${value}`);
  const limit = opts.stdoutLimit;
  const subprocess = execa('git', [...globalArgs, ...args], {
    cwd: opts.cwd,
    env: gitEnvironment(opts.writes ?? false),
    extendEnv: false,
    stdin: 'ignore',
    timeout: GIT_TIMEOUT_MS,
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
  const detail = kind === 'TIMEOUT' ? `timed out after ${GIT_TIMEOUT_MS} ms` : firstLine(stderr) || result.shortMessage;
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

/** Resolves a local branch (`refs/heads/…`) or, for `base`, any revision, to a commit sha. */
async function resolveCommit(cwd: string, name: string, kind: 'branch' | 'base'): Promise<string> {
  checkRefText(name, kind);
  const ref = kind === 'branch' ? `refs/heads/${name}` : name;
  const { stdout, exitCode } = await runGit(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
    cwd,
    okExitCodes: [1],
  });
  if (exitCode !== 0) throw new NotFoundError(kind === 'branch' ? 'branch' : 'revision', name);
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
  const { exitCode } = await runGit(['merge-base', '--is-ancestor', ancestor, descendant], { cwd, okExitCodes: [1] });
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
    runGit(['symbolic-ref', '--quiet', 'HEAD'], { cwd, okExitCodes: [1] }),
    runGit(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { cwd, okExitCodes: [1] }),
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
  let root: string;
  try {
    root = (await runGit(['rev-parse', '--show-toplevel'], { cwd: absolute })).stdout.trim();
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
  const markerPaths = (await runGit(['rev-parse', ...args], { cwd })).stdout.split('\n');
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
  return withLocks([root], async () => {
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
  const check = await runGit(['check-ref-format', '--branch', name], { cwd: os.tmpdir(), okExitCodes: [1, 128] });
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
  return parseWorktreeList((await runGit(['worktree', 'list', '--porcelain', '-z'], { cwd: repoRoot })).stdout);
}

/** Whether `worktreePath` is a directory that is the top level of a git checkout. Never throws. */
export async function worktreeExists(worktreePath: string): Promise<boolean> {
  try {
    if (!(await isDirectory(worktreePath))) return false;
    const real = await fs.realpath(worktreePath);
    const { stdout } = await runGit(['rev-parse', '--show-toplevel'], { cwd: real });
    return (await fs.realpath(stdout.trim())) === real;
  } catch {
    return false;
  }
}

/** Forgets worktrees whose directories are gone. Returns the paths it forgot. */
export async function pruneWorktrees(repoRoot: string): Promise<string[]> {
  return withLocks([repoRoot], async () => {
    const before = await listWorktrees(repoRoot);
    await runGit(['worktree', 'prune'], { cwd: repoRoot, writes: true });
    const after = new Set((await listWorktrees(repoRoot)).map((w) => w.path));
    return before.filter((w) => !after.has(w.path)).map((w) => w.path);
  });
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
}

/** A new worktree on a new branch. */
export interface CreatedWorktree {
  path: string;
  branch: string;
  /** Main checkout's branch at creation, or null when it was detached. */
  baseBranch: string | null;
  baseSha: string;
}

/**
 * Creates branch `branchNameFor(title, runId)` at the main checkout's HEAD and checks it out in
 * `<worktreesDir>/<last segment of the branch>`. ConflictError when the branch or directory exists.
 */
export async function createWorktree(input: CreateWorktreeInput): Promise<CreatedWorktree> {
  const branch = branchNameFor(input.title, input.runId);
  await validateBranchName(branch);
  const worktreesDir = path.resolve(input.worktreesDir);
  const worktreePath = path.resolve(worktreesDir, branch.slice(branch.lastIndexOf('/') + 1));
  if (!worktreePath.startsWith(worktreesDir + path.sep)) {
    throw new InvalidInputError(`worktree path ${worktreePath} would leave ${worktreesDir}`, 'title');
  }
  const cwd = input.repoRoot;
  return withLocks([cwd, worktreePath], async () => {
    const head = await readHead(cwd);
    if (await pathExists(worktreePath)) throw new ConflictError(`${worktreePath} already exists`, [worktreePath]);
    const existing = await runGit(['show-ref', '--verify', '--quiet', `refs/heads/${branch}`], { cwd, okExitCodes: [1] });
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
  /** Keep the branch when it has commits the main checkout's HEAD lacks. @default true */
  keepBranchIfUnmerged?: boolean;
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
    const head = await readHead(repoRoot);
    const { stdout } = await runGit(['rev-list', '--count', `${head.headSha}..${tip}`], { cwd: repoRoot });
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
}

async function resolveRange({ repoRoot, branch, base }: BranchRange): Promise<{ branchSha: string; baseSha: string }> {
  const [branchSha, baseSha] = await Promise.all([
    resolveCommit(repoRoot, branch, 'branch'),
    resolveCommit(repoRoot, base, 'base'),
  ]);
  return { branchSha, baseSha };
}

/** The two trees a branch's diff compares: where it left base (the empty tree if it never shared history), and its tip. */
async function branchDiffRevisions(input: BranchRange): Promise<[string, string]> {
  const { branchSha, baseSha } = await resolveRange(input);
  const { stdout, exitCode } = await runGit(['merge-base', baseSha, branchSha], { cwd: input.repoRoot, okExitCodes: [1] });
  if (exitCode === 0) return [stdout.trim(), branchSha];
  // stdin is 'ignore', so this hashes zero bytes: the empty tree's id, written nowhere.
  return [(await runGit(['hash-object', '-t', 'tree', '--stdin'], { cwd: input.repoRoot })).stdout.trim(), branchSha];
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
  const { branchSha, baseSha } = await resolveRange(input);
  const { stdout } = await runGit(
    ['log', '-z', `--format=${LOG_FORMAT}`, '--no-show-signature', `--max-count=${limit + 1}`, `${baseSha}..${branchSha}`, '--'],
    { cwd: input.repoRoot },
  );
  const commits = parseLog(stdout);
  return { commits: commits.slice(0, limit), truncated: commits.length > limit };
}

/** Commits the branch has that base lacks (`ahead`) and the reverse (`behind`). */
export async function aheadBehind(input: BranchRange): Promise<{ ahead: number; behind: number }> {
  const { branchSha, baseSha } = await resolveRange(input);
  const range = `${baseSha}...${branchSha}`;
  const { stdout } = await runGit(['rev-list', '--left-right', '--count', range, '--'], { cwd: input.repoRoot });
  const [behind, ahead] = stdout.trim().split(/\s+/).map(Number);
  return { ahead, behind };
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

/** The diff options every diff here shares: no colour or external tools, renames detected. */
const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '-M'];

/** Lists changed files by combining `--name-status -z` (status, renames) and `--numstat -z` (line counts). */
async function listChanges(cwd: string, revisions: readonly string[]): Promise<FileChange[]> {
  const [names, counts] = await Promise.all([
    runGit(['diff', ...DIFF_FLAGS, '--name-status', '-z', ...revisions, '--'], { cwd }),
    runGit(['diff', ...DIFF_FLAGS, '--numstat', '-z', ...revisions, '--'], { cwd }),
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
    { cwd, stdoutLimit: maxBytes },
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
  const revisions = await branchDiffRevisions(input);
  const [files, patch] = await Promise.all([
    listChanges(input.repoRoot, revisions),
    readPatch(input.repoRoot, revisions, [], maxBytes),
  ]);
  return { files, totals: totalsOf(files), ...patch };
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
  const revisions = await branchDiffRevisions(input);
  const files = await listChanges(input.repoRoot, revisions);
  const file = files.find((f) => f.path === filePath || f.previousPath === filePath);
  if (!file) throw new NotFoundError('changed file', filePath);
  // Both sides of a rename must be in the pathspec, or git shows an add and a delete.
  const paths = file.previousPath ? [file.previousPath, file.path] : [file.path];
  return { file, ...(await readPatch(input.repoRoot, revisions, paths, maxBytes)) };
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
  if (!(await worktreeExists(worktreePath))) throw new NotFoundError('worktree', worktreePath);
  const cwd = path.resolve(worktreePath);
  return withLocks([cwd], async () => {
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

/** MERGE makes a merge commit (`--no-ff`); SQUASH makes one ordinary commit. */
export type MergeStrategy = 'MERGE' | 'SQUASH';

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
}

/** Outcome of a merge; when `ok` is false the main checkout is exactly as it was. */
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

/** Commit identity to pass with `-c` only for keys the repository does not configure. */
async function fallbackIdentity(cwd: string): Promise<Record<string, string>> {
  const fallback: Record<string, string> = { 'user.name': 'runboard', 'user.email': 'runboard@localhost' };
  const config: Record<string, string> = {};
  for (const key of Object.keys(fallback)) {
    const { stdout, exitCode } = await runGit(['config', '--get', key], { cwd, okExitCodes: [1] });
    if (exitCode !== 0 || stdout.trim() === '') config[key] = fallback[key];
  }
  return config;
}

/**
 * Untracked or ignored files in main that the merge would write over. git refuses for untracked
 * files but silently overwrites ignored ones (a user's `.env`), and restoring after a conflict
 * would then delete them, so both are refused up front.
 */
async function filesInTheWay(cwd: string, untracked: readonly string[], headSha: string, branchSha: string) {
  if (untracked.length === 0) return [];
  // `a...b` diffs from the merge base: exactly the files the merge would write.
  const { stdout } = await runGit(['diff', '--no-renames', '--name-only', '-z', `${headSha}...${branchSha}`, '--'], { cwd });
  const changed = splitNul(stdout);
  // Untracked directories are listed as "dir/"; a file the branch adds at "dir" collides too.
  return changed.filter((p) => untracked.some((u) => u === p || (u.endsWith('/') && (p.startsWith(u) || u === `${p}/`))));
}

/**
 * Puts the main checkout back at `origHead`. Safe because we verified main had no tracked changes
 * before merging: `reset --hard` only rewrites tracked files and the index, never untracked files,
 * and it also clears MERGE_HEAD and SQUASH_MSG. One command covers a conflict, an empty squash,
 * a rejecting hook and a timeout alike.
 */
async function restoreMain(cwd: string, origHead: string): Promise<void> {
  await runGit(['reset', '--hard', '--quiet', origHead], { cwd, writes: true });
}

/** Runs a merge command; on failure returns the conflicted paths, or rethrows when there are none. */
async function attemptMerge(cwd: string, args: string[], config: Record<string, string>): Promise<string[]> {
  try {
    await runGit(args, { cwd, writes: true, config });
    return [];
  } catch (error) {
    if (!(error instanceof GitError)) throw error;
    const { conflicted } = await scanStatus(cwd);
    if (conflicted.length > 0) return conflicted;
    throw error;
  }
}

/**
 * Merges `branch` into the main checkout's current branch with a merge commit (MERGE, `--no-ff`)
 * or one squashed commit (SQUASH). Refuses with ConflictError, before touching anything, when main
 * is detached, mid-operation, has changes to tracked files, or untracked files in the way, or when
 * the run's worktree has uncommitted changes. Conflicts, an already-merged branch or an empty squash
 * return `ok: false` with main's HEAD, index and files exactly as before.
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
    if (worktreePath && (await worktreeExists(worktreePath))) {
      const run = await scanStatus(worktreePath);
      const runChanges = unique([...run.conflicted, ...run.staged, ...run.unstaged, ...run.untracked]);
      if (runChanges.length > 0) {
        throw new ConflictError(`the run's worktree ${worktreePath} has uncommitted changes`, runChanges);
      }
    }
    const into = main.branch;
    if (await isAncestor(repoRoot, branchSha, main.headSha)) {
      return notMerged(`${branch} is already merged into ${into}; nothing to merge`);
    }
    const blocked = await filesInTheWay(repoRoot, [...main.untracked, ...main.ignored], main.headSha, branchSha);
    if (blocked.length > 0) {
      throw new ConflictError(`merging ${branch} would overwrite untracked or ignored files in ${repoRoot}`, blocked);
    }

    const config = await fallbackIdentity(repoRoot);
    // The branch was resolved to a sha above, so nothing caller-supplied reaches git as a revision.
    const mergeArgs =
      strategy === 'MERGE'
        ? ['merge', '--no-ff', '--no-edit', '--no-autostash', '-m', message, '--', branchSha]
        : ['merge', '--squash', '--no-autostash', '--', branchSha];
    try {
      const conflictingPaths = await attemptMerge(repoRoot, mergeArgs, config);
      if (conflictingPaths.length > 0) {
        await restoreMain(repoRoot, main.headSha);
        const files = conflictingPaths.length === 1 ? '1 file' : `${conflictingPaths.length} files`;
        const what = `merging ${branch} into ${into} conflicts in ${files}; the merge was aborted and ${into} is unchanged`;
        return notMerged(what, conflictingPaths);
      }
      if (strategy === 'SQUASH') {
        const staged = await runGit(['diff', '--cached', '--quiet'], { cwd: repoRoot, okExitCodes: [1] });
        if (staged.exitCode === 0) {
          await restoreMain(repoRoot, main.headSha);
          return notMerged(`squashing ${branch} changes nothing: its changes are already on ${into}`);
        }
        await runGit(['commit', '--quiet', '-m', message], { cwd: repoRoot, writes: true, config });
      }
    } catch (error) {
      await restoreMain(repoRoot, main.headSha);
      if (error instanceof GitError && error.kind === 'DIRTY') {
        throw new ConflictError(`merging ${branch} would overwrite local files in ${repoRoot}: ${firstLine(error.stderr)}`);
      }
      throw error;
    }
    const sha = (await readHead(repoRoot)).headSha;
    const how = strategy === 'MERGE' ? 'merge commit' : 'squashed';
    return { ok: true, sha, conflictingPaths: [], message: `merged ${branch} into ${into} (${how}) as ${sha.slice(0, 12)}` };
  });
}
