// Deploys the local x402 world onto a running anvil: USDC stand-in, BatchSettler, Multicall3, funded payers.
import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
} from "@tollgate/evm";
import { EXACT_PERMIT2_PROXY_ADDRESS, MULTICALL3_ADDRESS, PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, eip3009Abi, loadArtifact } from "@tollgate/evm";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  type Account,
  type Address,
  type Chain,
  type Hex,
} from "viem";
import { mnemonicToSeedSync } from "@scure/bip39";
import { HDKey, hdKeyToAccount, privateKeyToAccount } from "viem/accounts";

/** Anvil's well-known development mnemonic. These keys are public: never use them for real funds. */
export const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

export type DevAccount = { address: Address; privateKey: Hex };

export type TokenInfo = { address: Address; name: string; symbol: string; version: string; decimals: number };

export type LocalNetwork = {
  chainId: number;
  /** CAIP-2 id, e.g. "eip155:31337". */
  network: `eip155:${number}`;
  rpcUrl: string;
  usdc: TokenInfo;
  /**
   * A plain ERC-20 WITHOUT EIP-3009 but with EIP-2612 `permit` (6 decimals, EIP-712 version "1"),
   * paid through Permit2 (x402 `exact`, assetTransferMethod "permit2"); every payer holds some.
   */
  plainToken: TokenInfo;
  /** Our Permit2 and x402 exact and upto Permit2 proxies, at their canonical addresses. */
  permit2: { address: Address; exactProxy: Address; uptoProxy: Address };
  batchSettler: { address: Address };
  /** x402 `batch-settlement` contracts (ours), at their canonical addresses. */
  batchSettlement: BatchSettlementContracts;
  multicall3: { address: Address };
  accounts: {
    deployer: DevAccount;
    facilitator: DevAccount;
    payee: DevAccount;
    payers: DevAccount[];
  };
};

export type DeployLocalNetworkOptions = {
  rpcUrl: string;
  /** Number of funded payer accounts (mnemonic indexes 3, 4, …). Default 3. */
  payers?: number;
  /** USDC minted to each payer, atomic units (6 decimals). Default 1_000 USDC. */
  payerBalance?: bigint;
};

export const DEFAULT_PAYER_BALANCE = 1_000_000_000n; // 1,000 USDC

let masterKey: HDKey | undefined;
const devAccounts = new Map<number, DevAccount>();

/**
 * Deterministic dev account at `index` of the anvil mnemonic (0 deployer, 1 facilitator, 2 payee, 3+ payers),
 * on the standard path m/44'/60'/0'/0/index. The seed is stretched once per process (PBKDF2 is slow).
 */
export function devAccount(index: number): DevAccount {
  const hit = devAccounts.get(index);
  if (hit) return hit;
  masterKey ??= HDKey.fromMasterSeed(mnemonicToSeedSync(ANVIL_MNEMONIC));
  const hd = hdKeyToAccount(masterKey, { addressIndex: index });
  const key = hd.getHdKey().privateKey;
  if (!key) throw new Error(`could not derive dev account ${index}`);
  const account: DevAccount = { address: hd.address, privateKey: `0x${Buffer.from(key).toString("hex")}` };
  devAccounts.set(index, account);
  return account;
}

type Clients = {
  chain: Chain;
  publicClient: ReturnType<typeof createPublicClient>;
};

async function clientsFor(rpcUrl: string): Promise<Clients> {
  const id = await createPublicClient({ transport: http(rpcUrl) }).getChainId();
  const chain = defineChain({
    id,
    name: `tollgate-devnet-${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
    contracts: { multicall3: { address: MULTICALL3_ADDRESS } },
  });
  // Local chain: poll fast so receipts come back in milliseconds, not viem's default seconds.
  return { chain, publicClient: createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: 50 }) };
}

function walletFor(rpcUrl: string, chain: Chain, account: Account) {
  return createWalletClient({ account, chain, transport: http(rpcUrl), pollingInterval: 50 });
}

function deployerAccount(deployer?: DevAccount): Account {
  return privateKeyToAccount((deployer ?? devAccount(0)).privateKey);
}

async function waitSuccess(publicClient: Clients["publicClient"], hash: Hex, what: string) {
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${what} reverted (tx ${hash})`);
  return receipt;
}

/** Deploys a TollgateUSD with the given EIP-712 name/version (owner: the deployer, who can mint). */
export async function deployToken(
  rpcUrl: string,
  token: { name: string; symbol: string; version: string },
  opts: { deployer?: DevAccount } = {},
): Promise<TokenInfo> {
  const { chain, publicClient } = await clientsFor(rpcUrl);
  const wallet = walletFor(rpcUrl, chain, deployerAccount(opts.deployer));
  const artifact = loadArtifact("TollgateUSD");
  const hash = await wallet.deployContract({
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    args: [token.name, token.symbol, token.version],
  });
  const receipt = await waitSuccess(publicClient, hash, `deploying token ${token.name}`);
  if (!receipt.contractAddress) throw new Error(`deploying token ${token.name}: no contract address`);
  return { address: getAddress(receipt.contractAddress), name: token.name, symbol: token.symbol, version: token.version, decimals: 6 };
}

/** Mints `amount` atomic units of a TollgateUSD token to `to` (caller must be the token owner; default deployer). */
export async function mintTo(
  rpcUrl: string,
  token: Address,
  to: Address,
  amount: bigint,
  opts: { minter?: DevAccount } = {},
): Promise<Hex> {
  const { chain, publicClient } = await clientsFor(rpcUrl);
  const wallet = walletFor(rpcUrl, chain, deployerAccount(opts.minter));
  const hash = await wallet.writeContract({
    address: token,
    abi: loadArtifact("TollgateUSD").abi,
    functionName: "mint",
    args: [to, amount],
  });
  await waitSuccess(publicClient, hash, `minting to ${to}`);
  return hash;
}

/**
 * Installs our Permit2 and x402 exact Permit2 proxy at their canonical addresses (anvil_setCode:
 * neither has constructor state), deploys a PlainToken (ERC-20 + EIP-2612, no EIP-3009) and mints
 * `payerBalance` of it to every payer. Payers have NOT approved Permit2: a test does that (or pays
 * with the eip2612GasSponsoring extension) as a real payer would.
 */
export async function installPermit2(
  rpcUrl: string,
  opts: { payers?: readonly Address[]; payerBalance?: bigint; deployer?: DevAccount; token?: { name: string; symbol: string } } = {},
): Promise<{ plainToken: TokenInfo; permit2: { address: Address; exactProxy: Address; uptoProxy: Address } }> {
  const { chain, publicClient } = await clientsFor(rpcUrl);
  const testClient = createTestClient({ mode: "anvil", chain, transport: http(rpcUrl) });
  await testClient.setCode({ address: PERMIT2_ADDRESS, bytecode: loadArtifact("Permit2").deployedBytecode });
  await testClient.setCode({ address: EXACT_PERMIT2_PROXY_ADDRESS, bytecode: loadArtifact("ExactPermit2Proxy").deployedBytecode });
  await testClient.setCode({ address: UPTO_PERMIT2_PROXY_ADDRESS, bytecode: loadArtifact("UptoPermit2Proxy").deployedBytecode });

  const token = opts.token ?? { name: "Plain Dollar", symbol: "PUSD" };
  const wallet = walletFor(rpcUrl, chain, deployerAccount(opts.deployer));
  const artifact = loadArtifact("PlainToken");
  const hash = await wallet.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, args: [token.name, token.symbol] });
  const receipt = await waitSuccess(publicClient, hash, `deploying token ${token.name}`);
  if (!receipt.contractAddress) throw new Error(`deploying token ${token.name}: no contract address`);
  const plainToken: TokenInfo = { address: getAddress(receipt.contractAddress), name: token.name, symbol: token.symbol, version: "1", decimals: 6 };
  const amount = opts.payerBalance ?? DEFAULT_PAYER_BALANCE;
  if (amount > 0n) {
    for (const payer of opts.payers ?? []) {
      const minted = await wallet.writeContract({ address: plainToken.address, abi: artifact.abi, functionName: "mint", args: [payer, amount] });
      await waitSuccess(publicClient, minted, `minting ${token.symbol} to ${payer}`);
    }
  }
  return { plainToken, permit2: { address: PERMIT2_ADDRESS, exactProxy: EXACT_PERMIT2_PROXY_ADDRESS, uptoProxy: UPTO_PERMIT2_PROXY_ADDRESS } };
}

export type BatchSettlementContracts = { address: Address; erc3009Collector: Address; permit2Collector: Address };

/**
 * Installs our x402BatchSettlement and its ERC-3009 and Permit2 deposit collectors at their canonical
 * addresses (anvil_setCode: none has constructor state or immutables; the collectors name the
 * settlement contract and Permit2 by constant). The Permit2 collector needs Permit2 (installPermit2).
 */
export async function installBatchSettlement(rpcUrl: string): Promise<BatchSettlementContracts> {
  const { chain } = await clientsFor(rpcUrl);
  const testClient = createTestClient({ mode: "anvil", chain, transport: http(rpcUrl) });
  await testClient.setCode({ address: BATCH_SETTLEMENT_ADDRESS, bytecode: loadArtifact("BatchSettlement").deployedBytecode });
  await testClient.setCode({ address: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, bytecode: loadArtifact("ERC3009DepositCollector").deployedBytecode });
  await testClient.setCode({ address: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, bytecode: loadArtifact("Permit2DepositCollector").deployedBytecode });
  return { address: BATCH_SETTLEMENT_ADDRESS, erc3009Collector: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, permit2Collector: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS };
}

/** Deploys TollgateUSD ("USD Coin"/"USDC"/"2") and BatchSettler, installs Multicall3, funds payers. */
export async function deployLocalNetwork(opts: DeployLocalNetworkOptions): Promise<LocalNetwork> {
  const { rpcUrl } = opts;
  const payerCount = opts.payers ?? 3;
  const payerBalance = opts.payerBalance ?? DEFAULT_PAYER_BALANCE;
  if (!Number.isInteger(payerCount) || payerCount < 0) throw new Error("payers must be a non-negative integer");
  if (payerBalance < 0n) throw new Error("payerBalance must not be negative");

  const { chain, publicClient } = await clientsFor(rpcUrl);
  const deployer = devAccount(0);
  const accounts = {
    deployer,
    facilitator: devAccount(1),
    payee: devAccount(2),
    payers: Array.from({ length: payerCount }, (_, i) => devAccount(3 + i)),
  };

  const testClient = createTestClient({ mode: "anvil", chain, transport: http(rpcUrl) });
  await testClient.setCode({ address: MULTICALL3_ADDRESS, bytecode: loadArtifact("Multicall3").deployedBytecode });

  const usdc = await deployToken(rpcUrl, { name: "USD Coin", symbol: "USDC", version: "2" }, { deployer });

  const wallet = walletFor(rpcUrl, chain, deployerAccount(deployer));
  const settler = loadArtifact("BatchSettler");
  const settlerHash = await wallet.deployContract({ abi: settler.abi, bytecode: settler.bytecode });
  const settlerReceipt = await waitSuccess(publicClient, settlerHash, "deploying BatchSettler");
  if (!settlerReceipt.contractAddress) throw new Error("deploying BatchSettler: no contract address");

  // Payers beyond anvil's 10 prefunded accounts still get gas money, in case they send transactions.
  for (const payer of accounts.payers) {
    if (payerBalance > 0n) await mintTo(rpcUrl, usdc.address, payer.address, payerBalance, { minter: deployer });
    const eth = await publicClient.getBalance({ address: payer.address });
    if (eth === 0n) await testClient.setBalance({ address: payer.address, value: 10n ** 21n });
  }

  const permit2 = await installPermit2(rpcUrl, { payers: accounts.payers.map((p) => p.address), payerBalance, deployer });
  const batchSettlement = await installBatchSettlement(rpcUrl);

  // Sanity check: what the scheme will read on-chain matches what we advertise.
  const version = await publicClient.readContract({ address: usdc.address, abi: eip3009Abi, functionName: "version" });
  if (version !== "2") throw new Error(`deployed USDC reports version ${version}, expected 2`);

  return {
    chainId: chain.id,
    network: `eip155:${chain.id}`,
    rpcUrl,
    usdc,
    plainToken: permit2.plainToken,
    permit2: permit2.permit2,
    batchSettler: { address: getAddress(settlerReceipt.contractAddress) },
    batchSettlement,
    multicall3: { address: MULTICALL3_ADDRESS },
    accounts,
  };
}
