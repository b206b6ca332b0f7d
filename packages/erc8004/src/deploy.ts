// Installs our ERC-8004 registries on a local anvil AT the public deployment addresses, so tools
// that hard-code those addresses work against the devnet unchanged. anvil_setCode writes runtime
// code without running a constructor; the registries are built for that (see the .sol files) and
// the two that point at the identity registry learn its address through a one-time initialize.
import { loadArtifact } from "@tollgate/evm";
import { createPublicClient, createTestClient, createWalletClient, getAddress, http, isAddressEqual, zeroAddress, type Address, type Hex } from "viem";
import { reputationRegistryAbi, validationRegistryAbi } from "./abi.ts";
import { ERC8004_MAINNET_ADDRESSES, type Erc8004Addresses } from "./addresses.ts";

export type DeployErc8004Options = {
  rpcUrl: string;
  /** Where to install; default the public mainnet addresses (ERC8004_TESTNET_ADDRESSES also works). */
  addresses?: Erc8004Addresses;
};

export type DeployedErc8004 = Erc8004Addresses & { chainId: number };

/** Sends the initialize transactions; impersonated, so no key is needed. Public: nothing secret. */
const INSTALLER: Address = "0x8004000000000000000000000000000000008004";

/**
 * Puts the three registries' code at `addresses` and binds reputation and validation to the
 * identity registry. Idempotent: running it again re-installs the same code and skips the
 * initialize calls already done (state such as registered agents survives). Throws if a registry
 * is already bound to a different identity registry.
 */
export async function deployErc8004(opts: DeployErc8004Options): Promise<DeployedErc8004> {
  const addresses = opts.addresses ?? ERC8004_MAINNET_ADDRESSES;
  const transport = http(opts.rpcUrl);
  const publicClient = createPublicClient({ transport, pollingInterval: 50 });
  const testClient = createTestClient({ mode: "anvil", transport });
  const chainId = await publicClient.getChainId();

  const code: [Address, Hex][] = [
    [addresses.identityRegistry, loadArtifact("AgentIdentityRegistry").deployedBytecode],
    [addresses.reputationRegistry, loadArtifact("AgentReputationRegistry").deployedBytecode],
    [addresses.validationRegistry, loadArtifact("AgentValidationRegistry").deployedBytecode],
  ];
  for (const [address, bytecode] of code) await testClient.setCode({ address, bytecode });

  const pending: { address: Address; abi: typeof reputationRegistryAbi | typeof validationRegistryAbi }[] = [];
  for (const [address, abi] of [
    [addresses.reputationRegistry, reputationRegistryAbi],
    [addresses.validationRegistry, validationRegistryAbi],
  ] as const) {
    const bound = await publicClient.readContract({ address, abi, functionName: "getIdentityRegistry" });
    if (isAddressEqual(bound, zeroAddress)) pending.push({ address, abi });
    else if (!isAddressEqual(bound, addresses.identityRegistry)) {
      throw new Error(`registry at ${address} is already bound to identity registry ${bound}, not ${addresses.identityRegistry}`);
    }
  }

  if (pending.length > 0) {
    await testClient.impersonateAccount({ address: INSTALLER });
    await testClient.setBalance({ address: INSTALLER, value: 10n ** 18n });
    try {
      const wallet = createWalletClient({ account: INSTALLER, transport });
      for (const { address, abi } of pending) {
        const hash = await wallet.writeContract({ address, abi, functionName: "initialize", args: [addresses.identityRegistry], chain: null });
        const receipt = await publicClient.waitForTransactionReceipt({ hash });
        if (receipt.status !== "success") throw new Error(`initialize of ${address} reverted (tx ${hash})`);
      }
    } finally {
      await testClient.stopImpersonatingAccount({ address: INSTALLER });
    }
  }

  return {
    chainId,
    identityRegistry: getAddress(addresses.identityRegistry),
    reputationRegistry: getAddress(addresses.reputationRegistry),
    validationRegistry: getAddress(addresses.validationRegistry),
  };
}
