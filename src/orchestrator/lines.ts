/**
 * Splits a child's output stream into lines on "\n" only (JSON strings may hold U+2028, which
 * readline would split on), never holding more than `maxBytes` of one line: a longer line is
 * reported to `onOversize` with its full size, and its bytes are not kept.
 */
export function readLines(stream: NodeJS.ReadableStream, maxBytes: number, onLine: (line: string) => void, onOversize: (size: number) => void): void {
  let parts: Buffer[] = [];
  let size = 0;
  let oversize = false;
  stream.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, newline);
      start = newline + 1;
      if (oversize || size + piece.length > maxBytes) onOversize(size + piece.length);
      else onLine(Buffer.concat([...parts, piece]).toString('utf8'));
      parts = [];
      size = 0;
      oversize = false;
    }
    const rest = chunk.subarray(start);
    if (!rest.length) return;
    size += rest.length;
    if (size > maxBytes) {
      oversize = true;
      parts = []; // keep counting, stop keeping
    } else parts.push(rest);
  });
  stream.on('end', () => {
    if (oversize) onOversize(size);
    else if (parts.length) onLine(Buffer.concat(parts).toString('utf8'));
  });
}
