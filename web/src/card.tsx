/**
 * One card, over the board: edit its title and description, tags, references and comments, see its
 * runs, and start a run with an agent from Query.agents (the default preselected) and an editable prompt.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Run, RunboardClient } from '../../sdk/client.js';
import * as ops from '../../sdk/generated/graphql.js';
import { inWords } from './api.js';
import { runLabel } from './board.js';

type CardDetail = ops.CardQuery['card'];
type Agent = ops.AgentsQuery['agents'][number];

export function CardPanel({ client, cardId }: { client: RunboardClient; cardId: string }) {
  const [card, setCard] = useState<CardDetail | undefined>();
  const [runs, setRuns] = useState<Run[]>([]);
  const [error, setError] = useState<string | undefined>();
  const [version, setVersion] = useState(0);
  const refresh = () => setVersion((v) => v + 1);

  useEffect(() => {
    Promise.all([client.card(cardId), client.runs({ cardId, first: 20 })]).then(
      ([loaded, loadedRuns]) => (setCard(loaded), setRuns(loadedRuns)),
      (failure) => setError(inWords(failure)),
    );
  }, [client, cardId, version]);

  /** Runs a mutation, shows its error in words, and reloads the card. */
  const act = async (mutation: () => Promise<unknown>) => {
    try {
      await mutation();
      setError(undefined);
    } catch (failure) {
      setError(inWords(failure));
    }
    refresh();
  };

  return (
    <div class="overlay" onClick={(event) => event.target === event.currentTarget && (location.hash = '#/')}>
      <section class="panel" role="dialog" aria-label="Card" onKeyDown={(event) => event.key === 'Escape' && (location.hash = '#/')}>
        <a class="close" href="#/" aria-label="Close">×</a>
        {error && <p role="alert" class="error">{error}</p>}
        {!card ? (
          !error && <p class="loading">Loading the card…</p>
        ) : (
          <>
            <CardFields card={card} onSave={(input) => act(() => client.request(ops.UpdateCardDocument, { id: card.id, input }))} />
            <Tags card={card} client={client} act={act} />
            <h3>References</h3>
            <ul class="references">
              {card.references.map((reference) => (
                <li key={reference.id}>
                  <span class="kind">{reference.kind.toLowerCase()}</span> {reference.target} {reference.note && <em>{reference.note}</em>}{' '}
                  <button type="button" class="link" onClick={() => act(() => client.request(ops.RemoveCardReferenceDocument, { id: reference.id }))}>remove</button>
                </li>
              ))}
            </ul>
            <ReferenceForm onAdd={(input) => act(() => client.request(ops.AddCardReferenceDocument, { cardId: card.id, input }))} />
            <h3>Comments ({card.comments.totalCount})</h3>
            <ul class="comments">
              {card.comments.edges.map(({ node }) => (
                <li key={node.id}>
                  <strong>{node.author}</strong>: {node.body}{' '}
                  <button type="button" class="link" onClick={() => act(() => client.request(ops.DeleteCommentDocument, { id: node.id }))}>delete</button>
                </li>
              ))}
            </ul>
            <TextForm label="Comment" button="Add comment" onSubmit={(body) => act(() => client.addComment(card.id, body, 'board'))} />
            <h3>Runs</h3>
            {runs.length === 0 ? (
              <p class="empty">No runs yet.</p>
            ) : (
              <ul class="runs">
                {runs.map((run) => (
                  <li key={run.id}>
                    <a href={`#/run/${encodeURIComponent(run.id)}`}>{run.agent}: {runLabel(run)}</a> <time>{new Date(run.createdAt).toLocaleString()}</time>
                  </li>
                ))}
              </ul>
            )}
            <StartRunForm client={client} cardId={card.id} defaultPrompt={card.agentPrompt} onError={setError} />
          </>
        )}
      </section>
    </div>
  );
}

function CardFields({ card, onSave }: { card: NonNullable<CardDetail>; onSave: (input: ops.UpdateCardInput) => void }) {
  const [title, setTitle] = useState(card.title);
  const [description, setDescription] = useState(card.description ?? '');
  return (
    <form
      class="card-fields"
      onSubmit={(event) => {
        event.preventDefault();
        onSave({ title, description });
      }}
    >
      <label>Title <input value={title} onInput={(e) => setTitle(e.currentTarget.value)} required /></label>
      <label>Description <textarea rows={4} value={description} onInput={(e) => setDescription(e.currentTarget.value)} /></label>
      <button type="submit">Save</button>
    </form>
  );
}

function Tags({ card, client, act }: { card: NonNullable<CardDetail>; client: RunboardClient; act: (m: () => Promise<unknown>) => void }) {
  return (
    <>
      <h3>Tags</h3>
      <ul class="tags">
        {card.tags.map((tag) => (
          <li key={tag}>
            {tag} <button type="button" class="link" aria-label={`Remove tag ${tag}`} onClick={() => act(() => client.request(ops.RemoveCardTagsDocument, { id: card.id, tags: [tag] }))}>×</button>
          </li>
        ))}
      </ul>
      <TextForm label="Tag" button="Add tag" onSubmit={(tag) => act(() => client.request(ops.AddCardTagsDocument, { id: card.id, tags: [tag] }))} />
    </>
  );
}

function ReferenceForm({ onAdd }: { onAdd: (input: ops.ReferenceInput) => void }) {
  const [kind, setKind] = useState<ops.ReferenceKind>('FILE');
  const [target, setTarget] = useState('');
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        if (!target.trim()) return;
        onAdd({ kind, target: target.trim() });
        setTarget('');
      }}
    >
      <select aria-label="Reference kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as ops.ReferenceKind)}>
        {(['FILE', 'URL', 'CARD', 'NOTE'] as const).map((k) => <option key={k} value={k}>{k.toLowerCase()}</option>)}
      </select>
      <input aria-label="Reference target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
      <button type="submit">Add reference</button>
    </form>
  );
}

/** One text field and a button; clears itself after submitting. */
export function TextForm({ label, button, onSubmit }: { label: string; button: string; onSubmit: (text: string) => void }) {
  const [text, setText] = useState('');
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        if (!text.trim()) return;
        onSubmit(text.trim());
        setText('');
      }}
    >
      <input aria-label={label} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      <button type="submit">{button}</button>
    </form>
  );
}

function StartRunForm({ client, cardId, defaultPrompt, onError }: { client: RunboardClient; cardId: string; defaultPrompt: string; onError: (error: string) => void }) {
  const [agents, setAgents] = useState<Agent[] | undefined>();
  const [agent, setAgent] = useState('');
  const [prompt, setPrompt] = useState(defaultPrompt);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    client.request(ops.AgentsDocument).then(
      ({ agents: loaded }) => (setAgents(loaded), setAgent(loaded.find((a) => a.isDefault)?.name ?? loaded[0]?.name ?? '')),
      (failure) => onError(inWords(failure)),
    );
  }, [client]);
  return (
    <form
      class="start-run"
      onSubmit={async (event) => {
        event.preventDefault();
        setBusy(true);
        try {
          const run = await client.startRun({ cardId, agent, prompt: prompt.trim() || undefined });
          location.hash = `#/run/${encodeURIComponent(run.id)}`;
        } catch (failure) {
          onError(inWords(failure));
        } finally {
          setBusy(false);
        }
      }}
    >
      <h3>Start a run</h3>
      <label>
        Agent{' '}
        <select value={agent} onChange={(e) => setAgent(e.currentTarget.value)} disabled={!agents}>
          {agents?.map((a) => (
            <option key={a.name} value={a.name} disabled={!a.available}>
              {a.name}{a.isDefault ? ' (default)' : ''}{a.available ? '' : ' (not installed)'}
            </option>
          ))}
        </select>
      </label>
      <label>Prompt <textarea rows={5} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} /></label>
      <button type="submit" disabled={busy || !agent}>{busy ? 'Starting…' : 'Start run'}</button>
    </form>
  );
}
