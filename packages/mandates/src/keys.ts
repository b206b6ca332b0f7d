// ES256 (P-256) keys as JWKs: the user's key signs open Payment Mandates, the agent's key (named in the
// open mandate's `cnf.jwk`) signs the key-binding JWT that closes one.
import { ES256 } from "@sd-jwt/crypto-nodejs";
import { calculateJwkThumbprint } from "jose";

/** An EC P-256 public key as a JWK (AP2 `types/jwk.json`). */
export interface PublicMandateJwk {
  kty: "EC";
  crv: "P-256";
  x: string;
  y: string;
  kid?: string;
  alg?: "ES256";
}

/** An EC P-256 private key as a JWK (`d` is the private scalar). */
export interface PrivateMandateJwk extends PublicMandateJwk {
  d: string;
}

export interface MandateKeyPair {
  privateJwk: PrivateMandateJwk;
  publicJwk: PublicMandateJwk;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** Generates a fresh ES256 key pair. `kid` is the RFC 7638 thumbprint of the public key. */
export async function generateMandateKey(): Promise<MandateKeyPair> {
  const { privateKey } = await ES256.generateKeyPair();
  return importMandateKey(privateKey as Record<string, unknown>);
}

/** Validates and normalizes a private P-256 JWK (from storage or another library); throws on anything else. */
export async function importMandateKey(jwk: unknown): Promise<MandateKeyPair> {
  const pub = importPublicMandateJwk(jwk);
  const d = (jwk as { d?: unknown }).d;
  if (typeof d !== "string" || !B64URL_32.test(d)) throw new TypeError("mandate key: expected a P-256 private JWK with a base64url `d`");
  const kid = pub.kid ?? (await mandateKeyThumbprint(pub));
  const publicJwk: PublicMandateJwk = { ...pub, kid };
  return { publicJwk, privateJwk: { ...publicJwk, d } };
}

/** Validates a public P-256 JWK and returns only its public members (a private `d` is dropped). */
export function importPublicMandateJwk(jwk: unknown): PublicMandateJwk {
  if (typeof jwk !== "object" || jwk === null) throw new TypeError("mandate key: expected a JWK object");
  const k = jwk as Record<string, unknown>;
  if (k.kty !== "EC" || k.crv !== "P-256") throw new TypeError("mandate key: expected kty EC, crv P-256 (ES256)");
  if (typeof k.x !== "string" || !B64URL_32.test(k.x) || typeof k.y !== "string" || !B64URL_32.test(k.y)) {
    throw new TypeError("mandate key: x and y must be 32-byte base64url coordinates");
  }
  const out: PublicMandateJwk = { kty: "EC", crv: "P-256", x: k.x, y: k.y };
  if (typeof k.kid === "string") out.kid = k.kid;
  return out;
}

/** The public half of a key pair or private JWK, ready to put in `cnf.jwk` or hand to a verifier. */
export function exportPublicMandateJwk(jwk: PrivateMandateJwk | PublicMandateJwk): PublicMandateJwk {
  return importPublicMandateJwk(jwk);
}

/** RFC 7638 SHA-256 thumbprint (base64url) of the public key; used as `kid` and to compare keys. */
export function mandateKeyThumbprint(jwk: PublicMandateJwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, "sha256");
}

/** Serializes a key pair for storage (JSON of the private JWK; keep it secret). */
export function exportMandateKey(key: MandateKeyPair): string {
  return JSON.stringify(key.privateJwk);
}
