/**
 * Solana keypairs in the two forms wallets and `solana-keygen` write: base58 of the 64-byte
 * keypair (32-byte seed, then the public key), or a JSON array of those 64 bytes (a keygen
 * file's content). Errors never contain the key.
 */
import { createKeyPairSignerFromBytes, getBase58Encoder, type KeyPairSigner } from "@solana/kit";

/** The 64 bytes of a keypair written as base58 or a JSON byte array; undefined when it is neither. */
export function decodeSolanaSecretKey(text: string): Uint8Array | undefined {
  const s = text.trim();
  let bytes: Uint8Array;
  if (s.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      return undefined;
    }
    if (!Array.isArray(parsed) || !parsed.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return undefined;
    bytes = Uint8Array.from(parsed as number[]);
  } else {
    if (!/^[1-9A-HJ-NP-Za-km-z]+$/.test(s)) return undefined;
    try {
      bytes = new Uint8Array(getBase58Encoder().encode(s));
    } catch {
      return undefined;
    }
  }
  return bytes.length === 64 ? bytes : undefined;
}

export class SolanaKeyError extends Error {
  override name = "SolanaKeyError";
}

/**
 * A signer from a keypair text; rejects a keypair whose public half does not match its seed.
 * `label` names the key's origin in errors (e.g. "SOLANA_FEE_PAYER_KEY").
 */
export async function solanaSignerFromSecret(text: string, label = "Solana key"): Promise<KeyPairSigner> {
  const bytes = decodeSolanaSecretKey(text);
  if (!bytes) throw new SolanaKeyError(`${label}: expected a Solana keypair: base58 of 64 bytes, or a JSON array of 64 numbers (a solana-keygen file's content)`);
  try {
    return await createKeyPairSignerFromBytes(bytes);
  } catch {
    throw new SolanaKeyError(`${label}: the public key does not match the secret key`);
  } finally {
    bytes.fill(0);
  }
}
