// The `exact` EVM payment the page asks a wallet to sign: EIP-712 typed data for
// eth_signTypedData_v4 (EIP-3009 TransferWithAuthorization, or Permit2's
// PermitWitnessTransferFrom when the requirements say `assetTransferMethod: "permit2"`), and the
// payload built from the signature. Same domain, types, numbers and JSON as @tollgate/evm's Node
// client (signExactEvmAuthorization / signExactPermit2Authorization); the constants are in
// ./constants.ts, and packages/server/test/paywall-browser-payload.test.ts compares the two clients.
import type { Extensions, PaymentPayload, PaymentRequired, PaymentRequirements } from "@tollgate/core";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, eip2612PermitTypes, permit2WitnessTypes, transferWithAuthorizationTypes } from "./constants.ts";
import { bytesToHex, checksumAddress, isAddress } from "./address.ts";

export interface TypedData {
  types: Record<string, readonly { name: string; type: string }[]>;
  primaryType: string;
  domain: Record<string, string | number>;
  message: Record<string, unknown>;
}

/** A payment waiting for its signature: what to sign, and how to make the payload from the signature. */
export interface UnsignedPayment {
  typedData: TypedData;
  payload(signature: string): Record<string, unknown>;
}

export interface SignOptions {
  /** Unix seconds. */
  now: number;
  /** Seconds validAfter is backdated (clock skew); the Node client's default is 600. */
  skew?: number;
  /** EIP-3009: 0x + 64 hex; Permit2: a uint256 in decimal. Default random. */
  nonce?: string;
}

const DOMAIN_3009 = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
] as const;
const DOMAIN_PERMIT2 = [
  { name: "name", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
] as const;

export function wantsPermit2(r: PaymentRequirements): boolean {
  return r.extra?.assetTransferMethod === "permit2";
}

/** The chain id of requirements the page can pay, or an error naming the field (like payable.ts). */
export function payableChainId(r: PaymentRequirements): number {
  if (r.scheme !== "exact") throw new Error(`requirements.scheme: expected "exact", got ${JSON.stringify(r.scheme)}`);
  const m = /^eip155:([1-9][0-9]{0,15})$/.exec(r.network);
  if (!m) throw new Error(`requirements.network: ${JSON.stringify(r.network)} is not an eip155 network`);
  if (!isAddress(r.asset)) throw new Error(`requirements.asset: not an address`);
  if (!isAddress(r.payTo)) throw new Error(`requirements.payTo: not an address`);
  if (!/^(0|[1-9][0-9]{0,77})$/.test(r.amount)) throw new Error(`requirements.amount: not an atomic amount`);
  if (!Number.isInteger(r.maxTimeoutSeconds) || r.maxTimeoutSeconds <= 0) throw new Error(`requirements.maxTimeoutSeconds: expected a positive integer`);
  return Number(m[1]);
}

export function randomBytes32(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** What the wallet signs for `requirements`, paid from `from`. */
export function unsignedPayment(r: PaymentRequirements, from: string, opts: SignOptions): UnsignedPayment {
  return wantsPermit2(r) ? unsignedPermit2(r, from, opts) : unsignedEip3009(r, from, opts);
}

function unsignedEip3009(r: PaymentRequirements, from: string, opts: SignOptions): UnsignedPayment {
  const chainId = payableChainId(r);
  const name = r.extra?.name;
  const version = r.extra?.version;
  if (typeof name !== "string" || name === "" || typeof version !== "string" || version === "") {
    throw new Error(`requirements.extra.name and requirements.extra.version are required (the EIP-712 domain of token ${r.asset})`);
  }
  const nonce = opts.nonce ?? bytesToHex(randomBytes32());
  const authorization = {
    from: checksumAddress(from),
    to: checksumAddress(r.payTo),
    value: BigInt(r.amount).toString(),
    validAfter: Math.max(0, opts.now - (opts.skew ?? 600)).toString(),
    validBefore: (opts.now + r.maxTimeoutSeconds).toString(),
    nonce,
  };
  return {
    typedData: {
      types: { EIP712Domain: DOMAIN_3009, ...transferWithAuthorizationTypes },
      primaryType: "TransferWithAuthorization",
      domain: { name, version, chainId, verifyingContract: checksumAddress(r.asset) },
      message: authorization,
    },
    payload: (signature) => ({ signature, authorization }),
  };
}

function unsignedPermit2(r: PaymentRequirements, from: string, opts: SignOptions): UnsignedPayment {
  const chainId = payableChainId(r);
  const nonce = opts.nonce ?? BigInt(bytesToHex(randomBytes32())).toString();
  const token = checksumAddress(r.asset);
  const to = checksumAddress(r.payTo);
  const amount = BigInt(r.amount).toString();
  const deadline = (opts.now + r.maxTimeoutSeconds).toString();
  const validAfter = Math.max(0, opts.now - (opts.skew ?? 600)).toString();
  const permit2Authorization = {
    from: checksumAddress(from),
    permitted: { token, amount },
    spender: EXACT_PERMIT2_PROXY_ADDRESS,
    nonce,
    deadline,
    witness: { to, validAfter },
  };
  return {
    typedData: {
      types: { EIP712Domain: DOMAIN_PERMIT2, ...permit2WitnessTypes },
      primaryType: "PermitWitnessTransferFrom",
      domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
      message: { permitted: { token, amount }, spender: EXACT_PERMIT2_PROXY_ADDRESS, nonce, deadline, witness: { to, validAfter } },
    },
    payload: (signature) => ({ signature, permit2Authorization }),
  };
}

export const EIP2612_GAS_SPONSORING = "eip2612GasSponsoring";

/**
 * The EIP-2612 permit of the `eip2612GasSponsoring` extension (a payer who never approved Permit2
 * lets the facilitator submit a permit with the payment): exactly the amount, to Permit2, expiring
 * with the Permit2 authorization, as eip2612-sponsoring.ts signs it.
 */
export function unsignedSponsoringPermit(r: PaymentRequirements, owner: string, tokenNonce: bigint, deadline: string): { typedData: TypedData; extension(signature: string): Extensions } {
  const chainId = payableChainId(r);
  const name = r.extra?.name;
  const version = r.extra?.version;
  if (typeof name !== "string" || typeof version !== "string") throw new Error("requirements.extra.name/version: the token's EIP-712 domain is not advertised");
  const from = checksumAddress(owner);
  const asset = checksumAddress(r.asset);
  const amount = BigInt(r.amount).toString();
  return {
    typedData: {
      types: { EIP712Domain: DOMAIN_3009, ...eip2612PermitTypes },
      primaryType: "Permit",
      domain: { name, version, chainId, verifyingContract: asset },
      message: { owner: from, spender: PERMIT2_ADDRESS, value: amount, nonce: tokenNonce.toString(), deadline },
    },
    extension: (signature) => ({
      [EIP2612_GAS_SPONSORING]: { info: { from, asset, spender: PERMIT2_ADDRESS, amount, nonce: tokenNonce.toString(), deadline, signature, version: "1" } },
    }),
  };
}

/** core's client merge: `base` (what the payer signed) wins over `added` (the server's advertisement), key order of `added` first. */
export function mergeExtensions(base: Extensions | undefined, added: Extensions | undefined): Extensions | undefined {
  if (!added) return base;
  if (!base) return added;
  const out: Record<string, unknown> = { ...added };
  for (const [k, v] of Object.entries(base)) {
    const a = out[k];
    out[k] = isPlainObject(v) && isPlainObject(a) ? mergeExtensions(v, a) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The v2 PaymentPayload for the PAYMENT-SIGNATURE header, shaped as core's client shapes it. */
export function paymentPayload(required: PaymentRequired, requirements: PaymentRequirements, payload: Record<string, unknown>, signed?: Extensions): PaymentPayload {
  const extensions = mergeExtensions(signed, required.extensions);
  const p: PaymentPayload = { x402Version: 2, resource: required.resource, accepted: requirements, payload };
  if (extensions) p.extensions = extensions;
  return p;
}

// ------------------------------------------------------------------ chain reads (eth_call data)

const word = (address: string) => address.slice(2).toLowerCase().padStart(64, "0");

export const balanceOfData = (owner: string) => `0x70a08231${word(owner)}`;
export const allowanceData = (owner: string, spender: string) => `0xdd62ed3e${word(owner)}${word(spender)}`;
export const noncesData = (owner: string) => `0x7ecebe00${word(owner)}`;

/** A uint256 eth_call result; throws on anything else (a token that is not there answers "0x"). */
export function uint256Result(result: unknown): bigint {
  if (typeof result !== "string" || !/^0x[0-9a-fA-F]{1,64}$/.test(result)) throw new Error(`unexpected eth_call result ${JSON.stringify(result)}`);
  return BigInt(result);
}

export { PERMIT2_ADDRESS };
