/**
 * CAIP-2 chain ids (`namespace:reference`), the network names of x402 v2.
 * https://github.com/ChainAgnostic/CAIPs/blob/main/CAIPs/caip-2.md
 */
export type Network = `${string}:${string}`;

const CAIP2 = /^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/;

export function isCaip2(value: string): value is Network {
  return CAIP2.test(value);
}

export function parseCaip2(value: string): { namespace: string; reference: string } {
  if (!isCaip2(value)) throw new TypeError(`not a CAIP-2 chain id: ${JSON.stringify(value)}`);
  const i = value.indexOf(":");
  return { namespace: value.slice(0, i), reference: value.slice(i + 1) };
}

/** `eip155:8453` for chain id 8453. */
export function evmNetwork(chainId: number | bigint): Network {
  return `eip155:${chainId}`;
}

/** The EVM chain id of an `eip155:` network, or undefined for another namespace. */
export function evmChainId(network: string): number | undefined {
  const m = /^eip155:([1-9][0-9]{0,17})$/.exec(network);
  return m ? Number(m[1]) : undefined;
}

/** Whether `network` matches a pattern such as `eip155:*` or an exact id. */
export function networkMatches(pattern: string, network: string): boolean {
  if (pattern.endsWith(":*")) return network.startsWith(pattern.slice(0, -1));
  return pattern === network;
}
