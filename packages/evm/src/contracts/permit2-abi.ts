/**
 * Typed ABI fragments and canonical addresses for the x402 `exact` scheme's Permit2 asset transfer
 * method: Permit2's SignatureTransfer surface, the x402 exact Permit2 proxy, and the plain ERC-20
 * reads and EIP-2612 `permit` it relies on. Pure data, hand-written `as const` (checked against our
 * compiled Permit2.sol / ExactPermit2Proxy.sol / PlainToken.sol in packages/evm/test).
 */
import type { Address } from "viem";

/** Uniswap's canonical Permit2 (same address on every chain; the devnet installs ours there). */
export const PERMIT2_ADDRESS: Address = "0x000000000022D473030F116dDEE9F6B43aC78BA3";

/** The canonical x402ExactPermit2Proxy (CREATE2, same address on every chain; the devnet installs ours there). */
export const EXACT_PERMIT2_PROXY_ADDRESS: Address = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001";

/**
 * EIP-712 types of the payer's signature: Permit2's PermitWitnessTransferFrom with x402's witness.
 * viem sorts referenced types itself, so the encoded type is
 * "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)".
 */
export const permit2WitnessTypes = {
  PermitWitnessTransferFrom: [
    { name: "permitted", type: "TokenPermissions" },
    { name: "spender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "witness", type: "Witness" },
  ],
  TokenPermissions: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
  Witness: [
    { name: "to", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

/** EIP-712 types of an EIP-2612 `permit` (what the `eip2612GasSponsoring` extension carries). */
export const eip2612PermitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

const tokenPermissions = {
  name: "permitted",
  type: "tuple",
  components: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
} as const;

const permitTransferFrom = {
  name: "permit",
  type: "tuple",
  components: [tokenPermissions, { name: "nonce", type: "uint256" }, { name: "deadline", type: "uint256" }],
} as const;

const witness = {
  name: "witness",
  type: "tuple",
  components: [
    { name: "to", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

/** Permit2's SignatureTransfer surface (what x402 uses of it). */
export const permit2Abi = [
  { type: "function", name: "DOMAIN_SEPARATOR", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "bytes32" }] },
  {
    type: "function",
    name: "nonceBitmap",
    stateMutability: "view",
    inputs: [
      { name: "", type: "address" },
      { name: "", type: "uint256" },
    ],
    outputs: [{ name: "", type: "uint256" }],
  },
  {
    type: "function",
    name: "invalidateUnorderedNonces",
    stateMutability: "nonpayable",
    inputs: [
      { name: "wordPos", type: "uint256" },
      { name: "mask", type: "uint256" },
    ],
    outputs: [],
  },
  {
    type: "function",
    name: "permitWitnessTransferFrom",
    stateMutability: "nonpayable",
    inputs: [
      permitTransferFrom,
      {
        name: "transferDetails",
        type: "tuple",
        components: [
          { name: "to", type: "address" },
          { name: "requestedAmount", type: "uint256" },
        ],
      },
      { name: "owner", type: "address" },
      { name: "witness", type: "bytes32" },
      { name: "witnessTypeString", type: "string" },
      { name: "signature", type: "bytes" },
    ],
    outputs: [],
  },
  {
    type: "event",
    name: "UnorderedNonceInvalidation",
    inputs: [
      { name: "owner", type: "address", indexed: true },
      { name: "word", type: "uint256", indexed: false },
      { name: "mask", type: "uint256", indexed: false },
    ],
  },
  { type: "error", name: "InvalidAmount", inputs: [{ name: "maxAmount", type: "uint256" }] },
  { type: "error", name: "SignatureExpired", inputs: [{ name: "signatureDeadline", type: "uint256" }] },
  { type: "error", name: "InvalidNonce", inputs: [] },
  { type: "error", name: "InvalidSignature", inputs: [] },
  { type: "error", name: "InvalidSigner", inputs: [] },
  { type: "error", name: "InvalidSignatureLength", inputs: [] },
  { type: "error", name: "InvalidContractSignature", inputs: [] },
] as const;

/** The x402 exact Permit2 proxy: `settle`, and `settleWithPermit` for `eip2612GasSponsoring`. */
export const exactPermit2ProxyAbi = [
  { type: "function", name: "PERMIT2", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "address" }] },
  { type: "function", name: "WITNESS_TYPEHASH", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "bytes32" }] },
  { type: "function", name: "WITNESS_TYPE_STRING", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  {
    type: "function",
    name: "settle",
    stateMutability: "nonpayable",
    inputs: [permitTransferFrom, { name: "owner", type: "address" }, witness, { name: "signature", type: "bytes" }],
    outputs: [],
  },
  {
    type: "function",
    name: "settleWithPermit",
    stateMutability: "nonpayable",
    inputs: [
      {
        name: "permit2612",
        type: "tuple",
        components: [
          { name: "value", type: "uint256" },
          { name: "deadline", type: "uint256" },
          { name: "r", type: "bytes32" },
          { name: "s", type: "bytes32" },
          { name: "v", type: "uint8" },
        ],
      },
      permitTransferFrom,
      { name: "owner", type: "address" },
      witness,
      { name: "signature", type: "bytes" },
    ],
    outputs: [],
  },
  { type: "event", name: "Settled", inputs: [] },
  { type: "event", name: "SettledWithPermit", inputs: [] },
  { type: "error", name: "InvalidAmount", inputs: [] },
  { type: "error", name: "InvalidDestination", inputs: [] },
  { type: "error", name: "InvalidOwner", inputs: [] },
  { type: "error", name: "InvalidPermit2Address", inputs: [] },
  { type: "error", name: "PaymentTooEarly", inputs: [] },
  { type: "error", name: "Permit2612AmountMismatch", inputs: [] },
  { type: "error", name: "ReentrancyGuardReentrantCall", inputs: [] },
] as const;

/** ERC-20 reads and writes the Permit2 method needs, plus EIP-2612 `permit`/`nonces`. */
export const erc20PermitAbi = [
  { type: "function", name: "balanceOf", stateMutability: "view", inputs: [{ name: "account", type: "address" }], outputs: [{ name: "", type: "uint256" }] },
  {
    type: "function",
    name: "allowance",
    stateMutability: "view",
    inputs: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
    ],
    outputs: [{ name: "", type: "uint256" }],
  },
  {
    type: "function",
    name: "approve",
    stateMutability: "nonpayable",
    inputs: [
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
    ],
    outputs: [{ name: "", type: "bool" }],
  },
  { type: "function", name: "nonces", stateMutability: "view", inputs: [{ name: "owner", type: "address" }], outputs: [{ name: "", type: "uint256" }] },
  {
    type: "function",
    name: "permit",
    stateMutability: "nonpayable",
    inputs: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "deadline", type: "uint256" },
      { name: "v", type: "uint8" },
      { name: "r", type: "bytes32" },
      { name: "s", type: "bytes32" },
    ],
    outputs: [],
  },
  {
    type: "event",
    name: "Transfer",
    inputs: [
      { name: "from", type: "address", indexed: true },
      { name: "to", type: "address", indexed: true },
      { name: "value", type: "uint256", indexed: false },
    ],
  },
] as const;

// ----------------------------------------------------------------------------- upto

/** The canonical x402UptoPermit2Proxy (CREATE2, same address on every chain; the devnet installs ours there). */
export const UPTO_PERMIT2_PROXY_ADDRESS: Address = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002";

/**
 * EIP-712 types of an `upto` payer's signature: the witness adds the facilitator allowed to settle.
 * Encoded type: "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)".
 */
export const uptoPermit2WitnessTypes = {
  PermitWitnessTransferFrom: permit2WitnessTypes.PermitWitnessTransferFrom,
  TokenPermissions: permit2WitnessTypes.TokenPermissions,
  Witness: [
    { name: "to", type: "address" },
    { name: "facilitator", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

const uptoWitness = {
  name: "witness",
  type: "tuple",
  components: [
    { name: "to", type: "address" },
    { name: "facilitator", type: "address" },
    { name: "validAfter", type: "uint256" },
  ],
} as const;

const eip2612PermitArg = {
  name: "permit2612",
  type: "tuple",
  components: [
    { name: "value", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "r", type: "bytes32" },
    { name: "s", type: "bytes32" },
    { name: "v", type: "uint8" },
  ],
} as const;

/** The x402 upto Permit2 proxy: `settle(permit, amount, owner, witness, sig)` and `settleWithPermit`. */
export const uptoPermit2ProxyAbi = [
  { type: "function", name: "PERMIT2", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "address" }] },
  { type: "function", name: "WITNESS_TYPEHASH", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "bytes32" }] },
  { type: "function", name: "WITNESS_TYPE_STRING", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  {
    type: "function",
    name: "settle",
    stateMutability: "nonpayable",
    inputs: [permitTransferFrom, { name: "amount", type: "uint256" }, { name: "owner", type: "address" }, uptoWitness, { name: "signature", type: "bytes" }],
    outputs: [],
  },
  {
    type: "function",
    name: "settleWithPermit",
    stateMutability: "nonpayable",
    inputs: [eip2612PermitArg, permitTransferFrom, { name: "amount", type: "uint256" }, { name: "owner", type: "address" }, uptoWitness, { name: "signature", type: "bytes" }],
    outputs: [],
  },
  { type: "event", name: "Settled", inputs: [] },
  { type: "event", name: "SettledWithPermit", inputs: [] },
  { type: "error", name: "AmountExceedsPermitted", inputs: [] },
  { type: "error", name: "UnauthorizedFacilitator", inputs: [] },
  { type: "error", name: "InvalidAmount", inputs: [] },
  { type: "error", name: "InvalidDestination", inputs: [] },
  { type: "error", name: "InvalidOwner", inputs: [] },
  { type: "error", name: "PaymentTooEarly", inputs: [] },
  { type: "error", name: "Permit2612AmountMismatch", inputs: [] },
  { type: "error", name: "ReentrancyGuardReentrantCall", inputs: [] },
] as const;
