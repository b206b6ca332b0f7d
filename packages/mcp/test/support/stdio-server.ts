// The demo server over stdio, for the stdio transport test: `node --import tsx stdio-server.ts`.
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createDemo } from "./demo.ts";

const demo = createDemo();
await demo.createServer().connect(new StdioServerTransport());
