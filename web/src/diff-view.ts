/** diff2html with highlight.js (its slim build: common languages only), in a chunk of its own. */
import { Diff2HtmlUI } from 'diff2html/lib-esm/ui/js/diff2html-ui-slim.js';
import 'diff2html/bundles/css/diff2html.min.css';

/** Draws a unified patch into `target`, line by line, with syntax highlighting. */
export function drawDiff(target: HTMLElement, patch: string): void {
  const ui = new Diff2HtmlUI(target, patch, { drawFileList: false, matching: 'lines', outputFormat: 'line-by-line', highlight: true, synchronisedScroll: false });
  ui.draw();
  ui.highlightCode();
}
