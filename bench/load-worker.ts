// The load generator's thread (see load.ts): runs one load phase and posts its result.
import { parentPort, workerData } from "node:worker_threads";
import { runLoadHere, type LoadOptions } from "./load.ts";

const result = await runLoadHere(workerData as LoadOptions);
parentPort!.postMessage(result);
