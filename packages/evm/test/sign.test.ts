import { describe, expect, it } from "vitest";
import { keccak256, parseTransaction, recoverTransactionAddress, type Hex, type TransactionSerializableEIP1559 } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { serializeTransaction } from "viem";
import { fastLocalAccount, keccak256Hex, serializeEip1559, signBackend, signDigest } from "../src/crypto/index.ts";

const tx = (i: number, data: Hex): TransactionSerializableEIP1559 => ({
  type: "eip1559",
  chainId: 31337,
  nonce: i,
  to: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  data,
  gas: 3_000_000n + BigInt(i),
  maxFeePerGas: 2_000_000_000n,
  maxPriorityFeePerGas: 1_000_000n,
  value: 0n,
});

describe("fee payer signing", () => {
  it("loads libsecp256k1 here (the fallback is tested through TOLLGATE_SECP256K1=js in recover tests)", () => {
    expect(signBackend).toBe("native");
  });

  it("signs transactions byte-for-byte as viem's local account does", async () => {
    for (let i = 0; i < 20; i++) {
      const key = generatePrivateKey();
      const data = `0x${Buffer.alloc(100 + i * 997, i + 1).toString("hex")}` as Hex;
      const ours = await fastLocalAccount(key).signTransaction(tx(i, data));
      const viems = await privateKeyToAccount(key).signTransaction(tx(i, data));
      expect(ours).toBe(viems);
      expect(keccak256Hex(ours)).toBe(keccak256(ours));
      expect((await recoverTransactionAddress({ serializedTransaction: ours as never })).toLowerCase()).toBe(privateKeyToAccount(key).address.toLowerCase());
      expect(parseTransaction(ours).nonce).toBe(i);
    }
  });

  it("serializes the RLP edge cases as viem does: zero fields, one-byte data, the 55/56-byte boundary, short r and s", () => {
    const datas: Hex[] = ["0x", "0x00", "0x7f", "0x80", `0x${"11".repeat(55)}`, `0x${"22".repeat(56)}`, `0x${"33".repeat(255)}`, `0x${"44".repeat(70_000)}`];
    const signatures = [
      undefined,
      { r: `0x${"00".repeat(3)}${"ab".repeat(29)}` as Hex, s: `0x00${"cd".repeat(31)}` as Hex, yParity: 0 as const },
      { r: `0x${"ff".repeat(32)}` as Hex, s: `0x${"01".padStart(64, "0")}` as Hex, yParity: 1 as const },
    ];
    for (const data of datas) {
      for (const nonce of [0, 1, 127, 128, 2 ** 40]) {
        const t = { ...tx(nonce, data), value: nonce === 1 ? 0n : BigInt(nonce) * 10n ** 18n, maxPriorityFeePerGas: nonce === 0 ? 0n : 1n };
        for (const sig of signatures) {
          const ours = `0x${serializeEip1559(t, sig)!.toString("hex")}`;
          expect(ours).toBe(serializeTransaction(t, sig));
        }
      }
    }
    // Not a plain EIP-1559 call: left to viem.
    expect(serializeEip1559({ ...tx(1, "0x"), accessList: [{ address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", storageKeys: [] }] })).toBeUndefined();
    expect(serializeEip1559({ type: "legacy", nonce: 1, gasPrice: 1n, gas: 21000n, to: "0x5FbDB2315678afecb367f032d93F642f64180aa3", chainId: 1 })).toBeUndefined();
  });

  it("signDigest gives low-s signatures equal to @noble/curves'", () => {
    for (let i = 0; i < 50; i++) {
      const key = secp256k1.utils.randomPrivateKey();
      const digest = secp256k1.utils.randomPrivateKey(); // any 32 bytes
      const ours = signDigest(digest, key);
      const noble = secp256k1.sign(digest, key, { lowS: true });
      expect(BigInt(ours.r)).toBe(noble.r);
      expect(BigInt(ours.s)).toBe(noble.s);
      expect(ours.yParity).toBe(noble.recovery);
      expect(BigInt(ours.s) <= secp256k1.CURVE.n / 2n).toBe(true);
    }
  });

  it("keeps the key out of the account object", () => {
    const key = generatePrivateKey();
    const account = fastLocalAccount(key);
    expect(JSON.stringify(account)).not.toContain(key.slice(2));
    expect(Object.values(account).some((v) => typeof v === "string" && v.includes(key.slice(2)))).toBe(false);
  });
});
