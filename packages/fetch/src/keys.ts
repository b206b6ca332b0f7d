/**
 * Where a paying client's key comes from: an environment variable, or an encrypted keystore
 * in the Web3 Secret Storage v3 format (what geth, MetaMask exports, MyEtherWallet and
 * ethers write), so existing wallet files open here and ours open there.
 *
 * No error message ever contains key material: messages describe the problem, not the input.
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes, randomUUID, scrypt, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { bytesToHex, hexToBytes, keccak256, type Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";

export class KeyError extends Error {
  override name = "KeyError";
}

const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;

function toAccount(key: string, what: string): PrivateKeyAccount {
  if (!PRIVATE_KEY.test(key)) throw new KeyError(`${what} is not a private key: expected 0x followed by 64 hex digits (${key.length} characters given)`);
  try {
    return privateKeyToAccount(key as Hex);
  } catch {
    // viem's message may quote the key; ours does not.
    throw new KeyError(`${what} is not a valid secp256k1 private key (zero or out of range)`);
  }
}

/** The account whose key is in `process.env[name]`. */
export function accountFromEnv(name = "TOLLGATE_PRIVATE_KEY", env: Record<string, string | undefined> = process.env): PrivateKeyAccount {
  const value = env[name];
  if (value === undefined || value.trim() === "") throw new KeyError(`environment variable ${name} is not set`);
  return toAccount(value.trim(), `environment variable ${name}`);
}

// ------------------------------------------------------------------ keystore v3

export interface ScryptParams {
  dklen: number;
  n: number;
  r: number;
  p: number;
  salt: string;
}
export interface Pbkdf2Params {
  dklen: number;
  c: number;
  prf: "hmac-sha256";
  salt: string;
}

export interface KeystoreV3 {
  version: 3;
  id: string;
  /** Lowercase hex address without 0x. */
  address: string;
  crypto: {
    cipher: "aes-128-ctr";
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: "scrypt" | "pbkdf2";
    kdfparams: ScryptParams | Pbkdf2Params;
    mac: string;
  };
}

export interface CreateKeystoreOptions {
  /** scrypt cost, a power of two. Default 262144 (2^18, geth's "standard"); tests use less. */
  n?: number;
  r?: number;
  p?: number;
  /** Fixed salt/iv/id, for reproducible test vectors only. Hex without 0x. */
  salt?: string;
  iv?: string;
  id?: string;
}

export class KeystoreError extends Error {
  override name = "KeystoreError";
}

const HEX = /^(0x)?[0-9a-fA-F]*$/;
function hexField(value: unknown, field: string, bytes?: number): Buffer {
  if (typeof value !== "string" || !HEX.test(value) || value.replace(/^0x/, "").length % 2 !== 0) {
    throw new KeystoreError(`keystore ${field}: expected a hex string`);
  }
  const buf = Buffer.from(value.replace(/^0x/, ""), "hex");
  if (bytes !== undefined && buf.length !== bytes) throw new KeystoreError(`keystore ${field}: expected ${bytes} bytes, got ${buf.length}`);
  return buf;
}

function intField(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new KeystoreError(`keystore ${field}: expected an integer between ${min} and ${max}`);
  }
  return value;
}

/**
 * Bounds on the KDF parameters read from a keystore file, checked before any derivation runs:
 * the file is input, and scrypt's memory (128·n·r bytes) and time (∝ n·r·p) follow it. geth's
 * "standard" (n=2^18, r=8, p=1: 256 MiB), geth's "light" (n=2^12, r=8, p=6), ethers
 * (n=2^17, r=8, p=1) and the pbkdf2 files of geth/web3 (c=262144) fit; n=2^22 with r=64 (32 GiB)
 * does not.
 */
export const KEYSTORE_LIMITS = {
  /** scrypt n (a power of two). */
  maxN: 2 ** 20,
  maxR: 32,
  maxP: 16,
  /** scrypt's working memory, 128·n·r bytes. */
  maxMemoryBytes: 256 * 2 ** 20,
  /** scrypt's total work, 128·n·r·p bytes mixed (4× geth's standard). */
  maxWorkBytes: 2 ** 30,
  /** pbkdf2 iterations (16× geth's). */
  maxPbkdf2Iterations: 2 ** 22,
} as const;

const MiB = 2 ** 20;
const fmtBytes = (b: number) => (b >= 2 ** 30 ? `${b / 2 ** 30} GiB` : `${b / MiB} MiB`);

/** Checks scrypt parameters against KEYSTORE_LIMITS; `field` prefixes the names in errors. */
function checkScryptParams(n: unknown, r: unknown, p: unknown, field: string): { n: number; r: number; p: number } {
  const N = intField(n, `${field}.n`, 2, KEYSTORE_LIMITS.maxN);
  if ((N & (N - 1)) !== 0) throw new KeystoreError(`keystore ${field}.n: must be a power of two`);
  const R = intField(r, `${field}.r`, 1, KEYSTORE_LIMITS.maxR);
  const P = intField(p, `${field}.p`, 1, KEYSTORE_LIMITS.maxP);
  const memory = 128 * N * R;
  if (memory > KEYSTORE_LIMITS.maxMemoryBytes) {
    throw new KeystoreError(`keystore ${field}.n and ${field}.r: n=${N} with r=${R} needs ${fmtBytes(memory)} of memory (128·n·r), above the limit of ${fmtBytes(KEYSTORE_LIMITS.maxMemoryBytes)}`);
  }
  if (memory * P > KEYSTORE_LIMITS.maxWorkBytes) {
    throw new KeystoreError(`keystore ${field}.p: n=${N}, r=${R}, p=${P} needs ${fmtBytes(memory * P)} of scrypt work (128·n·r·p), above the limit of ${fmtBytes(KEYSTORE_LIMITS.maxWorkBytes)}`);
  }
  // RFC 7914 requires n < 2^(16·r); OpenSSL enforces it (some old files, e.g. r=1 with n=2^18, break it).
  if (R < 4 && N >= 2 ** (16 * R)) throw new KeystoreError(`keystore ${field}: n=${N} with r=${R} is outside RFC 7914 (n must be below 2^(16·r)) and is not supported`);
  return { n: N, r: R, p: P };
}

function scryptAsync(password: Buffer, salt: Buffer, dklen: number, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    // maxmem: scrypt needs about 128·n·r bytes; node's default cap (32 MiB) is below geth's standard
    // parameters. The callers bound n and r first (checkScryptParams), so this is at most ~290 MiB.
    scrypt(password, salt, dklen, { N: n, r, p, maxmem: 128 * n * r + 128 * r * p + (32 << 20) }, (err, key) => (err ? reject(new KeystoreError(`scrypt failed: ${err.message}`)) : resolve(key))),
  );
}

function pbkdf2Async(password: Buffer, salt: Buffer, c: number, dklen: number): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2(password, salt, c, dklen, "sha256", (err, key) => (err ? reject(err) : resolve(key))));
}

function mac(derived: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.from(hexToBytes(keccak256(Buffer.concat([derived.subarray(16, 32), ciphertext]))));
}

/** Encrypts `privateKey` under `password` as a v3 keystore (scrypt, aes-128-ctr, keccak-256 MAC). */
export async function createKeystore(privateKey: Hex | string, password: string, options: CreateKeystoreOptions = {}): Promise<KeystoreV3> {
  const account = toAccount(privateKey, "privateKey");
  if (typeof password !== "string") throw new KeystoreError("password must be a string");
  // The same bounds as decryption, so a keystore written here always opens here.
  const { n, r, p } = checkScryptParams(options.n ?? 262144, options.r ?? 8, options.p ?? 1, "options");
  const salt = options.salt ? hexField(options.salt, "salt") : randomBytes(32);
  const iv = options.iv ? hexField(options.iv, "iv", 16) : randomBytes(16);
  const derived = await scryptAsync(Buffer.from(password, "utf8"), salt, 32, n, r, p);
  const cipher = createCipheriv("aes-128-ctr", derived.subarray(0, 16), iv);
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(privateKey.slice(2), "hex")), cipher.final()]);
  return {
    version: 3,
    id: options.id ?? randomUUID(),
    address: account.address.slice(2).toLowerCase(),
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: iv.toString("hex") },
      ciphertext: ciphertext.toString("hex"),
      kdf: "scrypt",
      kdfparams: { dklen: 32, n, r, p, salt: salt.toString("hex") },
      mac: mac(derived, ciphertext).toString("hex"),
    },
  };
}

function parseKeystoreText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse quotes the input in its message; keep it out.
    throw new KeystoreError("keystore is not valid JSON");
  }
}

/** Decrypts a v3 keystore (object or JSON text) and returns the private key. Accepts scrypt and pbkdf2 (hmac-sha256). */
export async function decryptKeystore(keystore: KeystoreV3 | string, password: string): Promise<Hex> {
  const ks = (typeof keystore === "string" ? parseKeystoreText(keystore) : keystore) as Record<string, unknown> | null;
  if (typeof ks !== "object" || ks === null) throw new KeystoreError("keystore: expected a JSON object");
  if (ks.version !== 3) throw new KeystoreError(`keystore version: expected 3, got ${JSON.stringify(ks.version)}`);
  // Some older wallets wrote "Crypto".
  const c = (ks.crypto ?? ks.Crypto) as Record<string, unknown> | undefined;
  if (typeof c !== "object" || c === null) throw new KeystoreError("keystore crypto: missing");
  if (c.cipher !== "aes-128-ctr") throw new KeystoreError(`keystore crypto.cipher: unsupported ${JSON.stringify(c.cipher)} (expected aes-128-ctr)`);
  const iv = hexField((c.cipherparams as { iv?: unknown } | undefined)?.iv, "crypto.cipherparams.iv", 16);
  const ciphertext = hexField(c.ciphertext, "crypto.ciphertext", 32);
  const expectedMac = hexField(c.mac, "crypto.mac", 32);
  const kp = c.kdfparams as Record<string, unknown> | undefined;
  if (typeof kp !== "object" || kp === null) throw new KeystoreError("keystore crypto.kdfparams: missing");
  if (typeof password !== "string") throw new KeystoreError("password must be a string");
  const salt = hexField(kp.salt, "crypto.kdfparams.salt");
  const dklen = intField(kp.dklen, "crypto.kdfparams.dklen", 32, 64);
  const pw = Buffer.from(password, "utf8");

  let derived: Buffer;
  if (c.kdf === "scrypt") {
    const { n, r, p } = checkScryptParams(kp.n, kp.r, kp.p, "crypto.kdfparams");
    derived = await scryptAsync(pw, salt, dklen, n, r, p);
  } else if (c.kdf === "pbkdf2") {
    if (kp.prf !== "hmac-sha256") throw new KeystoreError(`keystore crypto.kdfparams.prf: unsupported ${JSON.stringify(kp.prf)}`);
    const iterations = intField(kp.c, "crypto.kdfparams.c", 1, KEYSTORE_LIMITS.maxPbkdf2Iterations);
    derived = await pbkdf2Async(pw, salt, iterations, dklen);
  } else {
    throw new KeystoreError(`keystore crypto.kdf: unsupported ${JSON.stringify(c.kdf)} (expected scrypt or pbkdf2)`);
  }

  if (!timingSafeEqual(mac(derived, ciphertext), expectedMac)) {
    throw new KeystoreError("wrong password, or the keystore is corrupted (MAC mismatch)");
  }
  const decipher = createDecipheriv("aes-128-ctr", derived.subarray(0, 16), iv);
  const key = bytesToHex(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
  if (typeof ks.address === "string" && ks.address !== "") {
    const address = toAccount(key, "the decrypted key").address.slice(2).toLowerCase();
    if (ks.address.replace(/^0x/, "").toLowerCase() !== address) throw new KeystoreError(`keystore address ${ks.address} does not match the decrypted key's address 0x${address}`);
  }
  return key;
}

/**
 * The account in a v3 keystore: `source` is the keystore object, its JSON text, or the path
 * of a keystore file.
 */
export async function accountFromKeystore(source: KeystoreV3 | string, password: string): Promise<PrivateKeyAccount> {
  let keystore: KeystoreV3 | string = source;
  if (typeof source === "string" && !source.trimStart().startsWith("{")) {
    try {
      keystore = await readFile(source, "utf8");
    } catch (e) {
      throw new KeystoreError(`cannot read keystore file ${source}: ${(e as NodeJS.ErrnoException).code ?? "read error"}`);
    }
  }
  return toAccount(await decryptKeystore(keystore, password), "the decrypted key");
}
