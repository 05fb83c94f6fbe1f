/**
 * Review of a run: its commits, the changed files with their stats, one file's diff at a time
 * (diff2html with highlight.js, loaded only when a diff is opened), the worktree's uncommitted work,
 * merge or squash with the conflicting paths when refused, and the playtest.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Run, RunboardClient, RunDiff } from '../../sdk/client.js';
import * as ops from '../../sdk/generated/graphql.js';
import { inWords } from './api.js';

type Uncommitted = NonNullable<ops.RunUncommittedQuery['run']['uncommitted']>;

export function Review({ client, run, act }: { client: RunboardClient; run: Run; act: (m: () => Promise<unknown>) => Promise<void> }) {
  const [diff, setDiff] = useState<RunDiff | undefined>();
  const [uncommitted, setUncommitted] = useState<Uncommitted | null | undefined>();
  const [open, setOpen] = useState<{ path: string; patch: string; truncated: boolean } | undefined>();
  const [conflicts, setConflicts] = useState<{ message?: string | null; paths: string[] } | undefined>();
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    Promise.all([client.runDiff(run.id), client.request(ops.RunUncommittedDocument, { id: run.id })]).then(
      ([loaded, { run: withWork }]) => (setDiff(loaded), setUncommitted(withWork.uncommitted)),
      (failure) => setError(inWords(failure)),
    );
  }, [client, run.id, run.status, run.mergedSha]);

  const openFile = async (path: string) => {
    try {
      const { run: withFile } = await client.request(ops.RunFileDiffDocument, { id: run.id, path });
      if (withFile.fileDiff) setOpen({ path, patch: withFile.fileDiff.patch, truncated: withFile.fileDiff.truncated });
    } catch (failure) {
      setError(inWords(failure));
    }
  };

  const merge = (strategy: ops.MergeStrategy) =>
    act(async () => {
      const result = await client.mergeRun(run.id, strategy);
      setConflicts(result.ok ? undefined : { message: result.message, paths: result.conflictingPaths });
      return result.run;
    });

  const playtest = run.playtest;
  return (
    <div class="review">
      {error && <p role="alert" class="error">{error}</p>}
      {!diff ? (
        !error && <p class="loading">Loading the changes…</p>
      ) : (
        <>
          <h3>Commits</h3>
          {diff.commits?.length ? (
            <ul class="commits">
              {diff.commits.map((commit) => (
                <li key={commit.sha}><code>{commit.shortSha}</code> {commit.subject}</li>
              ))}
            </ul>
          ) : (
            <p class="empty">No commits.</p>
          )}
          <h3>Files {diff.diff && <small>{diff.diff.stat.filesChanged} changed, +{diff.diff.stat.insertions} −{diff.diff.stat.deletions}</small>}</h3>
          <FileList files={diff.diff?.files ?? []} onOpen={openFile} />
          {open && <FileDiff {...open} />}
          <div class="merge">
            {run.mergedSha ? (
              <p class="status">Merged as <code>{run.mergedSha.slice(0, 10)}</code>.</p>
            ) : (
              <>
                <button type="button" onClick={() => merge('MERGE')}>Merge</button>
                <button type="button" onClick={() => merge('SQUASH')}>Squash and merge</button>
              </>
            )}
            {conflicts && (
              <div role="alert" class="error">
                Not merged: {conflicts.message ?? 'conflicts'}.
                <ul>{conflicts.paths.map((p) => <li key={p}><code>{p}</code></li>)}</ul>
              </div>
            )}
          </div>
        </>
      )}
      <h3>Uncommitted work</h3>
      {uncommitted === undefined ? null : uncommitted === null || uncommitted.files.length === 0 ? (
        <p class="empty">None.</p>
      ) : (
        <>
          <FileList files={uncommitted.files} />
          <FileDiff path="uncommitted" patch={uncommitted.patch} truncated={uncommitted.truncated} />
        </>
      )}
      <h3>Playtest</h3>
      <p>
        {playtest?.running ? `Running: ${playtest.command}` : playtest ? `Last: ${playtest.command}, ended ${playtest.exitCode ?? playtest.signal ?? ''}` : 'Not started.'}{' '}
        {playtest?.running ? (
          <button type="button" onClick={() => act(() => client.stopPlaytest(run.id))}>Stop playtest</button>
        ) : (
          <button type="button" onClick={() => act(() => client.startPlaytest(run.id))}>Start playtest</button>
        )}{' '}
        <small>Its output appears in the console.</small>
      </p>
    </div>
  );
}

function FileList({ files, onOpen }: { files: readonly { path: string; status: string; additions: number; deletions: number; binary?: boolean }[]; onOpen?: (path: string) => void }) {
  if (files.length === 0) return <p class="empty">No changed files.</p>;
  return (
    <ul class="files">
      {files.map((file) => (
        <li key={file.path}>
          <span class={`file-status ${file.status.toLowerCase()}`}>{file.status.toLowerCase()}</span>{' '}
          {onOpen ? <button type="button" class="link" onClick={() => onOpen(file.path)}>{file.path}</button> : file.path}{' '}
          <span class="plus">+{file.additions}</span> <span class="minus">−{file.deletions}</span>
        </li>
      ))}
    </ul>
  );
}

/** One patch, drawn by diff2html with highlight.js; both load on first use, so the board stays small. */
function FileDiff({ path, patch, truncated }: { path: string; patch: string; truncated: boolean }) {
  const target = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let current = true;
    void import('./diff-view.js').then(({ drawDiff }) => current && target.current && drawDiff(target.current, patch));
    return () => void (current = false);
  }, [patch]);
  return (
    <div class="file-diff" data-path={path}>
      <div ref={target} />
      {truncated && <p class="note">The patch was cut at the size limit.</p>}
    </div>
  );
}
