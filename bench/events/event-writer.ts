/**
 * What both runboard sources of the event benchmark answer besides `url`: runs to follow, and events
 * written through the server's own event log as agents would (there is no public append).
 */
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Orchestrator } from '../../src/orchestrator/index.js';
import { TEXT, writePaced, type WriteLoad } from './shared.js';

export async function eventWriter({ db, eventLog }: Pick<Orchestrator, 'db' | 'eventLog'>) {
  const card = await db.client.card.create({ data: { title: 'bench', position: 0 } });
  /** The runs of the current load, by index: their database ids. */
  let runs: string[] = [];
  /** A RUNNING run with no events yet; returns its database id. */
  const createRun = async () => (await db.client.run.create({ data: { cardId: card.id, prompt: 'bench', status: 'RUNNING' } })).id;
  return {
    /** Fresh runs for a load; answers their global ids, which subscribers send. */
    createRuns: async (count: number) => {
      runs = await Promise.all(Array.from({ length: count }, createRun));
      return runs.map((id) => encodeGlobalID('Run', id));
    },
    write: (load: WriteLoad) =>
      writePaced(
        runs.length,
        load,
        (run, text) => eventLog.append(runs[run]!, [{ type: 'assistant_text', data: { text } }]),
        (run) => eventLog.append(runs[run]!, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' }),
      ),
    /** A settled run with `count` texts in its history (then its status); answers its global id. */
    history: async (count: number) => {
      const id = await createRun();
      for (let i = 0; i < count; i += 1_000) {
        await eventLog.append(id, Array.from({ length: Math.min(1_000, count - i) }, () => ({ type: 'assistant_text', data: { text: TEXT } })));
      }
      await eventLog.append(id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
      return encodeGlobalID('Run', id);
    },
  };
}
