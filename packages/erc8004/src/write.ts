// The shared shape of every write action: simulate (so a refusal comes back as a named reason
// without spending gas), send, wait for the receipt.
import {
  BaseError,
  ContractFunctionRevertedError,
  type Abi,
  type Account,
  type Address,
  type Chain,
  type ContractFunctionArgs,
  type ContractFunctionName,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from "viem";

/** What a write action needs: something to read/wait with and a wallet with an account. */
export type Erc8004Clients = {
  publicClient: PublicClient;
  walletClient: WalletClient<Transport, Chain | undefined, Account>;
};

/** Why a write did not happen: `reason` is the contract's error name (or revert string) when known. */
export type WriteRefused = { ok: false; reason: string; detail?: string };

export type WriteResult<T extends object = object> = ({ ok: true; txHash: Hex; receipt: TransactionReceipt } & T) | WriteRefused;

/** A refusal's best short name: custom error name, revert string, or viem's short message. */
export function refusalOf(error: unknown): WriteRefused {
  if (error instanceof BaseError) {
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      const name = reverted.data?.errorName;
      if (name && name !== "Error") {
        const args = reverted.data?.args?.map((a) => String(a)).join(", ");
        return { ok: false, reason: name, ...(args ? { detail: `${name}(${args})` } : {}) };
      }
      return { ok: false, reason: reverted.reason ?? reverted.shortMessage };
    }
    return { ok: false, reason: error.shortMessage };
  }
  return { ok: false, reason: error instanceof Error ? error.message : String(error) };
}

/** Simulates then sends `functionName` on `address`; a revert in either step becomes a refusal. */
export async function sendContractWrite<
  const abi extends Abi,
  functionName extends ContractFunctionName<abi, "nonpayable" | "payable">,
>(
  clients: Erc8004Clients,
  call: {
    address: Address;
    abi: abi;
    functionName: functionName;
    args: ContractFunctionArgs<abi, "nonpayable" | "payable", functionName>;
  },
): Promise<{ ok: true; txHash: Hex; receipt: TransactionReceipt } | WriteRefused> {
  const { publicClient, walletClient } = clients;
  const account = walletClient.account;
  try {
    // The generic call shape is checked at the call sites; viem's overloads do not narrow here.
    const { request } = await publicClient.simulateContract({ ...(call as object), account } as never);
    const txHash = await walletClient.writeContract({ ...(request as object), chain: walletClient.chain ?? null } as never);
    const receipt = await publicClient.waitForTransactionReceipt({ hash: txHash });
    if (receipt.status !== "success") return { ok: false, reason: "reverted", detail: `transaction ${txHash} reverted` };
    return { ok: true, txHash, receipt };
  } catch (error) {
    return refusalOf(error);
  }
}
