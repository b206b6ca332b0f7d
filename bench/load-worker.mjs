// Entry of the load generator's thread: a worker thread does not inherit tsx's loader from the
// main thread here, so this plain-JS entry loads the TypeScript worker through tsx's API.
import { tsImport } from "tsx/esm/api";

await tsImport("./load-worker.ts", import.meta.url);
