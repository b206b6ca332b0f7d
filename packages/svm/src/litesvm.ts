/**
 * An in-process Solana (litesvm) behind the `SolanaChain` interface: real SVM execution of the
 * real SPL Token program, no validator, no network. Used by tests and the local JSON-RPC endpoint.
 */
import { address as toAddress, getBase58Decoder, getTransactionDecoder, type Signature, type Transaction } from "@solana/kit";
import type { FailedTransactionMetadata, LiteSVM } from "litesvm";
import { chainErrorFromJson, type SolanaChain } from "./chain.ts";

// Names of litesvm's fieldless error enums, by discriminant (its `const enum`s do not exist at runtime).
const TX_ERRORS = "AccountInUse AccountLoadedTwice AccountNotFound ProgramAccountNotFound InsufficientFundsForFee InvalidAccountForFee AlreadyProcessed BlockhashNotFound CallChainTooDeep MissingSignatureForFee InvalidAccountIndex SignatureFailure InvalidProgramForExecution SanitizeFailure ClusterMaintenance AccountBorrowOutstanding WouldExceedMaxBlockCostLimit UnsupportedVersion InvalidWritableAccount WouldExceedMaxAccountCostLimit WouldExceedAccountDataBlockLimit TooManyAccountLocks AddressLookupTableNotFound InvalidAddressLookupTableOwner InvalidAddressLookupTableData InvalidAddressLookupTableIndex InvalidRentPayingAccount WouldExceedMaxVoteCostLimit WouldExceedAccountDataTotalLimit MaxLoadedAccountsDataSizeExceeded ResanitizationNeeded InvalidLoadedAccountsDataSizeLimit UnbalancedTransaction ProgramCacheHitMaxLimit CommitCancelled".split(" ");
const IX_ERRORS = "GenericError InvalidArgument InvalidInstructionData InvalidAccountData AccountDataTooSmall InsufficientFunds IncorrectProgramId MissingRequiredSignature AccountAlreadyInitialized UninitializedAccount UnbalancedInstruction ModifiedProgramId ExternalAccountLamportSpend ExternalAccountDataModified ReadonlyLamportChange ReadonlyDataModified DuplicateAccountIndex ExecutableModified RentEpochModified NotEnoughAccountKeys AccountDataSizeChanged AccountNotExecutable AccountBorrowFailed AccountBorrowOutstanding DuplicateAccountOutOfSync InvalidError ExecutableDataModified ExecutableLamportChange ExecutableAccountNotRentExempt UnsupportedProgramId CallDepth MissingAccount ReentrancyNotAllowed MaxSeedLengthExceeded InvalidSeeds InvalidRealloc ComputationalBudgetExceeded PrivilegeEscalation ProgramEnvironmentSetupFailure ProgramFailedToComplete ProgramFailedToCompile Immutable IncorrectAuthority AccountNotRentExempt InvalidAccountOwner ArithmeticOverflow UnsupportedSysvar IllegalOwner MaxAccountsDataAllocationsExceeded MaxAccountsExceeded MaxInstructionTraceLengthExceeded BuiltinProgramsMustConsumeComputeUnits BorshIoError".split(" ");

/** litesvm's error objects in Solana's JSON shape, so both chains report errors alike. */
export function litesvmErrorJson(failed: FailedTransactionMetadata): unknown {
  const e = failed.err() as unknown;
  if (typeof e === "number") return TX_ERRORS[e] ?? `TransactionError${e}`;
  if (e && typeof e === "object") {
    const o = e as { index?: number; accountIndex?: number; err?: () => unknown };
    if (typeof o.err === "function" && typeof o.index === "number") {
      const inner = o.err();
      let innerJson: unknown;
      if (typeof inner === "number") innerJson = IX_ERRORS[inner] ?? `InstructionError${inner}`;
      else if (inner && typeof inner === "object" && "code" in inner) innerJson = { Custom: (inner as { code: number }).code };
      else if (inner && typeof inner === "object" && "msg" in inner) innerJson = { BorshIoError: (inner as { msg: string }).msg };
      else innerJson = String(inner);
      return { InstructionError: [o.index, innerJson] };
    }
    if (typeof o.index === "number") return { DuplicateInstruction: o.index };
    if (typeof o.accountIndex === "number") return { InsufficientFundsForRent: { account_index: o.accountIndex } };
  }
  return String(e);
}

export function isFailed(r: unknown): r is FailedTransactionMetadata {
  return !!r && typeof r === "object" && typeof (r as { err?: unknown }).err === "function";
}

export function decodeWire(wireBase64: string): Transaction {
  return getTransactionDecoder().decode(new Uint8Array(Buffer.from(wireBase64, "base64")));
}

/** A `SolanaChain` over a litesvm instance. */
export function litesvmChain(svm: LiteSVM): SolanaChain {
  return {
    async getLatestBlockhash() {
      // litesvm has no block height; 150 slots is Solana's blockhash validity window.
      return { blockhash: svm.latestBlockhash(), lastValidBlockHeight: svm.getClock().slot + 150n };
    },
    async getAccountInfo(addr) {
      const a = svm.getAccount(toAddress(addr));
      if (!a.exists) return null;
      return { owner: a.programAddress, lamports: BigInt(a.lamports), data: new Uint8Array(a.data), executable: a.executable };
    },
    async simulateTransaction(wire) {
      const r = svm.simulateTransaction(decodeWire(wire));
      if (isFailed(r)) return { err: chainErrorFromJson(litesvmErrorJson(r)), logs: r.meta().logs() };
      return { err: null, logs: r.meta().logs() };
    },
    async sendTransaction(wire) {
      const tx = decodeWire(wire);
      const r = svm.sendTransaction(tx);
      if (isFailed(r)) return { error: chainErrorFromJson(litesvmErrorJson(r)) };
      return { signature: getBase58Decoder().decode(r.signature()) };
    },
    async getSignatureStatus(signature) {
      const r = svm.getTransaction(signature as Signature);
      if (!r) return null;
      return { confirmationStatus: "finalized", err: isFailed(r) ? chainErrorFromJson(litesvmErrorJson(r)) : null };
    },
  };
}
