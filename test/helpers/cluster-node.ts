/**
 * One runboard node of a test cluster, in a process of its own (run with `node --import tsx`), so a
 * test can SIGKILL it. Configured like the CLI, from the environment, plus RUNBOARD_TEST_CLUSTER: the
 * JSON of ServerOptions.cluster (until the CLI has --role and friends). Prints `LISTENING <url>`.
 */
import { loadConfig } from '../../src/config.js';
import { startServer, type ClusterServerOptions } from '../../src/server.js';

const config = loadConfig(['--port', '0'], process.env);
const cluster = JSON.parse(process.env.RUNBOARD_TEST_CLUSTER ?? 'null') as ClusterServerOptions;
const server = await startServer(config, { cluster });
console.log(`LISTENING ${server.url}`);
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
