/**
 * Shared by the settlement tests: signed payments, a facilitator child process, an RPC proxy
 * that can go away, and the end-state checks (chain vs ledger).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import type { RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, eip3009Abi } from "@tollgate/evm";
import { createPublicClient, http, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export interface Payment {
  body: string;
  from: Address;
  nonce: Hex;
  amount: bigint;
}

/** The devnet's token as a config `assets` entry: a local chain has no USDC in the network table, so it is listed. */
export function localAssets(net: RunningLocalNetwork) {
  return [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }];
}

/** The hash a failed or pending /settle answer names in our extension (its `transaction` is ""). */
export function extensionTransaction(json: { extensions?: Record<string, unknown> }): string | undefined {
  const ext = json.extensions?.["tollgate-settlement"] as { transaction?: unknown } | undefined;
  return typeof ext?.transaction === "string" ? ext.transaction : undefined;
}

export function requirementsFor(net: RunningLocalNetwork, amount: string): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount,
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 600,
    extra: { name: net.usdc.name, version: net.usdc.version },
  };
}

/** `count` distinct signed payments, spread over the network's payers, amounts 1000 + i. */
export async function signPayments(net: RunningLocalNetwork, count: number, offset = 0): Promise<Payment[]> {
  const clients = net.accounts.payers.map((p) => exactEvmClient({ account: privateKeyToAccount(p.privateKey) }));
  const out: Payment[] = [];
  for (let i = 0; i < count; i++) {
    const amount = String(1000 + offset + i);
    const q = requirementsFor(net, amount);
    const payload = await clients[i % clients.length]!.createPayload(q, { x402Version: 2 });
    const paymentPayload: PaymentPayload = { x402Version: 2, accepted: q, payload };
    const auth = payload.authorization as { from: Address; nonce: Hex };
    out.push({ body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: q }), from: auth.from, nonce: auth.nonce, amount: BigInt(amount) });
  }
  return out;
}

export async function settle(url: string, body: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: res.status, json: await res.json() };
}

/** /settle until success (pending, not-ready and retryable failures are retried), or the deadline. */
export async function settleUntilFinal(url: string, body: string, deadlineMs = 30_000): Promise<any> {
  const deadline = Date.now() + deadlineMs;
  let last: any;
  for (;;) {
    try {
      last = (await settle(url, body)).json;
      if (last.success) return last;
    } catch (e) {
      last = { error: String(e) };
    }
    if (Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 150));
  }
}

export interface Child {
  url: string;
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const CHILD = fileURLToPath(new URL("./fixtures/facilitator-child.ts", import.meta.url));

/** `env` adds variables for the child (e.g. FACILITATOR_ANNOUNCE_WRITE_AHEAD, see the fixture). */
export async function spawnFacilitator(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Child> {
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD], {
    env: { ...process.env, ...env, FACILITATOR_CONFIG: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`facilitator child did not start:\n${out.slice(-2000)}`)), 60_000);
    proc.stdout!.on("data", () => {
      const m = /LISTENING (\S+)/.exec(out);
      if (m) (clearTimeout(timer), resolve(m[1]!));
    });
    void exited.then((code) => (clearTimeout(timer), reject(new Error(`facilitator child exited (${code}):\n${out.slice(-2000)}`))));
  });
  return { url, proc, output: () => out, exited };
}

export async function waitReady(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${url}/ready`).catch(() => undefined);
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`not ready: ${res ? await res.text() : "no answer"}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * An HTTP JSON-RPC proxy in front of anvil that can go away: `cutAfterNextSend()` forwards the next
 * eth_sendRawTransaction (it reaches the chain) but loses its answer and drops every request until `restore()`.
 */
export async function rpcProxy(target: string) {
  let down = false;
  let cutArmed = false;
  let sendsForwarded = 0;
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      if (down) return req.socket.destroy();
      try {
        const r = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
        const text = await r.text();
        const isSend = body.includes("eth_sendRawTransaction");
        if (isSend) sendsForwarded++;
        if (down || (isSend && cutArmed)) {
          cutArmed = false;
          down = true;
          return req.socket.destroy();
        }
        res.writeHead(r.status, { "content-type": "application/json" }).end(text);
      } catch {
        req.socket.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cutAfterNextSend: () => (cutArmed = true),
    get down() {
      return down;
    },
    get sendsForwarded() {
      return sendsForwarded;
    },
    restore: () => (down = false),
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

export function chainOf(net: RunningLocalNetwork): PublicClient {
  return createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
}

export const tokenBalance = (chain: PublicClient, net: RunningLocalNetwork, a: Address) =>
  chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] }) as Promise<bigint>;

export const authorizationUsed = (chain: PublicClient, net: RunningLocalNetwork, p: Payment) =>
  chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "authorizationState", args: [p.from, p.nonce] }) as Promise<boolean>;

/** The hash's receipt logs this payment's AuthorizationUsed (the token's proof it settled there). */
export async function settledIn(chain: PublicClient, hash: Hex, p: Payment): Promise<boolean> {
  const receipt = await chain.getTransactionReceipt({ hash });
  const topic = "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5"; // AuthorizationUsed(address,bytes32)
  return receipt.logs.some(
    (l) => l.topics[0] === topic && l.topics[1]?.toLowerCase().endsWith(p.from.slice(2).toLowerCase()) && l.topics[2]?.toLowerCase() === p.nonce.toLowerCase(),
  );
}
