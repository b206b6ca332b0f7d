/**
 * Our channel-paid resource server as its own process (with the official batch-settlement
 * facilitator face in process), for tests that kill it: config as JSON in CHANNEL_SERVER_CONFIG,
 * prints `LISTENING <url>` once serving. `crash: "handler"` SIGKILLs itself inside the handler of
 * the `crashAt`-th paid request (served, not committed); `crash: "after-commit"` right after the
 * `crashAt`-th charge is durable in the store (committed, response not yet released).
 */
import type { Address, Hex } from "viem";
import { fileChannelStore, localLeases, type ChannelRecord, type ChannelStore } from "@tollgate/server";
import { startChannelServer } from "./channel-server.ts";
import { officialBatchFacilitator } from "./official-batch.ts";
import type { LocalToken } from "./tollgate.ts";

interface Config {
  rpcUrl: string;
  chainId: number;
  network: string;
  usdc: LocalToken;
  payTo: Address;
  amount: string;
  dir: string;
  facilitatorKey: Hex;
  authorizerKey: Hex;
  crash?: "handler" | "after-commit";
  crashAt?: number;
}

const c = JSON.parse(process.env.CHANNEL_SERVER_CONFIG ?? "{}") as Config;
const die = () => process.kill(process.pid, "SIGKILL");
const files = fileChannelStore(c.dir);
let commits = 0;
const put = async (record: ChannelRecord) => {
  const before = await files.get(record.channelId);
  await files.put(record);
  const charged = BigInt(record.chargedCumulativeAmount) > BigInt(before?.chargedCumulativeAmount ?? "0");
  if (charged && c.crash === "after-commit" && ++commits === c.crashAt) die();
};
// Every write goes through `put`, the paywall's commits (under the channel's lease) included.
const store: ChannelStore = { ...files, put, leases: localLeases(put) };
const facilitator = officialBatchFacilitator({ rpcUrl: c.rpcUrl, chainId: c.chainId, privateKey: c.facilitatorKey, authorizerKey: c.authorizerKey });
let served = 0;
const server = await startChannelServer({
  facilitator: facilitator.client,
  network: c.network,
  usdc: c.usdc,
  payTo: c.payTo,
  amount: c.amount,
  store,
  handler: (path) => {
    if (path === "/paid" && c.crash === "handler" && ++served === c.crashAt) die();
  },
});
process.stdout.write(`LISTENING ${server.paidUrl}\n`);
process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
