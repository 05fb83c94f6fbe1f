/**
 * What `import.meta.url` becomes in the CommonJS scripts scripts/bundle.ts builds (esbuild's `inject`):
 * the script's own file URL. Injected rather than put in a banner, which would come before the
 * output's "use strict" and so leave the whole script sloppy.
 */
export const importMetaUrl: string = require('node:url').pathToFileURL(__filename).href;
