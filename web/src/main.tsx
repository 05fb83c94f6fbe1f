/**
 * The board UI's entry: asks for the token when the server wants one (kept for the tab), then shows
 * the board, a card, or a run, by the address's hash (#/, #/card/<id>, #/run/<id>).
 */
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { connect, inWords, isUnauthenticated, savedToken, saveToken } from './api.js';
import { Board } from './board.js';
import { CardPanel } from './card.js';
import { RunView } from './run.js';
import type { RunboardClient } from '../../sdk/client.js';
import { BoardDocument } from '../../sdk/generated/graphql.js';
import './style.css';

type Route = { view: 'board' } | { view: 'card'; id: string } | { view: 'run'; id: string };

function parseRoute(hash: string): Route {
  const [, view, id] = /^#\/(card|run)\/(.+)$/.exec(hash) ?? [];
  return view && id ? { view: view as 'card' | 'run', id: decodeURIComponent(id) } : { view: 'board' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

/** Asks for the token; the page checks it with one query before showing anything. */
function TokenForm({ error, onToken }: { error?: string; onToken: (token: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <form
      class="token-form"
      onSubmit={(event) => {
        event.preventDefault();
        if (value.trim()) onToken(value.trim());
      }}
    >
      <h1>runboard</h1>
      <label for="token">This server needs its token (RUNBOARD_TOKEN). It is kept for this tab only.</label>
      <input id="token" type="password" autocomplete="off" autofocus value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Open the board</button>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

function App() {
  const [token, setToken] = useState(savedToken);
  const [state, setState] = useState<{ phase: 'checking' | 'ready' | 'needs-token' | 'failed'; error?: string }>({ phase: 'checking' });
  const client = useMemo(() => connect(token), [token]);
  const route = useRoute();

  useEffect(() => {
    setState({ phase: 'checking' });
    // The cheapest call there is (one card): asking for agents would run each agent's CLI for its version.
    client.request(BoardDocument, { first: 1 }).then(
      () => setState({ phase: 'ready' }),
      (error) => {
        if (!isUnauthenticated(error)) return setState({ phase: 'failed', error: inWords(error) });
        saveToken(undefined);
        setState({ phase: 'needs-token', error: token ? 'That token was refused.' : undefined });
      },
    );
    return () => void client.close();
  }, [client]);

  if (state.phase === 'checking') return <p class="loading">Connecting…</p>;
  if (state.phase === 'needs-token')
    return (
      <TokenForm
        error={state.error}
        onToken={(value) => {
          saveToken(value);
          setToken(value);
        }}
      />
    );
  if (state.phase === 'failed') return <p role="alert" class="error page-error">{state.error}</p>;
  return <Shell client={client} route={route} />;
}

function Shell({ client, route }: { client: RunboardClient; route: Route }) {
  return (
    <>
      <header class="top">
        <a href="#/" class="brand">runboard</a>
        <a href="/graphql" class="graphiql-link">GraphiQL</a>
      </header>
      <main>
        {/* The board stays mounted under a card, so it stays live and keeps its place. */}
        <Board client={client} hidden={route.view === 'run'} />
        {route.view === 'card' && <CardPanel client={client} cardId={route.id} />}
        {route.view === 'run' && <RunView key={route.id} client={client} runId={route.id} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
