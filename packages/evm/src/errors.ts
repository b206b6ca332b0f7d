/**
 * Reading viem / JSON-RPC errors: whether a failure is the contract's revert (a verdict on the
 * payment) or the transport's (no verdict), and the nonce errors a sender resyncs on. Messages
 * for callers go through `safeMessage` from @tollgate/core (first line only, bounded): viem's
 * first line is its short message, and later lines may name the RPC URL.
 */
import { BaseError, ContractFunctionRevertedError, type Hex } from "viem";

/**
 * The revert data inside an eth_call / eth_estimateGas failure: the data when the node sent
 * some, "0x" for a revert without data, undefined when the failure is not a revert (transport).
 */
export function revertDataOf(error: unknown): Hex | undefined {
  if (error instanceof BaseError) {
    const found = error.walk((e) => e instanceof ContractFunctionRevertedError || typeof (e as { data?: unknown }).data === "string");
    const data = (found as { data?: unknown } | null)?.data;
    if (typeof data === "string" && data.startsWith("0x")) return data as Hex;
  }
  return /revert/i.test(errorText(error)) ? "0x" : undefined;
}

/** Every message and detail along an error's cause chain, for pattern checks (never for callers). */
export function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++) {
    parts.push(cur.message, (cur as { details?: string }).details ?? "");
    cur = cur.cause;
  }
  return parts.join(" | ");
}

export function isNonceError(e: unknown): boolean {
  return /nonce too (low|high)|invalid nonce|nonce has already been used|NonceTooLow|NonceTooHigh/i.test(errorText(e));
}

/**
 * Whether the node itself answered with an error (a JSON-RPC error object: it refused the
 * transaction). A timeout or a dropped connection is no answer: the transaction may be in.
 */
export function answeredByNode(e: unknown): boolean {
  let cur: unknown = e;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++) {
    // viem: RpcRequestError carries the node's JSON-RPC error; UnknownRpcError (code -1) wraps anything else.
    if ((cur as { name?: string }).name === "RpcRequestError") return true;
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "number" && code !== -1) return true;
    cur = cur.cause;
  }
  return false;
}
