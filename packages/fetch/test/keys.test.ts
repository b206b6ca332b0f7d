import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { accountFromEnv, accountFromKeystore, createKeystore, decryptKeystore, KeyError, KeystoreError, type KeystoreV3 } from "../src/index.ts";

const KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
const PASSWORD = "correct horse battery staple";

/**
 * Produced independently (with @noble/hashes scrypt + @noble/ciphers aes-ctr, not this package)
 * for KEY and PASSWORD with scrypt n=8192, r=8, p=1.
 */
const NOBLE_VECTOR: KeystoreV3 = {
  version: 3,
  id: "1b7a5a0e-0b6f-4c53-9d3c-5d6a3b2f1e00",
  address: "2c7536e3605d9c16a7a3d7b1898e529396a65c23",
  crypto: {
    cipher: "aes-128-ctr",
    cipherparams: { iv: "00112233445566778899aabbccddeeff" },
    ciphertext: "c054c3496497a9a8a93063ede99c86f6756c2cd21710b76ee3327977406343d3",
    kdf: "scrypt",
    kdfparams: { dklen: 32, n: 8192, r: 8, p: 1, salt: "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0" },
    mac: "f02b4fa90dc85208e614a76d69732e71169983ee2320bc0c68b86ffc830ad418",
  },
};

/** The Web3 Secret Storage definition's published test vectors (password "testpassword"). */
const SPEC_KEY = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const SPEC_SCRYPT = {
  crypto: {
    cipher: "aes-128-ctr",
    cipherparams: { iv: "83dbcc02d8ccb40e466191a123791e0e" },
    ciphertext: "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
    kdf: "scrypt",
    kdfparams: { dklen: 32, n: 262144, r: 1, p: 8, salt: "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19" },
    mac: "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097",
  },
  id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
  version: 3,
};
const SPEC_PBKDF2 = {
  crypto: {
    cipher: "aes-128-ctr",
    cipherparams: { iv: "6087dab2f9fdbbfaddc31a909735c1e6" },
    ciphertext: "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
    kdf: "pbkdf2",
    kdfparams: { c: 262144, dklen: 32, prf: "hmac-sha256", salt: "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd" },
    mac: "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2",
  },
  id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
  version: 3,
};

const dir = mkdtempSync(join(tmpdir(), "tollgate-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn`, expects it to throw, and checks no form of the key leaks into the message or stack. */
async function expectNoLeak(fn: () => unknown, key: string, type: new (...a: never[]) => Error): Promise<Error> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(type);
  const text = `${(err as Error).message}\n${(err as Error).stack}\n${String((err as Error).cause ?? "")}`.toLowerCase();
  const bare = key.replace(/^0x/, "").toLowerCase();
  expect(text).not.toContain(bare);
  expect(text).not.toContain(bare.slice(0, 16));
  return err as Error;
}

describe("accountFromEnv", () => {
  it("reads TOLLGATE_PRIVATE_KEY by default, or a named variable", () => {
    expect(accountFromEnv(undefined, { TOLLGATE_PRIVATE_KEY: KEY }).address).toBe(ADDRESS);
    expect(accountFromEnv("PAYER_KEY", { PAYER_KEY: `${KEY}\n` }).address).toBe(ADDRESS);
  });

  it("errors clearly without echoing the value", async () => {
    expect(() => accountFromEnv("MISSING", {})).toThrow(/MISSING is not set/);
    const short = KEY.slice(0, 60);
    const e = await expectNoLeak(() => accountFromEnv("K", { K: short }), short, KeyError);
    expect(e.message).toMatch(/0x followed by 64 hex digits \(60 characters given\)/);
    await expectNoLeak(() => accountFromEnv("K", { K: KEY.slice(2) + "00" }), KEY, KeyError);
    const outOfRange = "0x" + "f".repeat(64);
    const e2 = await expectNoLeak(() => accountFromEnv("K", { K: outOfRange }), outOfRange, KeyError);
    expect(e2.message).toMatch(/out of range/);
  });
});

describe("keystore v3", () => {
  it("round trip: create (n=8192) then open from object, JSON text and file", async () => {
    const ks = await createKeystore(KEY, PASSWORD, { n: 8192 });
    expect(ks.version).toBe(3);
    expect(ks.address).toBe(ADDRESS.slice(2).toLowerCase());
    expect(ks.crypto.kdf).toBe("scrypt");
    expect(ks.crypto.kdfparams).toMatchObject({ n: 8192, r: 8, p: 1, dklen: 32 });
    expect(JSON.stringify(ks)).not.toContain(KEY.slice(2));
    expect((await accountFromKeystore(ks, PASSWORD)).address).toBe(ADDRESS);
    expect((await accountFromKeystore(JSON.stringify(ks), PASSWORD)).address).toBe(ADDRESS);
    const path = join(dir, "key.json");
    writeFileSync(path, JSON.stringify(ks, null, 2));
    expect((await accountFromKeystore(path, PASSWORD)).address).toBe(ADDRESS);
    // Fresh salt and iv each time.
    const again = await createKeystore(KEY, PASSWORD, { n: 8192 });
    expect(again.crypto.ciphertext).not.toBe(ks.crypto.ciphertext);
  });

  it("matches an independently produced n=8192 vector byte for byte, and decrypts it", async () => {
    expect(await decryptKeystore(NOBLE_VECTOR, PASSWORD)).toBe(KEY);
    const ours = await createKeystore(KEY, PASSWORD, { n: 8192, salt: NOBLE_VECTOR.crypto.kdfparams.salt, iv: NOBLE_VECTOR.crypto.cipherparams.iv, id: NOBLE_VECTOR.id });
    expect(ours).toEqual(NOBLE_VECTOR);
  });

  it("decrypts the Web3 Secret Storage spec pbkdf2 vector; refuses its non-RFC scrypt params clearly", async () => {
    // The spec's scrypt vector uses r=1 with n=2^18, which RFC 7914 (and OpenSSL) forbid.
    await expect(decryptKeystore(JSON.stringify(SPEC_SCRYPT), "testpassword")).rejects.toThrow(/outside RFC 7914/);
    expect(await decryptKeystore(JSON.stringify(SPEC_PBKDF2), "testpassword")).toBe(SPEC_KEY);
    // Older wallets capitalize "Crypto".
    const { crypto, ...rest } = SPEC_PBKDF2;
    expect((await accountFromKeystore(JSON.stringify({ ...rest, Crypto: crypto }), "testpassword")).address.toLowerCase()).toBe("0x008aeeda4d805471df9b2a5b0f38a0c3bcba786b");
  });

  it("wrong password: clear error, no key material", async () => {
    const e = await expectNoLeak(() => accountFromKeystore(NOBLE_VECTOR, "wrong"), KEY, KeystoreError);
    expect(e.message).toMatch(/wrong password/);
  });

  it("a tampered ciphertext or mismatched address is refused", async () => {
    const tampered = structuredClone(NOBLE_VECTOR);
    tampered.crypto.ciphertext = "00" + tampered.crypto.ciphertext.slice(2);
    await expectNoLeak(() => decryptKeystore(tampered, PASSWORD), KEY, KeystoreError);
    const wrongAddress = { ...NOBLE_VECTOR, address: "0000000000000000000000000000000000000001" };
    const e = await expectNoLeak(() => decryptKeystore(wrongAddress, PASSWORD), KEY, KeystoreError);
    expect(e.message).toMatch(/does not match/);
  });

  it("malformed files and inputs name the field", async () => {
    await expect(decryptKeystore("{not json", "x")).rejects.toThrow(/not valid JSON/);
    await expect(decryptKeystore({ ...NOBLE_VECTOR, version: 1 } as unknown as KeystoreV3, "x")).rejects.toThrow(/version/);
    const badKdf = structuredClone(NOBLE_VECTOR) as unknown as { crypto: { kdf: string } };
    badKdf.crypto.kdf = "argon2";
    await expect(decryptKeystore(badKdf as unknown as KeystoreV3, "x")).rejects.toThrow(/crypto\.kdf: unsupported/);
    const badN = structuredClone(NOBLE_VECTOR);
    (badN.crypto.kdfparams as { n: number }).n = 1000;
    await expect(decryptKeystore(badN, "x")).rejects.toThrow(/kdfparams\.n/);
    await expect(accountFromKeystore(join(dir, "missing.json"), "x")).rejects.toThrow(/ENOENT/);
    await expectNoLeak(() => createKeystore(KEY.slice(0, 40), "pw", { n: 8192 }), KEY.slice(0, 40), KeyError);
  });
});

describe("keystore KDF parameters are bounded before any derivation", () => {
  /** NOBLE_VECTOR with its kdfparams changed. */
  function withParams(params: Record<string, unknown>): KeystoreV3 {
    const ks = structuredClone(NOBLE_VECTOR);
    Object.assign(ks.crypto.kdfparams, params);
    return ks;
  }
  const SECRET_PASSWORD = "hunter2-secret-password-value";

  it("refuses memory- or time-hungry scrypt parameters fast, naming the field, leaking nothing", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      // The file: n=2^22, r=64 would need 32 GiB.
      [{ n: 2 ** 22, r: 64, p: 1 }, /^keystore crypto\.kdfparams\.n: expected an integer between 2 and 1048576$/],
      [{ n: 2 ** 20, r: 8, p: 1 }, /^keystore crypto\.kdfparams\.n and crypto\.kdfparams\.r: n=1048576 with r=8 needs 1 GiB of memory \(128·n·r\), above the limit of 256 MiB$/],
      [{ n: 2 ** 17, r: 64, p: 1 }, /^keystore crypto\.kdfparams\.r: expected an integer between 1 and 32$/],
      [{ n: 2 ** 10, r: 8, p: 1000 }, /^keystore crypto\.kdfparams\.p: expected an integer between 1 and 16$/],
      [{ n: 2 ** 18, r: 8, p: 16 }, /^keystore crypto\.kdfparams\.p: n=262144, r=8, p=16 needs 4 GiB of scrypt work \(128·n·r·p\), above the limit of 1 GiB$/],
    ];
    for (const [params, message] of cases) {
      const started = performance.now();
      const e = await expectNoLeak(() => decryptKeystore(withParams(params), SECRET_PASSWORD), KEY, KeystoreError);
      // scrypt at these sizes takes seconds (and GiBs); a bounds check takes microseconds.
      expect(performance.now() - started).toBeLessThan(100);
      expect(e.message).toMatch(message);
      expect(e.message).not.toContain(SECRET_PASSWORD);
    }
    const pbkdf2 = structuredClone(SPEC_PBKDF2);
    pbkdf2.crypto.kdfparams.c = 10_000_000;
    const started = performance.now();
    await expect(decryptKeystore(JSON.stringify(pbkdf2), "testpassword")).rejects.toThrow(/^keystore crypto\.kdfparams\.c: expected an integer between 1 and 4194304$/);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("writes only what it reads: createKeystore refuses parameters beyond the same bounds", async () => {
    await expect(createKeystore(KEY, PASSWORD, { n: 2 ** 21 })).rejects.toThrow(/options\.n: expected an integer between 2 and 1048576/);
    await expect(createKeystore(KEY, PASSWORD, { n: 2 ** 19, r: 8 })).rejects.toThrow(/needs 512 MiB of memory/);
  });

  it("geth's standard parameters (n=2^18, r=8, p=1: exactly 256 MiB, the limit) still open", { timeout: 60_000 }, async () => {
    // Written by createKeystore with its defaults (geth's standard) and a fixed salt/iv, for KEY and PASSWORD.
    const GETH_STANDARD: KeystoreV3 = {
      version: 3,
      id: "4e1b8f6c-2d3a-4f5e-9a7b-0c1d2e3f4a5b",
      address: "2c7536e3605d9c16a7a3d7b1898e529396a65c23",
      crypto: {
        cipher: "aes-128-ctr",
        cipherparams: { iv: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2" },
        ciphertext: "117097f2fae8c85bb765b90d4d1cc1964b6cf6d59c3d6ee7e21b77b0c83e6bb6",
        kdf: "scrypt",
        kdfparams: { dklen: 32, n: 262144, r: 8, p: 1, salt: "a1".repeat(32) },
        mac: "e2a112a3c7c29b984a5a863e549632bacdb934cbef97ad54ab4ca167024aed0f",
      },
    };
    expect((await accountFromKeystore(GETH_STANDARD, PASSWORD)).address).toBe(ADDRESS);
  });
});
