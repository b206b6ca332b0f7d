// our contracts: typed ABIs (pure data) and compiled artifacts
export {
  MULTICALL3_ADDRESS,
  batchSettlerAbi,
  buildContracts,
  eip3009Abi,
  loadArtifact,
  multicall3Abi,
  transferWithAuthorizationTypes,
  type Artifact,
  type ContractName,
  PERMIT2_ADDRESS,
  EXACT_PERMIT2_PROXY_ADDRESS,
  permit2WitnessTypes,
  eip2612PermitTypes,
  permit2Abi,
  exactPermit2ProxyAbi,
  erc20PermitAbi,
} from "./contracts/index.ts";

// exact scheme (EIP-3009): client, server, facilitator
export * from "./exact/index.ts";
export { EIP2612_GAS_SPONSORING, eip2612SponsoringExtension, type Eip2612SponsoringInfo, type SponsoringReader } from "./exact/eip2612-sponsoring.ts";

// settlement engine: nonces, several signers, batching, fee bumps (plugs into the exact facilitator's submit hook)
export * from "./settlement/index.ts";

// signature recovery (native libsecp256k1 with a pure-JS fallback)
export * from "./crypto/index.ts";

// JSON-RPC transport for viem over node:http(s) keep-alive (several times cheaper than http())
export * from "./rpc/index.ts";
