/**
 * Splits a configured command line ("cargo run --release", `pi --provider "my co"`) into an argument
 * array without a shell: whitespace separates, single and double quotes group, backslash escapes.
 * Nothing is expanded ($VAR, globs, ~, ;, |), so the result goes straight to execa.
 */
export class CommandLineError extends Error {}

export function parseCommandLine(text: string): string[] {
  const args: string[] = [];
  let current = '';
  let inArg = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && (text[i + 1] === '"' || text[i + 1] === '\\')) current += text[++i];
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inArg = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      current += text[++i];
      inArg = true;
    } else if (/\s/.test(ch)) {
      if (inArg) args.push(current);
      current = '';
      inArg = false;
    } else {
      current += ch;
      inArg = true;
    }
  }
  if (quote) throw new CommandLineError(`unterminated ${quote} quote in: ${text}`);
  if (inArg) args.push(current);
  return args;
}
