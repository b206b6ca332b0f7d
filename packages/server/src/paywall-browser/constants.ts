// The protocol constants the page signs with, written out here rather than imported from
// @tollgate/evm and @tollgate/core: the bundle then depends only on this folder (it changes when
// the page's code changes, not when a neighbour's module grows), and none of those modules' other
// exports can ride along. packages/server/test/paywall-browser-payload.test.ts checks each one
// equals the Node packages' own, and signs with both.

/** x402 v2 HTTP headers (core's `Headers.v2`). */
export const PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE";
export const PAYMENT_REQUIRED = "PAYMENT-REQUIRED";
export const PAYMENT_RESPONSE = "PAYMENT-RESPONSE";

/** Uniswap's canonical Permit2 (evm's PERMIT2_ADDRESS). */
export const PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3";
/** The canonical x402 exact Permit2 proxy (evm's EXACT_PERMIT2_PROXY_ADDRESS). */
export const EXACT_PERMIT2_PROXY_ADDRESS = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001";

/** EIP-3009 (evm's transferWithAuthorizationTypes). */
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

/** Permit2's PermitWitnessTransferFrom with x402's witness (evm's permit2WitnessTypes). */
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

/** EIP-2612 permit (evm's eip2612PermitTypes). */
export const eip2612PermitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;
