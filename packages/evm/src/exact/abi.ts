/**
 * The few ABI fragments the `exact` scheme needs (EIP-3009 + EIP-712 domain reads +
 * Multicall3 aggregate3). Kept local so the scheme does not depend on compiled artifacts.
 */

export const MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11" as const;

/** EIP-712 types of EIP-3009 `transferWithAuthorization`. */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;

const authorizationInputs = [
  { name: "from", type: "address" },
  { name: "to", type: "address" },
  { name: "value", type: "uint256" },
  { name: "validAfter", type: "uint256" },
  { name: "validBefore", type: "uint256" },
  { name: "nonce", type: "bytes32" },
] as const;

export const exactTokenAbi = [
  {
    type: "function",
    name: "transferWithAuthorization",
    stateMutability: "nonpayable",
    inputs: [...authorizationInputs, { name: "v", type: "uint8" }, { name: "r", type: "bytes32" }, { name: "s", type: "bytes32" }],
    outputs: [],
  },
  {
    type: "function",
    name: "transferWithAuthorization",
    stateMutability: "nonpayable",
    inputs: [...authorizationInputs, { name: "signature", type: "bytes" }],
    outputs: [],
  },
  {
    type: "function",
    name: "authorizationState",
    stateMutability: "view",
    inputs: [
      { name: "authorizer", type: "address" },
      { name: "nonce", type: "bytes32" },
    ],
    outputs: [{ name: "", type: "bool" }],
  },
  { type: "function", name: "balanceOf", stateMutability: "view", inputs: [{ name: "account", type: "address" }], outputs: [{ name: "", type: "uint256" }] },
  { type: "function", name: "name", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  { type: "function", name: "version", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "string" }] },
  { type: "function", name: "DOMAIN_SEPARATOR", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "bytes32" }] },
  // Custom errors of our local token (USDC itself reverts with Error(string)), so dry-run failures decode to a name.
  { type: "error", name: "InvalidSignature", inputs: [] },
  { type: "error", name: "AuthorizationNotYetValid", inputs: [{ name: "validAfter", type: "uint256" }] },
  { type: "error", name: "AuthorizationExpired", inputs: [{ name: "validBefore", type: "uint256" }] },
  { type: "error", name: "AuthorizationUsedOrCanceled", inputs: [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }] },
  {
    type: "error",
    name: "ERC20InsufficientBalance",
    inputs: [{ name: "sender", type: "address" }, { name: "balance", type: "uint256" }, { name: "needed", type: "uint256" }],
  },
] as const;

export const aggregate3Abi = [
  {
    type: "function",
    name: "aggregate3",
    stateMutability: "payable",
    inputs: [
      {
        name: "calls",
        type: "tuple[]",
        components: [
          { name: "target", type: "address" },
          { name: "allowFailure", type: "bool" },
          { name: "callData", type: "bytes" },
        ],
      },
    ],
    outputs: [
      {
        name: "returnData",
        type: "tuple[]",
        components: [
          { name: "success", type: "bool" },
          { name: "returnData", type: "bytes" },
        ],
      },
    ],
  },
] as const;
