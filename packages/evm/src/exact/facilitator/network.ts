/** Per-network facts read once (chain id, Multicall3) or briefly cached (fees), and code lookups. */
import type { Address } from "viem";
import { MULTICALL3_ADDRESS } from "../../contracts/abi.ts";
import type { NetworkState } from "./context.ts";

/** The RPC must serve the chain the network names, or every signature check would be meaningless. */
export function checkChain(net: NetworkState): Promise<string | undefined> {
  net.chainCheck ??= net.client.getChainId().then(
    (id) => (id === net.chainId ? undefined : `the RPC for ${net.network} serves chain ${id}`),
    (e) => {
      net.chainCheck = undefined; // transient: try again next time
      throw e;
    },
  );
  return net.chainCheck;
}

export function multicallAddress(net: NetworkState): Promise<Address | undefined> {
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

export async function hasCode(net: NetworkState, address: Address): Promise<boolean> {
  const code = await net.client.getCode({ address });
  return !!code && code !== "0x";
}

/** The chain's current EIP-1559 fee fields (shared for a second): what a mined transaction would pay. */
export function chainFees(net: NetworkState): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
  const now = Date.now();
  if (!net.fees || now - net.fees.at > 1_000) {
    const value = net.client.estimateFeesPerGas().then((f) => ({ maxFeePerGas: f.maxFeePerGas, maxPriorityFeePerGas: f.maxPriorityFeePerGas }));
    net.fees = { at: now, value };
    value.catch(() => {
      if (net.fees?.value === value) net.fees = undefined;
    });
  }
  return net.fees.value;
}
