/**
 * Facilitator face of `exact` on EVM (EIP-3009): verifies a signed `TransferWithAuthorization`
 * against the requirements and the chain, then broadcasts it, paying the gas.
 *
 * Checks run cheapest first and each failure carries the most specific reason code, so a
 * client learns what to fix. Everything the chain must answer (balance, nonce state, a dry
 * run of the transfer, the token's EIP-712 domain) goes in ONE eth_call through Multicall3
 * when the chain has it. `settle` re-runs the same verification, so verify and settle always
 * agree on the same payload (with `settleDryRun: false`, all but the dry run, which the
 * submitter's own simulation then replaces).
 */
import { Reason, evmChainId, type AuthenticateResult, type Network, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse, type VerifyResponse } from "@tollgate/core";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  custom,
  decodeErrorResult,
  decodeFunctionResult,
  encodeFunctionData,
  getAddress,
  hexToBytes,
  isAddress,
  isAddressEqual,
  isErc6492Signature,
  keccak256,
  parseSignature,
  size,
  toFunctionSelector,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
} from "viem";
import { recoverAddress } from "../crypto/recover.ts";
import { authenticateExactEvm, signatureProblem } from "./authenticate.ts";
import { MULTICALL3_ADDRESS, eip3009Abi } from "../contracts/abi.ts";
import { rpcTransportForUrl } from "../rpc/transport.ts";
import { decodeAggregate3, decodeBoolResult, decodeUint256Result, encodeAggregate3, encodeTransferVrs } from "./abi-fast.ts";
import { createCallBatcher, type Aggregate3Result, type CallBatcher } from "./batch.ts";
import { domainSeparator, transferAuthorizationDigest } from "./digest.ts";
import { parseExactEvmPayload, toTransferAuthorization, type ExactEvmAuthorization, type TransferAuthorization } from "./payload.ts";

export interface ExactEvmAssetConfig {
  address: Address;
  /** EIP-712 domain name (informational here: the token's own domain is read on-chain). */
  name: string;
  version: string;
  decimals: number;
}

export interface ExactEvmNetworkConfig {
  network: Network;
  rpcUrl?: string;
  publicClient?: PublicClient;
  /** Allowlist: when given, payments in other assets are refused (`evmAssetNotAllowed`). */
  assets?: readonly ExactEvmAssetConfig[];
  /** Multicall3 address; default the canonical one when code exists there; `false` to never batch. */
  multicall3?: Address | false;
  /**
   * Coalescing of concurrent verifications' reads into shared aggregate3 eth_calls (Multicall3 only).
   * Defaults: up to 300 calls per eth_call, 8 eth_calls in flight, window = the current I/O turn.
   */
  batch?: { maxCalls?: number; maxInFlight?: number; windowMs?: number };
}

/** A settlement ready to broadcast: what a custom submitter (settlement engine) receives. */
export interface ExactEvmSettlementCall {
  network: Network;
  asset: Address;
  authorization: ExactEvmAuthorization;
  signature: Hex;
  /** Calldata of the `transferWithAuthorization` call to send to `asset`. */
  data: Hex;
}

export interface ExactEvmSubmitResult {
  transaction: Hex;
  status: "success" | "reverted" | "pending";
}

export type ExactEvmSubmit = (call: ExactEvmSettlementCall) => Promise<ExactEvmSubmitResult>;

export interface ExactEvmFacilitatorConfig {
  networks: readonly ExactEvmNetworkConfig[];
  /** Pays the gas and sends settlements. */
  signer: LocalAccount;
  /** Replaces the built-in broadcast (send + bounded receipt wait). */
  submit?: ExactEvmSubmit;
  /** Unix seconds; for tests. */
  now?: () => number;
  /** `validBefore` must be at least this many seconds ahead to settle (block time margin). Default 6. */
  minValiditySeconds?: number;
  /**
   * Longest accepted `validBefore - validAfter` beyond `maxTimeoutSeconds` (clients backdate
   * `validAfter` by 600s for clock skew). Default 900; `null` disables the check.
   */
  validityToleranceSeconds?: number | null;
  /** How long settle waits for the receipt before answering `settlement_pending`. Default 30 000. */
  receiptTimeoutMs?: number;
  /** Receipt polling interval for the built-in clients. Default 1000. */
  pollingIntervalMs?: number;
  /**
   * Whether `settle` repeats verify's on-chain dry run of the transfer before handing it to
   * `submit`. Default true. Set false only with a `submit` that simulates what it sends and
   * refuses what would revert (the settlement engine's preflight: one eth_simulateV1 per batch,
   * failing items left out with the token's reason): the dry run is then paid twice. Settle still
   * checks everything else, off-chain and on-chain (balance, nonce state, token domain).
   */
  settleDryRun?: boolean;
}

interface NetworkState {
  config: ExactEvmNetworkConfig;
  network: Network;
  chainId: number;
  client: PublicClient;
  chainCheck?: Promise<string | undefined>;
  multicall?: Promise<Address | undefined>;
  batcher?: CallBatcher;
  sendQueue: Promise<unknown>;
}

/** What the token says about its EIP-712 domain (read once per network + asset). */
interface TokenDomain {
  separator?: Hex;
  name?: string;
  version?: string;
}

type Failure = { ok: false; reason: string; message: string; payer?: Address };
interface Verified {
  ok: true;
  net: NetworkState;
  asset: Address;
  payer: Address;
  auth: TransferAuthorization;
  wire: ExactEvmAuthorization;
  signature: Hex;
  data: Hex;
}

export function exactEvmFacilitator(config: ExactEvmFacilitatorConfig): SchemeFacilitator {
  const now = config.now ?? (() => Math.floor(Date.now() / 1000));
  const minValidity = BigInt(config.minValiditySeconds ?? 6);
  const tolerance = config.validityToleranceSeconds === undefined ? 900 : config.validityToleranceSeconds;
  const receiptTimeoutMs = config.receiptTimeoutMs ?? 30_000;
  const signer = config.signer;
  const settleDryRun = config.settleDryRun ?? true;
  if (!settleDryRun && !config.submit) throw new TypeError("settleDryRun: false needs a submit hook that simulates before sending");

  const nets = new Map<string, NetworkState>();
  for (const c of config.networks) {
    const chainId = evmChainId(c.network);
    if (chainId === undefined) throw new Error(`networks: ${JSON.stringify(c.network)} is not an eip155 network`);
    if (nets.has(c.network)) throw new Error(`networks: ${c.network} is listed twice`);
    let client = c.publicClient;
    if (!client) {
      if (!c.rpcUrl) throw new Error(`networks[${c.network}]: give rpcUrl or publicClient`);
      // node:http keep-alive transport: viem's http() (undici fetch) costs several times the CPU per call.
      client = createPublicClient({ transport: rpcTransportForUrl(c.rpcUrl), pollingInterval: config.pollingIntervalMs ?? 1000 });
    }
    nets.set(c.network, { config: c, network: c.network, chainId, client, sendQueue: Promise.resolve() });
  }

  const domains = new Map<string, TokenDomain>();
  /** Authorizations being settled (or left pending) by this process: a second settle must not double-send. */
  const inFlight = new Map<string, bigint>();

  /**
   * Signer of a (domain, message, signature), remembered: settle re-verifies what verify just
   * checked, and clients retry. Recovery is a pure function of the key, so a hit is exact.
   */
  const recoveries = new Map<string, Address | "">();
  function recoverCached(separator: { bytes: Uint8Array; hex: Hex }, auth: TransferAuthorization, signature: Hex): Address | undefined {
    const key = `${separator.hex}${auth.from}${auth.to}${auth.value}|${auth.validAfter}|${auth.validBefore}${auth.nonce}${signature}`;
    let hit = recoveries.get(key);
    if (hit === undefined) {
      hit = recoverAddress(transferAuthorizationDigest(separator.bytes, auth), hexToBytes(signature)) ?? "";
      if (recoveries.size >= 10_000) recoveries.delete(recoveries.keys().next().value!);
      recoveries.set(key, hit);
    }
    return hit || undefined;
  }

  function fail(reason: string, message: string, payer?: Address): Failure {
    return { ok: false, reason, message, ...(payer ? { payer } : {}) };
  }

  /** The RPC must serve the chain the network names, or every signature check would be meaningless. */
  function checkChain(net: NetworkState): Promise<string | undefined> {
    net.chainCheck ??= net.client.getChainId().then(
      (id) => (id === net.chainId ? undefined : `the RPC for ${net.network} serves chain ${id}`),
      (e) => {
        net.chainCheck = undefined; // transient: try again next time
        throw e;
      },
    );
    return net.chainCheck;
  }

  function multicallAddress(net: NetworkState): Promise<Address | undefined> {
    if (net.config.multicall3 === false) return Promise.resolve(undefined);
    const address = net.config.multicall3 ?? MULTICALL3_ADDRESS;
    net.multicall ??= net.client.getCode({ address }).then(
      (code) => (code && code !== "0x" ? address : undefined),
      (e) => {
        net.multicall = undefined;
        throw e;
      },
    );
    return net.multicall;
  }

  async function check(payload: PaymentPayload, requirements: PaymentRequirements, dryRun = true): Promise<Verified | Failure> {
    // 1. Payload shape.
    const parsed = parseExactEvmPayload(payload?.payload);
    if (!parsed.ok) return fail(Reason.invalidPayload, parsed.message);
    const wire = parsed.value.authorization;
    const signature = parsed.value.signature;
    const payer = getAddress(wire.from);
    const auth = toTransferAuthorization({ ...wire, from: payer, to: getAddress(wire.to) });

    // 2. Scheme, network, asset.
    if (requirements.scheme !== "exact") return fail(Reason.invalidScheme, `paymentRequirements.scheme: expected "exact"`, payer);
    if (payload.accepted && payload.accepted.network !== requirements.network) {
      return fail(Reason.invalidNetwork, "paymentPayload.accepted.network: differs from paymentRequirements.network", payer);
    }
    const net = nets.get(requirements.network);
    if (!net) return fail(Reason.invalidNetwork, `paymentRequirements.network: ${JSON.stringify(requirements.network)} is not served`, payer);
    if (!isAddress(requirements.asset, { strict: false })) {
      return fail(Reason.invalidPaymentRequirements, "paymentRequirements.asset: not an address", payer);
    }
    if (!isAddress(requirements.payTo, { strict: false })) {
      return fail(Reason.invalidPaymentRequirements, "paymentRequirements.payTo: not an address", payer);
    }
    const asset = getAddress(requirements.asset);
    if (net.config.assets && !net.config.assets.some((a) => isAddressEqual(a.address, asset))) {
      return fail(Reason.evmAssetNotAllowed, `paymentRequirements.asset: ${asset} is not accepted on ${net.network}`, payer);
    }
    const name = requirements.extra?.name;
    const version = requirements.extra?.version;
    if (typeof name !== "string" || name === "" || typeof version !== "string" || version === "") {
      return fail(
        Reason.invalidPaymentRequirements,
        "paymentRequirements.extra.name and paymentRequirements.extra.version are required (the token's EIP-712 domain)",
        payer,
      );
    }

    // 3. Authorization against the requirements.
    if (!isAddressEqual(auth.to, requirements.payTo as Address)) {
      return fail(Reason.evmRecipientMismatch, `paymentPayload.payload.authorization.to: ${auth.to} is not payTo ${getAddress(requirements.payTo)}`, payer);
    }
    if (auth.value !== BigInt(requirements.amount)) {
      return fail(Reason.evmValueMismatch, `paymentPayload.payload.authorization.value: ${auth.value} differs from the required amount ${requirements.amount}`, payer);
    }
    const t = BigInt(Math.floor(now()));
    if (auth.validAfter > t) {
      return fail(Reason.evmValidAfter, `paymentPayload.payload.authorization.validAfter: not valid until ${auth.validAfter} (now ${t})`, payer);
    }
    if (auth.validBefore < t + minValidity) {
      return fail(
        Reason.evmValidBefore,
        `paymentPayload.payload.authorization.validBefore: ${auth.validBefore} is expired or closer than ${minValidity}s (now ${t})`,
        payer,
      );
    }
    // What matters is how far into the future the authorization reaches (validAfter <= now here):
    // a validAfter in the past, such as the official client's 0, grants nothing more than "from now".
    const reach = auth.validBefore - t;
    if (tolerance !== null && reach > BigInt(requirements.maxTimeoutSeconds + tolerance)) {
      return fail(
        Reason.evmValidityTooLong,
        `paymentPayload.payload.authorization.validBefore: valid for ${reach}s more, beyond maxTimeoutSeconds ${requirements.maxTimeoutSeconds} + ${tolerance}s`,
        payer,
      );
    }

    // 4. Signature (off-chain for EOAs; contract wallets are judged by the dry run below).
    const chainCheck = await checkChain(net);
    if (chainCheck) return fail(Reason.invalidNetwork, chainCheck, payer);
    let ecdsa = size(signature) === 65;
    if (ecdsa) {
      const sig = signatureProblem(signature);
      if (sig) return fail(Reason.evmSignature, `paymentPayload.payload.signature: ${sig}`, payer);
      const separator = domainSeparator({ name, version, chainId: net.chainId, verifyingContract: asset });
      const recovered = recoverCached(separator, auth, signature);
      if (!recovered || recovered !== payer.toLowerCase()) {
        if (!(await hasCode(net, payer))) {
          return fail(Reason.evmSignature, "paymentPayload.payload.signature: does not recover to authorization.from for this token, chain and message", payer);
        }
        ecdsa = false; // a contract wallet's 65-byte ERC-1271 signature
      }
    } else {
      if (isErc6492Signature(signature) && !(await hasCode(net, payer))) {
        return fail(Reason.evmSignature, "paymentPayload.payload.signature: undeployed (ERC-6492) smart wallets are not supported", payer);
      }
      if (!(await hasCode(net, payer))) {
        return fail(Reason.evmSignature, "paymentPayload.payload.signature: not a 65-byte ECDSA signature, and authorization.from has no contract code", payer);
      }
    }

    // 5. On-chain: token domain, balance, nonce state, dry run.
    // payer and auth.to are checksummed here, which the hand encoder relies on.
    const data = (ecdsa ? encodeTransferVrs(auth, signature) : undefined) ?? encodeTransfer(auth, signature, ecdsa);
    const chain = await readChain(net, asset, auth, dryRun ? data : undefined);
    const domain = chain.domain;
    const expected = domainSeparator({ name, version, chainId: net.chainId, verifyingContract: asset }).hex;
    const domainOk = domain.separator
      ? domain.separator.toLowerCase() === expected.toLowerCase()
      : domain.name !== undefined && domain.name === name && (domain.version === undefined || domain.version === version);
    if (!domainOk) {
      const actual = domain.name !== undefined ? `name=${JSON.stringify(domain.name)} version=${JSON.stringify(domain.version ?? "?")}` : "an unreadable EIP-712 domain";
      return fail(
        Reason.evmTokenDomainMismatch,
        `paymentRequirements.extra: token ${asset} has ${actual}, requirements say name=${JSON.stringify(name)} version=${JSON.stringify(version)}`,
        payer,
      );
    }
    if (chain.balance === undefined) return fail(Reason.evmSimulationFailed, `balanceOf failed on ${asset}: not an ERC-20 token?`, payer);
    if (chain.balance < auth.value) {
      return fail(Reason.insufficientFunds, `authorization.from holds ${chain.balance} atomic units of ${asset}, ${auth.value} required`, payer);
    }
    if (chain.used === undefined) return fail(Reason.evmSimulationFailed, `authorizationState failed on ${asset}: not an EIP-3009 token?`, payer);
    if (chain.used) return fail(Reason.evmNonceUsed, `paymentPayload.payload.authorization.nonce: already used or canceled`, payer);
    if (chain.simulationError !== undefined) {
      return fail(Reason.evmSimulationFailed, `transferWithAuthorization would revert: ${chain.simulationError}`, payer);
    }
    return { ok: true, net, asset, payer, auth, wire: { ...wire, from: payer, to: auth.to }, signature, data };
  }

  async function hasCode(net: NetworkState, address: Address): Promise<boolean> {
    const code = await net.client.getCode({ address });
    return !!code && code !== "0x";
  }

  interface ChainReads {
    domain: TokenDomain;
    balance?: bigint;
    used?: boolean;
    /** undefined when the dry run succeeded. */
    simulationError?: string;
  }

  /** Without `transferData`, reads only (no dry run). */
  async function readChain(net: NetworkState, asset: Address, auth: TransferAuthorization, transferData: Hex | undefined): Promise<ChainReads> {
    const key = `${net.network}|${asset.toLowerCase()}`;
    const cached = domains.get(key);
    const from = auth.from.slice(2).toLowerCase().padStart(64, "0");
    const calls: Hex[] = [
      `${BALANCE_OF}${from}`,
      `${AUTHORIZATION_STATE}${from}${auth.nonce.slice(2)}`,
      ...(cached ? [] : DOMAIN_READS),
      // Last: the dry run changes state inside the batch.
      ...(transferData ? [transferData] : []),
    ];
    // The dry run debits the payer (balance, nonce) and credits the payee: see batch.ts.
    const token = asset.toLowerCase();
    const keys = [`${token}|${auth.from.toLowerCase()}`, `${token}|${auth.to.toLowerCase()}`] as const;
    const write = transferData !== undefined;
    let { results, contended } = await callAll(net, asset, calls, keys, false, write);
    let balance = decodeOr(results[0], (d) => decodeUint256Result(d, "balanceOf"));
    let used = decodeOr(results[1], (d) => decodeBoolResult(d, "authorizationState"));
    // The dry run ran after another dry run by the same payer in that eth_call and failed although
    // the reads (the untouched state) would let it through: judge it alone.
    if (write && contended && !results[results.length - 1]!.success && balance !== undefined && balance >= auth.value && used === false) {
      ({ results } = await callAll(net, asset, calls, keys, true, write));
      balance = decodeOr(results[0], (d) => decodeUint256Result(d, "balanceOf"));
      used = decodeOr(results[1], (d) => decodeBoolResult(d, "authorizationState"));
    }
    let domain = cached;
    if (!domain) {
      domain = {
        separator: decodeOr(results[2], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "DOMAIN_SEPARATOR", data: d })),
        name: decodeOr(results[3], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "name", data: d })),
        version: decodeOr(results[4], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "version", data: d })),
      };
      // Only a token that answered is worth remembering; a non-token may get code later.
      if (domain.separator !== undefined || domain.name !== undefined) domains.set(key, domain);
    }
    if (!write) return { domain, balance, used };
    const sim = results[results.length - 1]!;
    return { domain, balance, used, simulationError: sim.success ? undefined : describeRevert(sim.returnData) };
  }

  /** All calls to `asset` in one eth_call via Multicall3 when present; otherwise one by one. */
  async function callAll(
    net: NetworkState,
    asset: Address,
    calls: Hex[],
    [payerKey, payeeKey]: readonly [string, string],
    alone: boolean,
    write: boolean,
  ): Promise<{ results: Aggregate3Result[]; contended: boolean }> {
    const mc = await multicallAddress(net);
    if (mc) {
      // Coalesced with concurrent verifications; the last call (the dry run) is the only write.
      const batcher = (net.batcher ??= createCallBatcher({ ...net.config.batch, send: (batch) => aggregate3(net, mc, batch) }));
      const reads = write ? calls.slice(0, -1) : calls;
      const r = await batcher.submit({
        reads: reads.map((callData) => ({ target: asset, callData })),
        writes: write ? [{ target: asset, callData: calls[calls.length - 1]! }] : [],
        ...(write ? { key: payerKey, credits: [payeeKey] } : {}),
        alone,
      });
      return { results: [...r.reads, ...r.writes], contended: r.contended };
    }
    const results = await Promise.all(
      calls.map(async (data) => {
        try {
          const r = await net.client.call({ to: asset, data, account: signer.address });
          return { success: true, returnData: r.data ?? "0x" };
        } catch (e) {
          const revert = revertData(e);
          if (revert === undefined) throw e; // transport failure, not a revert
          return { success: false, returnData: revert };
        }
      }),
    );
    return { results, contended: false };
  }

  /** One aggregate3 eth_call, every call allowed to fail on its own. */
  async function aggregate3(net: NetworkState, mc: Address, calls: readonly { target: Address; callData: Hex }[]): Promise<Aggregate3Result[]> {
    const data = encodeAggregate3(calls); // targets are checksummed (getAddress)
    // A raw eth_call: viem's `call` action adds formatting and checks this hot path does not need.
    const out = await net.client.request({ method: "eth_call", params: [{ from: signer.address, to: mc, data }, "latest"] });
    if (!out || out === "0x") throw new Error("Multicall3 returned no data");
    return decodeAggregate3(out);
  }

  async function guardedCheck(payload: PaymentPayload, requirements: PaymentRequirements, reason: string, dryRun = true): Promise<Verified | Failure> {
    try {
      return await check(payload, requirements, dryRun);
    } catch (e) {
      // RPC failures and the like: the payload may be fine, so this is not a verdict on it.
      return fail(reason, shortMessage(e));
    }
  }

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    const r = await guardedCheck(payload, requirements, Reason.unexpectedVerifyError);
    if (!r.ok) return { isValid: false, invalidReason: r.reason, invalidMessage: r.message, ...(r.payer ? { payer: r.payer } : {}) };
    return { isValid: true, payer: r.payer };
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const network = requirements.network;
    // The dry run is skipped only when `submit` simulates what it sends (see settleDryRun).
    const r = await guardedCheck(payload, requirements, Reason.unexpectedSettleError, settleDryRun);
    if (!r.ok) {
      return { success: false, errorReason: r.reason, errorMessage: r.message, transaction: "", network, ...(r.payer ? { payer: r.payer } : {}) };
    }
    const { payer } = r;
    const key = `${network}|${r.asset.toLowerCase()}|${payer.toLowerCase()}|${r.auth.nonce.toLowerCase()}`;
    purgeInFlight();
    if (inFlight.has(key)) {
      return { success: false, errorReason: Reason.evmNonceUsed, errorMessage: "this authorization is already being settled", transaction: "", network, payer };
    }
    inFlight.set(key, r.auth.validBefore);
    let keep = false;
    try {
      const call: ExactEvmSettlementCall = { network, asset: r.asset, authorization: r.wire, signature: r.signature, data: r.data };
      const outcome = config.submit ? await submitWithHook(call) : await broadcast(r.net, call);
      if ("error" in outcome) {
        return { success: false, errorReason: outcome.reason, errorMessage: outcome.error, transaction: outcome.transaction ?? "", network, payer };
      }
      if (outcome.status === "success") return { success: true, transaction: outcome.transaction, network, payer, amount: requirements.amount };
      if (outcome.status === "reverted") {
        return { success: false, errorReason: Reason.invalidTransactionState, errorMessage: "the settlement transaction reverted", transaction: outcome.transaction, network, payer };
      }
      keep = true; // pending: the nonce may still land, so never send it again from here
      return {
        success: false,
        errorReason: Reason.settlementPending,
        errorMessage: "the settlement transaction was sent but not confirmed in time",
        transaction: outcome.transaction,
        network,
        payer,
      };
    } finally {
      if (!keep) inFlight.delete(key);
    }
  }

  function purgeInFlight() {
    const t = BigInt(Math.floor(now()));
    for (const [k, validBefore] of inFlight) if (validBefore < t) inFlight.delete(k);
  }

  type Outcome = ExactEvmSubmitResult | { error: string; reason: string; transaction?: Hex };

  async function submitWithHook(call: ExactEvmSettlementCall): Promise<Outcome> {
    try {
      return await config.submit!(call);
    } catch (e) {
      return { error: `settlement submitter failed: ${shortMessage(e)}`, reason: Reason.unexpectedSettleError };
    }
  }

  /** Signs locally (so the hash is known before sending), sends, then waits for the receipt with a bound. */
  async function broadcast(net: NetworkState, call: ExactEvmSettlementCall): Promise<Outcome> {
    const wallet = createWalletClient({ account: signer, transport: custom({ request: (args) => net.client.request(args as never) }) });
    // Sends are serialized per network so concurrent settlements do not race for the signer's nonce.
    const sent = net.sendQueue.then(async (): Promise<Outcome> => {
      let serialized: Hex;
      try {
        const request = await wallet.prepareTransactionRequest({ account: signer, chain: null, to: call.asset, data: call.data });
        serialized = await signer.signTransaction(request as never);
      } catch (e) {
        // Gas estimation reverts here when the authorization stopped being valid since verify.
        return { error: `transaction would revert: ${shortMessage(e)}`, reason: Reason.invalidTransactionState };
      }
      const hash = keccak256(serialized);
      try {
        await wallet.sendRawTransaction({ serializedTransaction: serialized });
      } catch (e) {
        // The node may have accepted it despite the error; only a missing tx is a failure.
        const known = await net.client.getTransaction({ hash }).then(() => true, () => false);
        if (!known) return { error: `broadcast failed: ${shortMessage(e)}`, reason: Reason.unexpectedSettleError };
      }
      return { transaction: hash, status: "pending" };
    });
    net.sendQueue = sent.catch(() => undefined);
    const outcome = await sent;
    if ("error" in outcome) return outcome;
    try {
      const receipt = await net.client.waitForTransactionReceipt({ hash: outcome.transaction, timeout: receiptTimeoutMs });
      return { transaction: outcome.transaction, status: receipt.status === "success" ? "success" : "reverted" };
    } catch {
      // Timeout, or RPC trouble: the tx may still land, so it is pending, never failed.
      return { transaction: outcome.transaction, status: "pending" };
    }
  }

  /** Off-chain: the signer, before the service writes or limits anything for this payer. */
  async function authenticate(payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult> {
    if (!nets.has(requirements.network)) {
      return { ok: false, reason: Reason.invalidNetwork, message: `paymentRequirements.network: ${JSON.stringify(requirements.network)} is not served` };
    }
    const a = authenticateExactEvm(payload, requirements, { recover: recoverCached });
    return a.ok ? { ok: true, payer: a.payer, key: a.key } : a;
  }

  return {
    scheme: "exact",
    networks: [...nets.keys()] as Network[],
    signers: (network: Network) => (nets.has(network) ? [signer.address] : []),
    verify,
    settle,
    authenticate,
  };
}

const BALANCE_OF = toFunctionSelector("balanceOf(address)");
const AUTHORIZATION_STATE = toFunctionSelector("authorizationState(address,bytes32)");
const DOMAIN_READS: Hex[] = [toFunctionSelector("DOMAIN_SEPARATOR()"), toFunctionSelector("name()"), toFunctionSelector("version()")];

/** Calldata of `transferWithAuthorization`: the (v, r, s) overload for ECDSA signatures (every USDC version has it), bytes otherwise. */
export function encodeTransferWithAuthorization(authorization: ExactEvmAuthorization, signature: Hex): Hex {
  const auth = toTransferAuthorization(authorization);
  return encodeTransfer(auth, signature, size(signature) === 65);
}

function encodeTransfer(auth: TransferAuthorization, signature: Hex, ecdsa: boolean): Hex {
  const base = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
  if (ecdsa) {
    const { r, s, v, yParity } = parseSignature(signature);
    const v8 = v !== undefined ? Number(v) : 27 + yParity;
    return encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...base, v8 < 27 ? v8 + 27 : v8, r, s] });
  }
  return encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...base, signature] });
}

function decodeOr<T>(res: { success: boolean; returnData: Hex } | undefined, decode: (data: Hex) => T): T | undefined {
  if (!res || !res.success || res.returnData === "0x") return undefined;
  try {
    return decode(res.returnData);
  } catch {
    return undefined;
  }
}

function describeRevert(data: Hex): string {
  if (!data || data === "0x") return "reverted without a reason";
  try {
    const e = decodeErrorResult({ abi: eip3009Abi, data });
    const args = (e.args ?? []) as readonly unknown[];
    if ((e.errorName as string) === "Error" && typeof args[0] === "string") return args[0];
    return `${e.errorName}(${args.map(String).join(", ")})`;
  } catch {
    return `reverted with data ${data.slice(0, 74)}`;
  }
}

function revertData(e: unknown): Hex | undefined {
  if (!(e instanceof BaseError)) return undefined;
  const revert = e.walk((x) => x instanceof ContractFunctionRevertedError || typeof (x as { data?: unknown }).data === "string");
  const data = (revert as { data?: unknown } | null)?.data;
  if (typeof data === "string" && data.startsWith("0x")) return data as Hex;
  if (/revert/i.test(e.message)) return "0x";
  return undefined;
}

function shortMessage(e: unknown): string {
  const m = e instanceof BaseError ? e.shortMessage : e instanceof Error ? e.message : String(e);
  return (m.split("\n")[0] ?? "").slice(0, 300);
}
