/**
 * The board: columns in order, cards in position order, each with its latest run. Cards move by
 * drag and drop (SortableJS) or by keyboard (Alt+arrows); every change, this page's or anyone
 * else's, arrives through boardEventBatches (the SDK's followBoardEvents), which the board follows
 * from its last seq.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import Sortable from 'sortablejs';
import type { Run, RunboardClient } from '../../sdk/client.js';
import * as ops from '../../sdk/generated/graphql.js';
import { follow, inWords } from './api.js';

type CardColumn = ops.CardColumn;

/** The columns in board order. */
export const COLUMNS: readonly CardColumn[] = ['BACKLOG', 'TODO', 'IN_PROGRESS', 'REVIEW', 'DONE'];
/** A column's name for people. */
export const columnName = (column: CardColumn) => column.replace('_', ' ').toLowerCase().replace(/^./, (c) => c.toUpperCase());

/** A card with its newest run, if it has one. */
type BoardCard = ops.BoardWithLatestRunsQuery['cards']['edges'][number]['node'];
type LatestRun = BoardCard['runs']['edges'][number]['node'];

interface BoardData {
  cards: BoardCard[];
}

/** Every card in board order with its newest run, 100 cards a request. */
async function loadBoard(client: RunboardClient): Promise<BoardData> {
  const cards: BoardCard[] = [];
  for (let after: string | null | undefined; ; ) {
    const { cards: page } = await client.request(ops.BoardWithLatestRunsDocument, { first: 100, after });
    cards.push(...page.edges.map((edge) => edge.node));
    if (!page.pageInfo.hasNextPage) return { cards };
    after = page.pageInfo.endCursor;
  }
}

/** A run's state in a word or two: merged wins over its status. */
export const runLabel = (run: Pick<Run, 'status' | 'mergedSha'>) => (run.mergedSha ? 'merged' : run.status.toLowerCase());

export function Board({ client, hidden }: { client: RunboardClient; hidden?: boolean }) {
  const [data, setData] = useState<BoardData | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [live, setLive] = useState<'live' | 'reconnecting'>('live');
  const [seq, setSeq] = useState(0);

  // Reload on every board event, coalesced: a burst (the history replayed at start) costs one load.
  const reload = useRef<() => void>(() => {});
  useEffect(() => {
    let pending: ReturnType<typeof setTimeout> | undefined;
    let generation = 0;
    const run = () => {
      const mine = ++generation;
      loadBoard(client).then(
        (loaded) => mine === generation && (setData(loaded), setError(undefined)),
        (failure) => mine === generation && setError(inWords(failure)),
      );
    };
    reload.current = () => {
      clearTimeout(pending);
      pending = setTimeout(run, 30);
    };
    const stop = new AbortController();
    // The latest seq first, then the cards: a change between the two is replayed, and the history before it is skipped.
    const since = client.request(ops.BoardSeqDocument).then(
      ({ boardSeq }) => boardSeq,
      () => 0, // the next load says what is wrong; replaying from the start is slower but still right
    );
    let wasDown = false;
    void since.then((from) => {
      if (stop.signal.aborted) return;
      setSeq(from);
      run();
      return follow(
        (after) => client.followBoardEvents(after),
        from,
        (event) => {
          setSeq(event.seq);
          reload.current();
        },
        (state, failure) => {
          setLive(state);
          if (state === 'reconnecting') {
            wasDown = true;
            if (failure) console.warn('board events:', inWords(failure));
          } else if (wasDown) reload.current(); // missed changes come as replayed events; this clears what the drop left stale
        },
        stop.signal,
      );
    });
    return () => {
      stop.abort();
      clearTimeout(pending);
    };
  }, [client]);

  const move = async (cardId: string, column: CardColumn, position?: number) => {
    setData((current) => current && { ...current, cards: moved(current.cards, cardId, column, position) });
    try {
      await client.moveCard(cardId, column, position);
    } catch (failure) {
      setError(inWords(failure));
      reload.current();
    }
  };

  return (
    <section class="board" hidden={hidden} aria-busy={!data} data-seq={seq} data-live={live}>
      <div class="board-bar">
        <NewCardForm client={client} onError={setError} />
        <span class={`live-state ${live}`} role="status">{live === 'live' ? 'live' : 'reconnecting…'}</span>
      </div>
      {error && <p role="alert" class="error">{error}</p>}
      {!data ? (
        <p class="loading">Loading cards…</p>
      ) : (
        <div class="columns">
          {COLUMNS.map((column) => (
            <Column key={column} column={column} cards={data.cards.filter((card) => card.column === column)} onMove={move} />
          ))}
        </div>
      )}
    </section>
  );
}

/** The cards after moving one to `column` at `position`, with positions renumbered as the server does. */
function moved(cards: BoardCard[], cardId: string, column: CardColumn, position = Number.MAX_SAFE_INTEGER): BoardCard[] {
  const card = cards.find((c) => c.id === cardId);
  if (!card) return cards;
  const rest = cards.filter((c) => c.id !== cardId);
  const target = rest.filter((c) => c.column === column).sort((a, b) => a.position - b.position);
  target.splice(Math.min(position, target.length), 0, { ...card, column });
  const renumbered = new Map(target.map((c, index) => [c.id, { ...c, position: index }]));
  return [...rest.filter((c) => c.column !== column), ...renumbered.values()];
}

function Column({ column, cards, onMove }: { column: CardColumn; cards: BoardCard[]; onMove: (id: string, column: CardColumn, position?: number) => void }) {
  const list = useRef<HTMLOListElement>(null);
  const onMoveRef = useRef(onMove);
  onMoveRef.current = onMove;
  const sorted = [...cards].sort((a, b) => a.position - b.position);

  useEffect(() => {
    const sortable = Sortable.create(list.current!, {
      group: 'board',
      animation: 120,
      forceFallback: true, // pointer events, not HTML5 drag: the same on touch screens and in automation
      fallbackTolerance: 4,
      filter: '.card-keys',
      onEnd: ({ item, from, to, oldIndex, newIndex }) => {
        // Put the DOM back as Preact left it; the move comes back as state.
        item.remove();
        from.insertBefore(item, from.children[oldIndex ?? 0] ?? null);
        if (from === to && oldIndex === newIndex) return;
        onMoveRef.current(item.dataset.id!, to.dataset.column as CardColumn, newIndex ?? 0);
      },
    });
    return () => sortable.destroy();
  }, []);

  return (
    <section class="column" aria-labelledby={`col-${column}`}>
      <h2 id={`col-${column}`}>
        {columnName(column)} <span class="count">{cards.length}</span>
      </h2>
      <ol ref={list} class="cards" data-column={column} data-empty="No cards">
        {sorted.map((card) => (
          <CardTile key={card.id} card={card} onMove={onMove} />
        ))}
      </ol>
    </section>
  );
}

function CardTile({ card, onMove }: { card: BoardCard; onMove: (id: string, column: CardColumn, position?: number) => void }) {
  const columnIndex = COLUMNS.indexOf(card.column);
  const run: LatestRun | undefined = card.runs.edges[0]?.node;
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === 'Enter') return void (location.hash = `#/card/${encodeURIComponent(card.id)}`);
    if (!event.altKey) return;
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
    if (!step) return;
    event.preventDefault();
    const column = COLUMNS[columnIndex + step[0]!];
    if (!column) return;
    onMove(card.id, column, step[0] ? undefined : Math.max(0, card.position + step[1]!)); // another column: its end
  };
  return (
    <li class="card" data-id={card.id} tabIndex={0} onKeyDown={onKeyDown} aria-label={`${card.title}, ${columnName(card.column)}; Alt+arrows move it, Enter opens it`}>
      <a class="card-title" href={`#/card/${encodeURIComponent(card.id)}`} draggable={false}>
        {card.title}
      </a>
      {card.tags.length > 0 && (
        <ul class="tags">
          {card.tags.map((tag) => (
            <li key={tag}>{tag}</li>
          ))}
        </ul>
      )}
      {run && (
        <a class={`run-badge status-${runLabel(run)}`} href={`#/run/${encodeURIComponent(run.id)}`} draggable={false}>
          {run.agent}: {runLabel(run)}
        </a>
      )}
    </li>
  );
}

function NewCardForm({ client, onError }: { client: RunboardClient; onError: (error?: string) => void }) {
  const [title, setTitle] = useState('');
  const [column, setColumn] = useState<CardColumn>('TODO');
  return (
    <form
      class="new-card"
      onSubmit={async (event) => {
        event.preventDefault();
        if (!title.trim()) return;
        try {
          await client.createCard({ title: title.trim(), column });
          setTitle('');
          onError(undefined);
        } catch (failure) {
          onError(inWords(failure));
        }
      }}
    >
      <input aria-label="New card title" placeholder="New card…" value={title} onInput={(e) => setTitle(e.currentTarget.value)} maxLength={500} />
      <select aria-label="Column" value={column} onChange={(e) => setColumn(e.currentTarget.value as CardColumn)}>
        {COLUMNS.map((c) => (
          <option key={c} value={c}>
            {columnName(c)}
          </option>
        ))}
      </select>
      <button type="submit">Add card</button>
    </form>
  );
}
