// The SD-JWT VC instances (from @sd-jwt/sd-jwt-vc) this package signs and verifies with. ES256 over
// P-256, sha-256 disclosure digests, 128-bit salts from node:crypto.
import { ES256, digest, generateSalt } from "@sd-jwt/crypto-nodejs";
import { SDJwtVcInstance } from "@sd-jwt/sd-jwt-vc";
import type { PrivateMandateJwk, PublicMandateJwk } from "./keys.ts";

export const hasher = (data: string | ArrayBuffer, alg: string) => digest(data, alg);

function jwkFromPayload(payload: unknown): PublicMandateJwk | undefined {
  const cnf = (payload as { cnf?: { jwk?: PublicMandateJwk } } | undefined)?.cnf;
  return cnf?.jwk;
}

/** Verifies the key-binding JWT with the key in the mandate's own `cnf.jwk`. */
const kbVerifier = async (data: string, sig: string, payload: unknown) => {
  const jwk = jwkFromPayload(payload);
  if (!jwk) return false;
  return (await ES256.getVerifier(jwk))(data, sig);
};

export async function issuerInstance(userKey: PrivateMandateJwk): Promise<SDJwtVcInstance> {
  return new SDJwtVcInstance({
    signer: await ES256.getSigner(userKey),
    signAlg: ES256.alg,
    hasher,
    hashAlg: "sha-256",
    saltGenerator: generateSalt,
  });
}

export async function holderInstance(agentKey: PrivateMandateJwk): Promise<SDJwtVcInstance> {
  return new SDJwtVcInstance({
    hasher,
    hashAlg: "sha-256",
    saltGenerator: generateSalt,
    kbSigner: await ES256.getSigner(agentKey),
    kbSignAlg: ES256.alg,
  });
}

export async function verifierInstance(userPublicJwk: PublicMandateJwk): Promise<SDJwtVcInstance> {
  return new SDJwtVcInstance({
    verifier: await ES256.getVerifier(userPublicJwk),
    kbVerifier,
    hasher,
    hashAlg: "sha-256",
  });
}

/** Decoder only (no keys): for reading claims before or without verification. */
export function decoderInstance(): SDJwtVcInstance {
  return new SDJwtVcInstance({ hasher, hashAlg: "sha-256" });
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
