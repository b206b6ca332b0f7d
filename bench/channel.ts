// What a channel (`batch-settlement`) costs against `exact`, on one anvil chain (instant mining),
// our facilitator service serving both schemes, our resource server pricing both routes alike:
//   gas      gas per paid request over N requests on one channel (deposit + claim + settle) / N,
//            against the gas of N `exact` settlements / N, both in steady state (contract, payee and
//            receiver storage already written, as on a live chain); twice: the channel claimed and
//            swept on its own, and as one of K channels sharing the operator's claim and sweep
//   latency  p50 of one request carrying a voucher (requirements known: one round trip, as a
//            client that keeps its channel sends it), against the same request unpaid, against
//            `exact` (wrapFetch: 402 then the paid retry, settled on chain), and through wrapFetch
//            (which sends the voucher with the first request once it has paid the URL); the official
//            client → official server → official facilitator too
//   verify   vouchers checked per second by the server face (payload read and bound + ECDSA recovery)
//   floor    what the scheme itself makes a voucher-paid request cost, whoever implements it: the
//            unpaid request carrying a header as long as the voucher's, plus one voucher signature
//            and one signer recovery (a lower bound: the receipt header and parsing are left out)
//
//   npx tsx bench/channel.ts [--requests=100] [--channels=50] [--samples=200]
import { createPaymentClient, httpFacilitatorClient, type PaymentRequired, type PaymentPayload } from "@tollgate/core";
import { devAccount, startLocalNetwork } from "@tollgate/devnet";
import { batchSettlementEvmClient, batchSettlementEvmServer, exactEvmClient, fastVoucherSigner, readChannelPayload, voucherDigestBytes, voucherSigner } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { claimAndSettle, fileChannelStore, memoryChannelStore, sqlChannelStore } from "@tollgate/server";
import pg from "pg";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicClient, http, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startChannelServer } from "../test/support/channel-server.ts";
import { officialBatchFacilitator, officialBatchFetch, serveOfficialBatchFacilitator, startOfficialBatchServer } from "../test/support/official-batch.ts";
import { summarize } from "./official.ts";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const REQUESTS = arg("requests", 100);
const SHARED_CHANNELS = arg("channels", 50);
const SAMPLES = arg("samples", 200);
const PRICE = 1_000n;
const API_KEY = "bench-channel-api-key-0123456789";

const net = await startLocalNetwork({ payers: 3 });
const chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
const service = await startFacilitator({
  port: 0,
  host: "127.0.0.1",
  networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
  privateKeys: [net.accounts.facilitator.privateKey],
  apiKeys: [API_KEY],
  batchSettlement: { relayerKey: devAccount(7).privateKey, receiverAuthorizerKey: devAccount(8).privateKey },
  logLevel: "silent",
});
const facilitator = httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) });
const store = memoryChannelStore();
const server = await startChannelServer({ facilitator, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store, exact: true });

const gasOf = async (hashes: string[]) => {
  let gas = 0n;
  for (const h of new Set(hashes)) gas += (await chain.getTransactionReceipt({ hash: h as Hex })).gasUsed;
  return gas;
};

// ---------------------------------------------------------------- gas over N requests
// Steady state for both schemes, as on a live chain: the escrow contract already holds other
// channels' funds, the payee already holds the token and has been swept to before. Without this the
// first channel alone pays three first-time storage writes (~51k gas) that `exact` never sees.
const exactFetch = wrapFetch(fetch, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[1]!.privateKey) })] });
await runChannel(devAccount(29).privateKey, 1, 10); // escrows 10 prices, 1 claimed: the contract keeps a balance
await claimOnce();
if ((await exactFetch(server.exactUrl)).status !== 200) throw new Error("exact warm-up refused");

/**
 * N requests on a fresh channel of `privateKey` (deposit: `depositMultiplier` prices); the deposit
 * transaction(s). The payer holds twice the deposit, as a payer normally keeps more than it escrows
 * (emptying a balance earns a storage refund `exact` payers never see).
 */
async function runChannel(privateKey: Hex, requests: number, depositMultiplier = requests): Promise<string[]> {
  await fundPayer(privateKeyToAccount(privateKey).address, 2n * PRICE * BigInt(depositMultiplier));
  const pay = wrapFetch(fetch, { schemes: [batchSettlementEvmClient({ account: privateKeyToAccount(privateKey), depositMultiplier })] });
  const deposits: string[] = [];
  for (let i = 0; i < requests; i++) {
    const res = await pay(server.paidUrl);
    if (res.status !== 200) throw new Error(`channel request ${i}: HTTP ${res.status}`);
    const tx = getPaymentReceipt(res)?.receipt?.transaction;
    if (tx) deposits.push(tx);
  }
  return deposits;
}
/** One claimAndSettle over every channel with unclaimed charges: its claim transaction(s) and its sweep. */
async function claimOnce(): Promise<{ claims: string[]; settle: string; channels: number }> {
  const claimed = await claimAndSettle({ store, facilitator, channels: batchSettlementEvmServer().channels });
  if (claimed.length !== 1 || claimed[0]!.error || !claimed[0]!.settleTransaction) throw new Error(`claim: ${claimed[0]?.error ?? `${claimed.length} groups`}`);
  return { claims: claimed[0]!.claimTransactions, settle: claimed[0]!.settleTransaction, channels: claimed[0]!.channels };
}

// One channel claimed and swept on its own: every on-chain cost charged to its 100 requests.
const aloneDeposits = await runChannel(net.accounts.payers[0]!.privateKey, REQUESTS);
const alone = await claimOnce();
const aloneGas = { deposit: await gasOf(aloneDeposits), claim: await gasOf(alone.claims), settle: await gasOf([alone.settle]) };
const channelGas = aloneGas.deposit + aloneGas.claim + aloneGas.settle;
const channelTxs = [...aloneDeposits, ...alone.claims, alone.settle];

// The operating mode the scheme is built for: the operator's periodic claim covers many channels in
// one transaction and one sweep moves their total. Each channel's share: its deposit plus 1/K of both.
const sharedDeposits: string[] = [];
for (let k = 0; k < SHARED_CHANNELS; k++) sharedDeposits.push(...(await runChannel(devAccount(30 + k).privateKey, REQUESTS)));
const shared = await claimOnce();
if (shared.channels !== SHARED_CHANNELS) throw new Error(`shared claim covered ${shared.channels} channels`);
const sharedGas = { deposits: await gasOf(sharedDeposits), claim: await gasOf(shared.claims), settle: await gasOf([shared.settle]) };
const sharedPerChannel = (sharedGas.deposits + sharedGas.claim + sharedGas.settle) / BigInt(SHARED_CHANNELS);

const exactTxs: string[] = [];
for (let i = 0; i < REQUESTS; i++) {
  const res = await exactFetch(server.exactUrl);
  const tx = getPaymentReceipt(res)?.receipt?.transaction;
  if (res.status !== 200 || !tx) throw new Error(`exact request ${i}: HTTP ${res.status}`);
  exactTxs.push(tx);
}
const exactGas = await gasOf(exactTxs);

// ---------------------------------------------------------------- latency
// A client that keeps its channel: the requirements are known, the voucher goes with the first request.
// Vouchers signed with libsecp256k1 from their digest (viem's account takes ~4 ms a signature).
const latencyClient = batchSettlementEvmClient({ account: fastVoucherSigner(net.accounts.payers[2]!.privateKey), depositMultiplier: SAMPLES * 4 });
const payments = createPaymentClient({ schemes: [latencyClient] });
const required = JSON.parse(Buffer.from((await fetch(server.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
// The same route on a server whose channel store survives restarts (fileChannelStore: each commit
// written, fsynced and renamed before the response), paid by a payer of its own.
const storeDir = mkdtempSync(join(tmpdir(), "tollgate-bench-channels-"));
const durableServer = await startChannelServer({ facilitator, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store: fileChannelStore(storeDir) });
await fundPayer(privateKeyToAccount(devAccount(12).privateKey).address, PRICE * BigInt(SAMPLES) * 10n);
const durablePayments = createPaymentClient({ schemes: [batchSettlementEvmClient({ account: fastVoucherSigner(devAccount(12).privateKey), depositMultiplier: SAMPLES * 4 })] });
// The same route on a server whose store several instances could share: sqlChannelStore on this
// machine's PostgreSQL (the channel's lease taken, the charge committed under it: two more round
// trips to the database per request). Skipped when PostgreSQL is not reachable.
const pgPool = new pg.Pool({ connectionString: process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres", max: 4 });
const pgTable = `tollgate_bench_channels_${process.pid}`;
const sharedServer = await pgPool.query("SELECT 1").then(
  () => startChannelServer({ facilitator, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store: sqlChannelStore(pgPool, { table: pgTable }) }),
  () => undefined,
);
if (sharedServer) await fundPayer(privateKeyToAccount(devAccount(14).privateKey).address, PRICE * BigInt(SAMPLES) * 10n);
const sharedPayments = createPaymentClient({ schemes: [batchSettlementEvmClient({ account: fastVoucherSigner(devAccount(14).privateKey), depositMultiplier: SAMPLES * 4 })] });
let voucherHeaderBytes = 0;
/** One request with a voucher; `signed` true: the voucher is signed before the clock starts (what the server adds). */
async function voucherRequest(signed: boolean, url = server.paidUrl, client = payments): Promise<number> {
  const t = performance.now();
  const payment = await client.pay(required);
  const sent = signed ? performance.now() : t;
  voucherHeaderBytes = payment.header.value.length;
  const res = await fetch(url, { headers: { [payment.header.name]: payment.header.value } });
  await res.arrayBuffer();
  const took = performance.now() - sent;
  const receipt = res.headers.get("PAYMENT-RESPONSE");
  await payment.observe?.({ status: res.status, ...(receipt ? { receipt: JSON.parse(Buffer.from(receipt, "base64").toString()) } : {}) });
  if (res.status !== 200) throw new Error(`voucher request: HTTP ${res.status}`);
  return took;
}
const timed = (f: () => Promise<void>) => async () => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};
const latencyWrapped = wrapFetch(fetch, { client: payments });
const officialHttp = await serveOfficialBatchFacilitator(officialBatchFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey, authorizerKey: devAccount(9).privateKey }));
const officialServer = await startOfficialBatchServer({ facilitatorUrl: officialHttp.url, network: net.network, payTo: net.accounts.payee.address, asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version }, amount: PRICE.toString() });
const officialPay = officialBatchFetch({ privateKey: devAccount(10).privateKey, rpcUrl: net.rpcUrl, chainId: net.chainId });
await fundPayer(privateKeyToAccount(devAccount(10).privateKey).address, 100_000_000n);

const runs: Record<string, () => Promise<number>> = {
  unpaid: timed(async () => void (await (await fetch(server.freeUrl)).arrayBuffer())),
  voucher: () => voucherRequest(false),
  // The unpaid request carrying a header as long as the voucher's PAYMENT-SIGNATURE (set by the
  // voucher runs above): what moving the payment's bytes costs, with nothing read or checked.
  unpaidVoucherSizedHeader: timed(async () => void (await (await fetch(server.freeUrl, { headers: { "X-Voucher-Sized": "x".repeat(voucherHeaderBytes) } })).arrayBuffer())),
  voucherPresigned: () => voucherRequest(true),
  voucherDurableStore: () => voucherRequest(false, durableServer.paidUrl, durablePayments),
  ...(sharedServer ? { voucherSharedPostgresStore: () => voucherRequest(false, sharedServer.paidUrl, sharedPayments) } : {}),
  voucherViaWrapFetch: timed(async () => {
    const res = await latencyWrapped(server.paidUrl);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`wrapFetch voucher: HTTP ${res.status}`);
  }),
  exact: timed(async () => {
    const res = await exactFetch(server.exactUrl);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`exact: HTTP ${res.status}`);
  }),
  officialVoucher: timed(async () => {
    const res = await officialPay(officialServer.paidUrl);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`official voucher: HTTP ${res.status}`);
  }),
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
for (const run of Object.values(runs)) for (let i = 0; i < 5; i++) await run(); // warm up (the deposits happen here)
// In blocks of 10, taking turns, so background load hits every kind alike.
const exactSamples = Math.min(SAMPLES, 60);
for (let done = 0; done < SAMPLES; done += 10) {
  for (const [name, run] of Object.entries(runs)) {
    if (name === "exact" && done >= exactSamples) continue;
    for (let i = 0; i < 10; i++) samples[name]!.push(await run());
  }
}
const p50 = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(summarize(v).medianMs)]));

// ---------------------------------------------------------------- vouchers checked per second
const face = batchSettlementEvmServer().channels;
const r = required.accepts[0]!;
const signed: PaymentPayload[] = [];
const checker = batchSettlementEvmClient({ account: fastVoucherSigner(devAccount(11).privateKey), depositMultiplier: 1_000_000 });
for (let i = 0; i < 2_000; i++) signed.push({ x402Version: 2, accepted: r, payload: await checker.createPayload(r, { x402Version: 2 }) });
let checked = 0;
const t0 = performance.now();
for (let round = 0; round < 5; round++) {
  for (const p of signed) {
    const read = readChannelPayload(p, r);
    if (!read.ok || !(await face.checkVoucher(read.payment, r.network))) throw new Error("voucher check failed");
    checked++;
  }
}
const perSecond = Math.round(checked / ((performance.now() - t0) / 1000));

// ---------------------------------------------------------------- the floor of a voucher-paid request
// What the spec makes every voucher-paid request do, whoever implements it: the client signs the
// voucher (its EIP-712 digest, ECDSA), the server recovers the signer (digest, ECDSA recovery),
// and the payment header travels. Each measured here, libsecp256k1 native, one core.
const floorSigner = fastVoucherSigner(devAccount(13).privateKey);
const channelId = `0x${"ab".repeat(32)}` as Hex;
const FLOOR_ROUNDS = 5_000;
const voucherSigs: Hex[] = [];
let t1 = performance.now();
for (let i = 1; i <= FLOOR_ROUNDS; i++) voucherSigs.push(floorSigner.signDigest(voucherDigestBytes(channelId, BigInt(i) * PRICE, net.chainId)));
const signUs = ((performance.now() - t1) * 1000) / FLOOR_ROUNDS;
t1 = performance.now();
for (let i = 1; i <= FLOOR_ROUNDS; i++) {
  if (voucherSigner(channelId, BigInt(i) * PRICE, voucherSigs[i - 1]!, net.chainId) !== floorSigner.address.toLowerCase()) throw new Error("floor: recovery disagrees");
}
const recoverUs = ((performance.now() - t1) * 1000) / FLOOR_ROUNDS;
// The bigger header never makes a request cheaper: a sized p50 below the plain one is noise.
const floorMs = Math.max(p50.unpaid!, p50.unpaidVoucherSizedHeader!) + (signUs + recoverUs) / 1000;

console.log(
  JSON.stringify(
    {
      requests: REQUESTS,
      gas: {
        channelTotal: channelGas.toString(),
        channelTransactions: new Set(channelTxs).size,
        channelPerRequest: Number(channelGas / BigInt(REQUESTS)),
        exactTotal: exactGas.toString(),
        exactTransactions: new Set(exactTxs).size,
        exactPerRequest: Number(exactGas / BigInt(REQUESTS)),
        channelOverExact: `${round((Number(channelGas) / Number(exactGas)) * 100)}%`,
        channelBreakdown: { deposit: Number(aloneGas.deposit), claim: Number(aloneGas.claim), settle: Number(aloneGas.settle) },
        sharedClaim: {
          channels: SHARED_CHANNELS,
          perChannelTotal: Number(sharedPerChannel),
          perRequest: Number(sharedPerChannel / BigInt(REQUESTS)),
          overExact: `${round((Number(sharedPerChannel) / Number(exactGas)) * 100)}%`,
          breakdown: { deposits: Number(sharedGas.deposits), claim: Number(sharedGas.claim), settle: Number(sharedGas.settle) },
        },
      },
      latency: {
        samples: SAMPLES,
        exactSamples,
        p50Ms: p50,
        p95Ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, round(summarize(v).p95Ms)])),
        voucherOverUnpaid: round(p50.voucher! / p50.unpaid!),
        presignedVoucherOverUnpaid: round(p50.voucherPresigned! / p50.unpaid!),
        voucherOverExact: round(p50.voucher! / p50.exact!),
        durableStoreVoucherOverUnpaid: round(p50.voucherDurableStore! / p50.unpaid!),
        ...(p50.voucherSharedPostgresStore ? { sharedPostgresStoreVoucherOverUnpaid: round(p50.voucherSharedPostgresStore / p50.unpaid!) } : {}),
        wrapFetchVoucherOverExact: round(p50.voucherViaWrapFetch! / p50.exact!),
        officialVoucherOverOurs: round(p50.officialVoucher! / p50.voucherViaWrapFetch!),
      },
      floor: {
        voucherHeaderBytes,
        signVoucherUs: round(signUs),
        recoverVoucherSignerUs: round(recoverUs),
        unpaidVoucherSizedHeaderMs: p50.unpaidVoucherSizedHeader,
        floorMs: round(floorMs),
        floorOverUnpaid: round(floorMs / p50.unpaid!),
        ourOverheadAboveFloorMs: round(p50.voucher! - floorMs),
      },
      vouchersCheckedPerSecond: perSecond,
      note: "floor = the unpaid request with a voucher-sized header plus one voucher signature and one signer recovery (digests included): what any implementation of the scheme pays per request on this machine; voucher = one request with the voucher, signing included (requirements known), in-memory channel store; voucherDurableStore = the same on a server with fileChannelStore (fsync per commit); voucherSharedPostgresStore = the same on a server with sqlChannelStore on local PostgreSQL (the store several instances share; absent without PostgreSQL); voucherPresigned = the same, clock started after signing; voucherViaWrapFetch = wrapFetch on a URL it already paid (the voucher goes with the first request); officialVoucher = the official client, 402 then the paid retry; exact settles on chain before answering",
    },
    null,
    2,
  ),
);

await durableServer.close();
await sharedServer?.close();
await pgPool.query(`DROP TABLE IF EXISTS ${pgTable}`).catch(() => undefined);
await pgPool.end();
rmSync(storeDir, { recursive: true, force: true });
await officialServer.close();
await officialHttp.close();
await server.close();
await service.close();
await net.stop();
process.exit(0);

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Moves USDC to a dev account the devnet did not fund (from payer 1, who holds plenty). */
async function fundPayer(to: Hex, amount: bigint): Promise<void> {
  const { createWalletClient, erc20Abi } = await import("viem");
  const from = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
  const wallet = createWalletClient({ account: from, chain: { id: net.chainId, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [net.rpcUrl] } } }, transport: http(net.rpcUrl) });
  const hash = await wallet.writeContract({ address: net.usdc.address, abi: erc20Abi, functionName: "transfer", args: [to, amount] });
  await chain.waitForTransactionReceipt({ hash });
}
