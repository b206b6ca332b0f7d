/**
 * libsecp256k1 through the `secp256k1` package's prebuilt N-API binding, loaded once for
 * recovery (verify) and signing (the fee payer's transactions). The package itself silently
 * falls back to `elliptic` when the binding cannot load, so the binding is loaded directly
 * (`secp256k1/bindings`); undefined means callers use @noble/curves instead.
 */
import { createRequire } from "node:module";

export interface NativeSecp256k1 {
  ecdsaRecover(sig64: Uint8Array, recid: number, msg32: Uint8Array, compressed: boolean): Uint8Array;
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number };
}

function load(): NativeSecp256k1 | undefined {
  if (process.env.TOLLGATE_SECP256K1 === "js") return undefined; // forced pure JS (tests, debugging)
  try {
    const native = createRequire(import.meta.url)("secp256k1/bindings") as NativeSecp256k1;
    return typeof native?.ecdsaRecover === "function" && typeof native.ecdsaSign === "function" ? native : undefined;
  } catch {
    return undefined;
  }
}

export const nativeSecp256k1: NativeSecp256k1 | undefined = load();
