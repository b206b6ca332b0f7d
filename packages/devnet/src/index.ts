import { startAnvil, type StartAnvilOptions, type AnvilInstance } from "./anvil.ts";
import { deployLocalNetwork, type DeployLocalNetworkOptions, type LocalNetwork } from "./deploy.ts";

export { anvilBinaryPath, startAnvil, type AnvilInstance, type StartAnvilOptions } from "./anvil.ts";
export {
  ANVIL_MNEMONIC,
  DEFAULT_PAYER_BALANCE,
  deployLocalNetwork,
  deployToken,
  devAccount,
  installPermit2,
  installBatchSettlement,
  type BatchSettlementContracts,
  mintTo,
  type DeployLocalNetworkOptions,
  type DevAccount,
  type LocalNetwork,
  type TokenInfo,
} from "./deploy.ts";

export type StartLocalNetworkOptions = StartAnvilOptions & Omit<DeployLocalNetworkOptions, "rpcUrl">;

export type RunningLocalNetwork = LocalNetwork & { anvil: AnvilInstance; stop(): Promise<void> };

/** startAnvil + deployLocalNetwork. Stops anvil again if deployment fails. */
export async function startLocalNetwork(opts: StartLocalNetworkOptions = {}): Promise<RunningLocalNetwork> {
  const anvil = await startAnvil(opts);
  try {
    const net = await deployLocalNetwork({ ...opts, rpcUrl: anvil.rpcUrl });
    return { ...net, anvil, stop: () => anvil.stop() };
  } catch (err) {
    await anvil.stop();
    throw err;
  }
}
