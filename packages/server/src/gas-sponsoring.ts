/**
 * The `eip2612GasSponsoring` extension advertised in a 402 (x402 specs/extensions/
 * eip2612_gas_sponsoring.md): a payer who never approved Permit2 may sign an EIP-2612 permit
 * instead, and the facilitator submits it with the settlement, paying its gas. The paywall offers
 * it when the facilitator lists the extension in `/supported` and some payment option of the
 * route pays through Permit2 (`exact` with `extra.assetTransferMethod: "permit2"`, or `upto`).
 * The client fills `info` in; nothing here is per payer.
 */
import type { Extensions, PaymentRequirements, SupportedResponse } from "@tollgate/core";

export const EIP2612_GAS_SPONSORING = "eip2612GasSponsoring";

const ADDRESS = { type: "string", pattern: "^0x[a-fA-F0-9]{40}$" } as const;
const UINT = { type: "string", pattern: "^[0-9]+$" } as const;

/** The advertisement as the spec shows it: a description and version, and the schema of what the client adds. */
export const EIP2612_GAS_SPONSORING_ADVERTISEMENT = {
  info: { description: "The facilitator accepts EIP-2612 gasless Permit to `Permit2` canonical contract.", version: "1" },
  schema: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: {
      from: { ...ADDRESS, description: "The address of the sender." },
      asset: { ...ADDRESS, description: "The address of the ERC-20 token contract." },
      spender: { ...ADDRESS, description: "The address of the spender (Canonical Permit2)." },
      amount: { ...UINT, description: "The amount to approve (uint256)." },
      nonce: { ...UINT, description: "The current nonce of the sender." },
      deadline: { ...UINT, description: "The timestamp at which the signature expires." },
      signature: { type: "string", pattern: "^0x[a-fA-F0-9]+$", description: "The 65-byte concatenated signature (r, s, v) as a hex string." },
      version: { type: "string", pattern: "^[0-9]+(\\.[0-9]+)*$", description: "Schema version identifier." },
    },
    required: ["from", "asset", "spender", "amount", "nonce", "deadline", "signature", "version"],
  },
} as const;

export const ERC20_APPROVAL_GAS_SPONSORING = "erc20ApprovalGasSponsoring";

/**
 * The `erc20ApprovalGasSponsoring` advertisement (specs/extensions/erc20_gas_sponsoring.md): the
 * client signs a raw `approve(Permit2, amount)` and the facilitator funds its gas, broadcasts it
 * and settles. Offered only when the facilitator lists it in `/supported` (Tollgate's own does
 * when configured with a sponsor key: `gasSponsoring`, apps/facilitator).
 */
export const ERC20_APPROVAL_GAS_SPONSORING_ADVERTISEMENT = {
  info: { description: "The facilitator accepts a raw signed approval transaction and will sponsor the gas fees.", version: "1" },
  schema: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: {
      from: { ...ADDRESS, description: "The address of the sender." },
      asset: { ...ADDRESS, description: "The ERC-20 token contract address to approve." },
      spender: { ...ADDRESS, description: "The address of the spender (Canonical Permit2)." },
      amount: { ...UINT, description: "Approval amount (uint256). Typically MaxUint." },
      signedTransaction: { type: "string", pattern: "^0x[a-fA-F0-9]+$", description: "RLP-encoded signed transaction calling ERC20.approve()." },
      version: { type: "string", pattern: "^[0-9]+(\\.[0-9]+)*$", description: "Schema version identifier." },
    },
    required: ["from", "asset", "spender", "amount", "signedTransaction", "version"],
  },
} as const;

/** Whether requirements are paid with a Permit2 signature (so an EIP-2612 permit can stand in for the approval). */
export function paysWithPermit2(requirements: PaymentRequirements): boolean {
  if (!requirements.network.startsWith("eip155:")) return false;
  return requirements.scheme === "upto" || (requirements.scheme === "exact" && requirements.extra?.assetTransferMethod === "permit2");
}

/** The gas-sponsoring extensions a 402 for these requirements carries (empty when none applies). */
export function gasSponsoringExtensions(accepts: readonly PaymentRequirements[], supported: SupportedResponse | undefined): Extensions {
  if (!accepts.some(paysWithPermit2)) return {};
  const listed = supported?.extensions ?? [];
  const extensions: Extensions = {};
  if (listed.includes(EIP2612_GAS_SPONSORING)) extensions[EIP2612_GAS_SPONSORING] = structuredClone(EIP2612_GAS_SPONSORING_ADVERTISEMENT) as unknown as Record<string, unknown>;
  if (listed.includes(ERC20_APPROVAL_GAS_SPONSORING)) extensions[ERC20_APPROVAL_GAS_SPONSORING] = structuredClone(ERC20_APPROVAL_GAS_SPONSORING_ADVERTISEMENT) as unknown as Record<string, unknown>;
  return extensions;
}

/** As gasSponsoringExtensions, asking the facilitator's (cached) `/supported` only when an option pays through Permit2. */
export async function gasSponsoringFor(facilitator: { supported(): Promise<SupportedResponse> }, accepts: readonly PaymentRequirements[]): Promise<Extensions> {
  if (!accepts.some(paysWithPermit2)) return {};
  return gasSponsoringExtensions(accepts, await facilitator.supported().catch(() => undefined));
}
