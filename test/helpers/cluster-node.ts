/**
 * One runboard node of a test cluster, in a process of its own (run with `node --import tsx`), so a
 * test can SIGKILL it: configured like the CLI, from the environment (DATABASE_URL, REDIS_URL,
 * RUNBOARD_NODE_ID…), with the tsx sources instead of the bundle. Prints `LISTENING <url>`.
 */
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';

const server = await startServer(loadConfig(['--port', '0'], process.env));
console.log(`LISTENING ${server.url}`);
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
