/** Recorded agent stdout for the protocol and normaliser tests (test/fixtures/<agent>/), made stable across machines. */
import { writeFile } from 'node:fs/promises';

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
