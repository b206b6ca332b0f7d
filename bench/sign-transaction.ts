// Signing one settlement transaction with 20 KB of calldata (about a 50-payment batch): viem's
// local account against ours (libsecp256k1 + js-sha3 + Buffer-based RLP, crypto/sign.ts).
//
//   npx tsx bench/sign-transaction.ts
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { fastLocalAccount } from "@tollgate/evm";
const key = generatePrivateKey();
const data = ("0x" + "ab".repeat(20000)) as `0x${string}`;
const tx = { type: "eip1559" as const, chainId: 31337, nonce: 1, to: "0x5FbDB2315678afecb367f032d93F642f64180aa3" as const, data, gas: 3000000n, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, value: 0n };
for (const [name, acc] of [["viem", privateKeyToAccount(key)], ["fast", fastLocalAccount(key)]] as const) {
  for (let i = 0; i < 20; i++) await acc.signTransaction(tx);
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) await acc.signTransaction(tx);
  console.log(name, ((performance.now() - t0) / 200).toFixed(3), "ms per 20KB tx");
}
