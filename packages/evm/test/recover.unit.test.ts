// Native (libsecp256k1) and pure-JS signature recovery give identical answers, and the
// hand-rolled EIP-712 digest equals viem's hashTypedData.
import { hashTypedData, hexToBytes, keccak256, recoverAddress as viemRecoverAddress, serializeSignature, toHex, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, sign } from "viem/accounts";
import { describe, expect, it, vi } from "vitest";
import { domainSeparator, ecdsaRecoverers, keccak256Bytes, recoverAddress, recoverBackend, transferAuthorizationDigest, transferWithAuthorizationTypes } from "../src/index.ts";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const random = (bytes: number) => toHex(crypto.getRandomValues(new Uint8Array(bytes)));

describe("signature recovery backends", () => {
  it("loads the native binding on this platform", () => {
    expect(recoverBackend).toBe("native");
    expect(ecdsaRecoverers.native).toBeTypeOf("function");
    expect(recoverAddress).toBe(ecdsaRecoverers.native);
  });

  it("native and JS recover the same address for 100 random keys (v 27/28 and 0/1)", async () => {
    const native = ecdsaRecoverers.native!;
    for (let i = 0; i < 100; i++) {
      const privateKey = generatePrivateKey();
      const hash = random(32);
      const sig = await sign({ hash, privateKey });
      const expected = privateKeyToAccount(privateKey).address.toLowerCase();
      const sig65 = hexToBytes(serializeSignature(sig));
      const digest = hexToBytes(hash);
      expect(native(digest, sig65)).toBe(expected);
      expect(ecdsaRecoverers.js(digest, sig65)).toBe(expected);
      const yParity = sig65.slice();
      yParity[64] = yParity[64]! - 27;
      expect(native(digest, yParity)).toBe(expected);
      expect(ecdsaRecoverers.js(digest, yParity)).toBe(expected);
      if (i < 10) expect((await viemRecoverAddress({ hash, signature: serializeSignature(sig) })).toLowerCase()).toBe(expected);
    }
  });

  it("agree on rejections and on malleable twins", async () => {
    const native = ecdsaRecoverers.native!;
    const hash = random(32);
    const good = hexToBytes(serializeSignature(await sign({ hash, privateKey: generatePrivateKey() })));
    const digest = hexToBytes(hash);
    const variants: Uint8Array[] = [];
    for (const v of [2, 26, 29, 255]) {
      const bad = good.slice();
      bad[64] = v;
      variants.push(bad); // recovery id out of range
    }
    variants.push(new Uint8Array(65).fill(0).map((_, i) => (i === 64 ? 27 : 0))); // r = s = 0
    const rTooBig = good.slice();
    rTooBig.set(hexToBytes(toHex(N, { size: 32 })), 0); // r = n
    variants.push(rTooBig);
    variants.push(good.slice(0, 64)); // 64 bytes
    for (const bad of variants) {
      expect(native(digest, bad)).toBeUndefined();
      expect(ecdsaRecoverers.js(digest, bad)).toBeUndefined();
    }
    // r with no curve point: try x = 5 (x^3+7 = 132 is not a square mod p), both refuse.
    const offCurve = good.slice();
    offCurve.set(hexToBytes(toHex(5n, { size: 32 })), 0);
    expect(native(digest, offCurve)).toBe(ecdsaRecoverers.js(digest, offCurve));
    // The high-s twin (n - s, flipped v) recovers the same key on both: the facilitator refuses it before recovery (EIP-2).
    const s = BigInt(toHex(good.slice(32, 64)));
    const twin = good.slice();
    twin.set(hexToBytes(toHex(N - s, { size: 32 })), 32);
    twin[64] = good[64] === 27 ? 28 : 27;
    expect(native(digest, twin)).toBe(ecdsaRecoverers.js(digest, twin));
    expect(native(digest, twin)).toBe(native(digest, good));
    // The same signature over another digest recovers some unrelated key, identically.
    const other = hexToBytes(random(32));
    expect(native(other, good)).toBe(ecdsaRecoverers.js(other, good));
    expect(native(other, good)).not.toBe(native(digest, good));
  });

  it("falls back to pure JS when the native binding is disabled", async () => {
    vi.stubEnv("TOLLGATE_SECP256K1", "js");
    vi.resetModules();
    try {
      const mod = await import("../src/crypto/recover.ts");
      expect(mod.recoverBackend).toBe("js");
      expect(mod.recoverAddressNative).toBeUndefined();
      const privateKey = generatePrivateKey();
      const hash = random(32);
      const sig = hexToBytes(serializeSignature(await sign({ hash, privateKey })));
      expect(mod.recoverAddress(hexToBytes(hash), sig)).toBe(privateKeyToAccount(privateKey).address.toLowerCase());
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});

describe("EIP-712 digest of TransferWithAuthorization", () => {
  it("equals viem's hashTypedData for random domains and messages", () => {
    for (let i = 0; i < 50; i++) {
      const domain = { name: `Token ${i}`, version: String(i % 3), chainId: 1 + i * 7919, verifyingContract: privateKeyToAccount(generatePrivateKey()).address };
      const message = {
        from: privateKeyToAccount(generatePrivateKey()).address as Address,
        to: privateKeyToAccount(generatePrivateKey()).address as Address,
        value: BigInt(random(i % 2 ? 32 : 6)),
        validAfter: BigInt(random(4)),
        validBefore: BigInt(random(8)),
        nonce: random(32) as Hex,
      };
      const expected = hashTypedData({ domain, types: transferWithAuthorizationTypes, primaryType: "TransferWithAuthorization", message });
      expect(toHex(transferAuthorizationDigest(domainSeparator(domain).bytes, message))).toBe(expected);
    }
  });

  it("keccak256Bytes equals viem's keccak256", () => {
    for (const len of [0, 1, 64, 135, 136, 137, 224, 1000]) {
      const data = crypto.getRandomValues(new Uint8Array(len));
      expect(toHex(keccak256Bytes(data))).toBe(keccak256(data));
    }
  });
});
