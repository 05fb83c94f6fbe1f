/** Recorded agent stdout for the protocol and normaliser tests (test/fixtures/<agent>/), made stable across machines. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentProcess } from './agent-process.js';
import { makeAgentEnvironment, type AgentEnvironment, type AgentKind } from './agents.js';
import type { ModelScript, ModelServer } from './model-server.js';
import { makeRepo, removeDirs } from './repo.js';

/**
 * Writes `lines` (one JSON line each) to `file`, with every temp path in `replacements` swapped for its fixed
 * stand-in so a re-recording differs only in ids and timestamps; returns the text written.
 */
export async function saveTranscript(file: string, lines: readonly string[], replacements: Record<string, string>): Promise<string> {
  let text = lines.map((line) => `${line}\n`).join('');
  // Longest first, so a path inside another (HOME under the temp root) is replaced before its parent.
  for (const from of Object.keys(replacements).sort((a, b) => b.length - a.length)) text = text.split(from).join(replacements[from]);
  await writeFile(file, text);
  return text;
}

/** One recording: what the model answers (given the temp repository) and how the agent is driven. */
export interface TranscriptScenario<S, M> {
  file: string;
  script(repo: string): ModelScript<M>;
  /** Drives the agent; resolves once the stdout to record is complete. */
  drive(session: S, model: ModelServer<M>): Promise<void>;
}

/** A started agent whose stdout lines are collected. */
export type RecordedAgent = AgentProcess & { readonly lines: readonly string[] };

/** How to record one agent's transcripts: its scripted server, how to start it, where the fixtures go. */
export interface TranscriptRecorder<S extends RecordedAgent, M> {
  kind: AgentKind;
  dir: string;
  /** Stand-ins for the temp repository and the temp HOME root in the saved text. */
  fixtureCwd: string;
  fixtureHome: string;
  startServer(script: ModelScript<M>): Promise<ModelServer<M>>;
  start(env: AgentEnvironment, repo: string): S | Promise<S>;
}

/**
 * Runs each scenario against the real agent in a fresh temp repository and saves its stdout, then prints the
 * line count, the model requests and the time from spawn to the first model request.
 */
export async function recordTranscripts<S extends RecordedAgent, M>(recorder: TranscriptRecorder<S, M>, scenarios: readonly TranscriptScenario<S, M>[]): Promise<void> {
  for (const scenario of scenarios) {
    const repo = await makeRepo();
    const model = await recorder.startServer(scenario.script(repo));
    const env = await makeAgentEnvironment(recorder.kind, model);
    const session = await recorder.start(env, repo);
    try {
      await scenario.drive(session, model);
      await new Promise((resolve) => setTimeout(resolve, 300)); // catch anything printed just after
    } finally {
      await session.stop();
      await model.close();
    }
    const stable = await saveTranscript(path.join(recorder.dir, scenario.file), session.lines, { [repo]: recorder.fixtureCwd, [env.dir]: recorder.fixtureHome });
    const first = model.requests[0] ? `${model.requests[0].receivedAt - session.spawnedAt} ms` : 'none';
    console.log(`${scenario.file}: ${session.lines.length} lines, ${stable.length} bytes, ${model.requests.length} model requests, spawn → first model request ${first}`);
    await env.cleanup();
    await removeDirs(repo);
  }
}
