import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  decodeEventLog,
  hexToBigInt,
  http,
  numberToHex,
  parseSignature,
  serializeSignature,
  toHex,
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { MULTICALL3_ADDRESS, batchSettlerAbi, eip3009Abi, loadArtifact } from "@tollgate/evm";
import { findUsdc } from "@tollgate/core";
import { deployToken, mintTo, startLocalNetwork, type DevAccount, type RunningLocalNetwork, type TokenInfo } from "../src/index.ts";

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

let net: RunningLocalNetwork;
let client: PublicClient;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  client = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 50 }) as PublicClient;
});

afterAll(async () => {
  await net?.stop();
});

type Auth = { from: Address; to: Address; value: bigint; validAfter: bigint; validBefore: bigint; nonce: Hex };

function randomNonce(): Hex {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

function authorization(from: Address, to: Address, value: bigint, overrides: Partial<Auth> = {}): Auth {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return { from, to, value, validAfter: 0n, validBefore: now + 3600n, nonce: randomNonce(), ...overrides };
}

async function signAuthorization(
  signer: DevAccount,
  token: Pick<TokenInfo, "address" | "name" | "version">,
  auth: Auth,
  primaryType: "TransferWithAuthorization" | "ReceiveWithAuthorization" = "TransferWithAuthorization",
): Promise<Hex> {
  const fields = [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ] as const;
  return privateKeyToAccount(signer.privateKey).signTypedData({
    domain: { name: token.name, version: token.version, chainId: net.chainId, verifyingContract: token.address },
    types: primaryType === "TransferWithAuthorization" ? { TransferWithAuthorization: fields } : { ReceiveWithAuthorization: fields },
    primaryType,
    message: auth,
  });
}

function walletOf(account: DevAccount) {
  return createWalletClient({ account: privateKeyToAccount(account.privateKey), transport: http(net.rpcUrl), chain: foundry });
}

async function sendTransfer(auth: Auth, signature: Hex, token: Address = net.usdc.address) {
  const hash = await walletOf(net.accounts.facilitator).writeContract({
    address: token,
    abi: eip3009Abi,
    functionName: "transferWithAuthorization",
    args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature],
  });
  return client.waitForTransactionReceipt({ hash });
}

/** Simulates the call and returns the custom error name it reverts with. */
async function revertName(args: Parameters<typeof client.simulateContract>[0]): Promise<string | undefined> {
  try {
    await client.simulateContract(args);
  } catch (err) {
    const revert = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : undefined;
    if (revert instanceof ContractFunctionRevertedError) return revert.data?.errorName ?? revert.reason ?? "unknown";
    throw err;
  }
  return undefined;
}

function balanceOf(owner: Address, token: Address = net.usdc.address) {
  return client.readContract({ address: token, abi: eip3009Abi, functionName: "balanceOf", args: [owner] });
}

describe("anvil + deployment", () => {
  it("runs anvil on a free port with the requested chain id", async () => {
    expect(net.anvil.port).toBeGreaterThan(0);
    expect(net.rpcUrl).toBe(`http://127.0.0.1:${net.anvil.port}`);
    expect(await client.getChainId()).toBe(31337);
    expect(net.network).toBe("eip155:31337");
  });

  it("deploys its USD Coin at the address core's network table names for eip155:31337 (dollar prices work locally)", () => {
    expect(net.usdc.address).toBe(findUsdc("eip155:31337")?.address);
    expect(findUsdc("eip155:31337")?.eip712).toEqual({ name: net.usdc.name, version: net.usdc.version });
  });

  it("deploys USDC with the FiatToken EIP-712 domain and funds payers", async () => {
    const read = <F extends "name" | "version" | "decimals" | "symbol">(functionName: F) =>
      client.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName });
    expect(await read("name")).toBe("USD Coin");
    expect(await read("version")).toBe("2");
    expect(await read("decimals")).toBe(6);
    expect(await read("symbol")).toBe("USDC");
    const [, name, version, chainId, verifyingContract] = await client.readContract({
      address: net.usdc.address,
      abi: eip3009Abi,
      functionName: "eip712Domain",
    });
    expect({ name, version, chainId, verifyingContract }).toEqual({
      name: "USD Coin",
      version: "2",
      chainId: 31337n,
      verifyingContract: net.usdc.address,
    });
    expect(net.accounts.payers).toHaveLength(3);
    for (const payer of net.accounts.payers) expect(await balanceOf(payer.address)).toBe(1_000_000_000n);
    expect(net.accounts.payee.address).toBe(privateKeyToAccount(net.accounts.payee.privateKey).address);
  });
});

describe("EIP-3009 on TollgateUSD", () => {
  it("transferWithAuthorization (bytes signature) moves funds and marks the nonce used; reuse reverts", async () => {
    const payer = net.accounts.payers[0]!;
    const payee = net.accounts.payee.address;
    const auth = authorization(payer.address, payee, 1_250_000n);
    const signature = await signAuthorization(payer, net.usdc, auth);
    const [payerBefore, payeeBefore] = [await balanceOf(payer.address), await balanceOf(payee)];
    expect(await client.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "authorizationState", args: [payer.address, auth.nonce] })).toBe(false);

    const receipt = await sendTransfer(auth, signature);
    expect(receipt.status).toBe("success");
    expect(await balanceOf(payer.address)).toBe(payerBefore - 1_250_000n);
    expect(await balanceOf(payee)).toBe(payeeBefore + 1_250_000n);
    expect(await client.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "authorizationState", args: [payer.address, auth.nonce] })).toBe(true);
    const used = receipt.logs
      .map((l) => decodeEventLog({ abi: eip3009Abi, data: l.data, topics: l.topics, strict: false }))
      .find((e) => e.eventName === "AuthorizationUsed");
    expect(used?.args).toEqual({ authorizer: payer.address, nonce: auth.nonce });

    expect(
      await revertName({
        address: net.usdc.address,
        abi: eip3009Abi,
        functionName: "transferWithAuthorization",
        args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature],
        account: net.accounts.facilitator.address,
      }),
    ).toBe("AuthorizationUsedOrCanceled");
  });

  it("accepts the (v, r, s) overload", async () => {
    const payer = net.accounts.payers[1]!;
    const auth = authorization(payer.address, net.accounts.payee.address, 10n);
    const { v, r, s } = parseSignature(await signAuthorization(payer, net.usdc, auth));
    const hash = await walletOf(net.accounts.facilitator).writeContract({
      address: net.usdc.address,
      abi: eip3009Abi,
      functionName: "transferWithAuthorization",
      args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, Number(v), r, s],
    });
    expect((await client.waitForTransactionReceipt({ hash })).status).toBe("success");
  });

  it("rejects a malleated high-S signature in both overloads, while the original stays valid", async () => {
    const payer = net.accounts.payers[1]!;
    const auth = authorization(payer.address, net.accounts.payee.address, 5n);
    const signature = await signAuthorization(payer, net.usdc, auth);
    const { r, s, yParity } = parseSignature(signature);
    const highS = numberToHex(SECP256K1_N - hexToBigInt(s), { size: 32 });
    const flippedParity = yParity === 0 ? 1 : 0;
    const malleated = serializeSignature({ r, s: highS, yParity: flippedParity });
    const base = { address: net.usdc.address, abi: eip3009Abi, functionName: "transferWithAuthorization", account: net.accounts.facilitator.address } as const;
    const head = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
    expect(await revertName({ ...base, args: [...head, malleated] })).toBe("InvalidSignature");
    expect(await revertName({ ...base, args: [...head, 27 + flippedParity, r, highS] })).toBe("InvalidSignature");
    expect(await revertName({ ...base, args: [...head, signature] })).toBeUndefined();
  });

  it("rejects wrong domain, tampered value, expiry, not-yet-valid and receiveWithAuthorization from a non-payee", async () => {
    const payer = net.accounts.payers[2]!;
    const to = net.accounts.payee.address;
    const base = { address: net.usdc.address, abi: eip3009Abi, functionName: "transferWithAuthorization", account: net.accounts.facilitator.address } as const;
    const args = (a: Auth, sig: Hex) => [a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, sig] as const;

    const auth = authorization(payer.address, to, 7n);
    const wrongVersion = await signAuthorization(payer, { ...net.usdc, version: "1" }, auth);
    expect(await revertName({ ...base, args: args(auth, wrongVersion) })).toBe("InvalidSignature");
    const good = await signAuthorization(payer, net.usdc, auth);
    expect(await revertName({ ...base, args: args({ ...auth, value: 8n }, good) })).toBe("InvalidSignature");

    const expired = authorization(payer.address, to, 7n, { validBefore: 1n });
    expect(await revertName({ ...base, args: args(expired, await signAuthorization(payer, net.usdc, expired)) })).toBe("AuthorizationExpired");
    const future = authorization(payer.address, to, 7n, { validAfter: 4_000_000_000n, validBefore: 4_000_000_100n });
    expect(await revertName({ ...base, args: args(future, await signAuthorization(payer, net.usdc, future)) })).toBe("AuthorizationNotYetValid");

    const recv = authorization(payer.address, to, 7n);
    const recvSig = await signAuthorization(payer, net.usdc, recv, "ReceiveWithAuthorization");
    const recvArgs = [recv.from, recv.to, recv.value, recv.validAfter, recv.validBefore, recv.nonce, recvSig] as const;
    expect(await revertName({ ...base, functionName: "receiveWithAuthorization", args: recvArgs })).toBe("CallerMustBePayee");
    expect(await revertName({ ...base, functionName: "receiveWithAuthorization", args: recvArgs, account: to })).toBeUndefined();
  });

  it("deployToken gives a token with another EIP-712 name/version; USDC-domain signatures fail there", async () => {
    const other = await deployToken(net.rpcUrl, { name: "Other Dollar", symbol: "ODL", version: "7" });
    const payer = net.accounts.payers[0]!;
    await mintTo(net.rpcUrl, other.address, payer.address, 500n);
    expect(await balanceOf(payer.address, other.address)).toBe(500n);
    const auth = authorization(payer.address, net.accounts.payee.address, 200n);
    const base = { address: other.address, abi: eip3009Abi, functionName: "transferWithAuthorization", account: net.accounts.facilitator.address } as const;
    const head = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
    expect(await revertName({ ...base, args: [...head, await signAuthorization(payer, { ...net.usdc, address: other.address }, auth)] })).toBe("InvalidSignature");
    const receipt = await sendTransfer(auth, await signAuthorization(payer, other, auth), other.address);
    expect(receipt.status).toBe("success");
    expect(await balanceOf(payer.address, other.address)).toBe(300n);
  });

  it("accepts EIP-1271 smart-wallet signatures", async () => {
    const solc = (await import("solc")).default as { compile(input: string): string };
    const source = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;
contract OwnedWallet {
    address public immutable owner;
    constructor(address o) { owner = o; }
    function isValidSignature(bytes32 hash, bytes calldata sig) external view returns (bytes4) {
        if (sig.length != 65) return 0xffffffff;
        bytes32 r = bytes32(sig[0:32]); bytes32 s = bytes32(sig[32:64]); uint8 v = uint8(sig[64]);
        return ecrecover(hash, v, r, s) == owner ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}`;
    const out = JSON.parse(
      solc.compile(
        JSON.stringify({
          language: "Solidity",
          sources: { "W.sol": { content: source } },
          settings: { evmVersion: "cancun", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
        }),
      ),
    );
    const w = out.contracts["W.sol"].OwnedWallet as { abi: Abi; evm: { bytecode: { object: string } } };
    const owner = net.accounts.payers[2]!;
    const deployHash = await walletOf(net.accounts.deployer).deployContract({ abi: w.abi, bytecode: `0x${w.evm.bytecode.object}`, args: [owner.address] });
    const wallet = (await client.waitForTransactionReceipt({ hash: deployHash })).contractAddress!;
    await mintTo(net.rpcUrl, net.usdc.address, wallet, 1_000n);

    const auth = authorization(wallet, net.accounts.payee.address, 400n);
    const sig = await signAuthorization(owner, net.usdc, auth); // owner signs on behalf of the wallet
    const base = { address: net.usdc.address, abi: eip3009Abi, functionName: "transferWithAuthorization", account: net.accounts.facilitator.address } as const;
    const head = [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce] as const;
    const stranger = await signAuthorization(net.accounts.payers[0]!, net.usdc, auth);
    expect(await revertName({ ...base, args: [...head, stranger] })).toBe("InvalidSignature");
    expect((await sendTransfer(auth, sig)).status).toBe("success");
    expect(await balanceOf(wallet)).toBe(600n);
  });
});

describe("BatchSettler", () => {
  it("settles valid items and skips an invalid one, reporting per-item results in logs", async () => {
    const [p0, p1, p2] = net.accounts.payers as [DevAccount, DevAccount, DevAccount];
    const payee = net.accounts.payee.address;
    const items = [];
    for (const [payer, value] of [[p0, 100n], [p1, 200n], [p2, 300n]] as const) {
      const auth = authorization(payer.address, payee, value);
      items.push({ ...auth, signature: await signAuthorization(payer, net.usdc, auth) });
    }
    // Item 1 is tampered: the signature no longer covers the value.
    items[1] = { ...items[1]!, value: 999n };
    const before = await Promise.all([p0, p1, p2].map((p) => balanceOf(p.address)));
    const payeeBefore = await balanceOf(payee);

    const { result } = await client.simulateContract({
      address: net.batchSettler.address,
      abi: batchSettlerAbi,
      functionName: "settle",
      args: [net.usdc.address, items],
      account: net.accounts.facilitator.address,
    });
    expect(result).toEqual([true, false, true]);

    const hash = await walletOf(net.accounts.facilitator).writeContract({
      address: net.batchSettler.address,
      abi: batchSettlerAbi,
      functionName: "settle",
      args: [net.usdc.address, items],
    });
    const receipt = await client.waitForTransactionReceipt({ hash });
    expect(receipt.status).toBe("success");
    // BatchSettler logs the failed item only; the settled ones show in the token's own logs.
    const failed = receipt.logs
      .filter((l) => l.address.toLowerCase() === net.batchSettler.address.toLowerCase())
      .map((l) => decodeEventLog({ abi: batchSettlerAbi, data: l.data, topics: l.topics }));
    expect(failed.map((e) => [e.eventName, e.args.index, e.args.nonce, e.args.from])).toEqual([["ItemFailed", 1n, items[1]!.nonce, items[1]!.from]]);
    expect(failed[0]!.args.reason.slice(0, 10)).toBe("0x8baa579f"); // InvalidSignature()

    const after = await Promise.all([p0, p1, p2].map((p) => balanceOf(p.address)));
    expect(after).toEqual([before[0]! - 100n, before[1]!, before[2]! - 300n]);
    expect(await balanceOf(payee)).toBe(payeeBefore + 400n);
  });
});

describe("Multicall3", () => {
  it("has our runtime code at the canonical address and serves viem multicall (aggregate3)", async () => {
    expect(net.multicall3.address).toBe(MULTICALL3_ADDRESS);
    expect(await client.getCode({ address: MULTICALL3_ADDRESS })).toBe(loadArtifact("Multicall3").deployedBytecode);
    const results = await client.multicall({
      multicallAddress: MULTICALL3_ADDRESS,
      contracts: [
        ...net.accounts.payers.map((p) => ({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf" as const, args: [p.address] as const })),
        { address: net.usdc.address, abi: eip3009Abi, functionName: "transferWithAuthorization", args: [net.accounts.payee.address, net.accounts.payee.address, 1n, 0n, 0n, randomNonce(), "0x"] },
      ],
    });
    const direct = await Promise.all(net.accounts.payers.map((p) => balanceOf(p.address)));
    expect(results.slice(0, 3)).toEqual(direct.map((result) => ({ status: "success", result })));
    expect(results[3]!.status).toBe("failure");
  });
});
