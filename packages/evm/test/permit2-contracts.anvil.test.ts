// Our Permit2 and x402 exact Permit2 proxy, installed by the devnet at the canonical addresses,
// against signatures made with the OFFICIAL client's EIP-712 types (@x402/evm): the domain,
// witness type string and nonce bitmap must match canonical Permit2's, and the proxy must pay
// only witness.to, only once, only inside the validity window.
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { permit2WitnessTypes as officialWitnessTypes, PERMIT2_ADDRESS as OFFICIAL_PERMIT2, x402ExactPermit2ProxyAddress } from "@x402/evm";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  hashDomain,
  http,
  maxUint256,
  parseSignature,
  toHex,
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { formatAbiItem } from "viem/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, eip2612PermitTypes, erc20PermitAbi, exactPermit2ProxyAbi, loadArtifact, permit2Abi } from "../src/index.ts";

let net: RunningLocalNetwork;
let client: PublicClient;
let facilitator: PrivateKeyAccount;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  client = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  facilitator = privateKeyToAccount(net.accounts.facilitator.privateKey);
});

afterAll(async () => {
  await net?.stop();
});

const wallet = (account: PrivateKeyAccount) => createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl), pollingInterval: 20 });

async function send(account: PrivateKeyAccount, to: Address, abi: Abi, functionName: string, args: readonly unknown[]) {
  const hash = await wallet(account).writeContract({ address: to, abi, functionName, args } as never);
  return client.waitForTransactionReceipt({ hash });
}

/** The revert's custom error name of a call, or "ok". */
async function callError(to: Address, abi: Abi, functionName: string, args: readonly unknown[], from: Address = facilitator.address): Promise<string> {
  try {
    // Permit2's errors bubble up through the proxy: decode them too.
    const withErrors = [...abi, ...(permit2Abi as unknown as Abi).filter((i) => i.type === "error" && !abi.some((a) => a.type === "error" && a.name === i.name))];
    await client.simulateContract({ address: to, abi: withErrors, functionName, args, account: from } as never);
    return "ok";
  } catch (e) {
    const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : undefined;
    return revert instanceof ContractFunctionRevertedError ? (revert.data?.errorName ?? revert.reason ?? "revert") : String(e);
  }
}

const balance = (token: Address, who: Address) => client.readContract({ address: token, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

interface Permit {
  token: Address;
  amount: bigint;
  nonce: bigint;
  deadline: bigint;
  to: Address;
  validAfter: bigint;
}

function permit(over: Partial<Permit> = {}): Permit {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return { token: net.plainToken.address, amount: 1_000n, nonce: BigInt(toHex(crypto.getRandomValues(new Uint8Array(32)))), deadline: now + 600n, to: net.accounts.payee.address, validAfter: now - 600n, ...over };
}

/** Signed with the official package's types and canonical addresses, as their client does. */
function sign(owner: PrivateKeyAccount, p: Permit): Promise<Hex> {
  return owner.signTypedData({
    domain: { name: "Permit2", chainId: net.chainId, verifyingContract: OFFICIAL_PERMIT2 },
    types: officialWitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: { permitted: { token: p.token, amount: p.amount }, spender: x402ExactPermit2ProxyAddress, nonce: p.nonce, deadline: p.deadline, witness: { to: p.to, validAfter: p.validAfter } },
  });
}

const settleArgs = (owner: Address, p: Permit, signature: Hex) =>
  [{ permitted: { token: p.token, amount: p.amount }, nonce: p.nonce, deadline: p.deadline }, owner, { to: p.to, validAfter: p.validAfter }, signature] as const;

/** A fresh payer holding `amount` of the plain token (and ETH only when asked). */
async function freshPayer(amount: bigint, opts: { approve?: boolean; eth?: boolean } = {}): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  const deployer = privateKeyToAccount(net.accounts.deployer.privateKey);
  await send(deployer, net.plainToken.address, loadArtifact("PlainToken").abi, "mint", [owner.address, amount]);
  if (opts.eth || opts.approve) await createTestClient({ mode: "anvil", transport: http(net.rpcUrl) }).setBalance({ address: owner.address, value: 10n ** 18n });
  if (opts.approve) await send(owner, net.plainToken.address, erc20PermitAbi as unknown as Abi, "approve", [PERMIT2_ADDRESS, maxUint256]);
  return owner;
}

describe("Permit2 and the exact proxy at their canonical addresses", () => {
  it("use the official package's addresses", () => {
    expect(PERMIT2_ADDRESS).toBe(OFFICIAL_PERMIT2);
    expect(EXACT_PERMIT2_PROXY_ADDRESS).toBe(x402ExactPermit2ProxyAddress);
    expect(net.permit2).toEqual({ address: PERMIT2_ADDRESS, exactProxy: EXACT_PERMIT2_PROXY_ADDRESS, uptoProxy: UPTO_PERMIT2_PROXY_ADDRESS });
  });

  it("hand-written ABIs match the compiled ones", () => {
    const sigs = (abi: Abi) => new Set(abi.flatMap((i) => (i.type === "function" || i.type === "event" || i.type === "error" ? [formatAbiItem(i)] : [])));
    for (const [name, abi] of [["Permit2", permit2Abi], ["ExactPermit2Proxy", exactPermit2ProxyAbi], ["PlainToken", erc20PermitAbi]] as const) {
      const compiled = sigs(loadArtifact(name).abi);
      for (const s of sigs(abi as unknown as Abi)) expect(compiled, `${name}: ${s}`).toContain(s);
    }
  });

  it("Permit2's domain separator is canonical Permit2's (computed at call time)", async () => {
    const onChain = await client.readContract({ address: PERMIT2_ADDRESS, abi: permit2Abi, functionName: "DOMAIN_SEPARATOR" });
    const expected = hashDomain({
      domain: { name: "Permit2", chainId: BigInt(net.chainId), verifyingContract: PERMIT2_ADDRESS },
      types: { EIP712Domain: [{ name: "name", type: "string" }, { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" }] },
    });
    expect(onChain).toBe(expected);
    expect(await client.readContract({ address: EXACT_PERMIT2_PROXY_ADDRESS, abi: exactPermit2ProxyAbi, functionName: "PERMIT2" })).toBe(PERMIT2_ADDRESS);
    expect(await client.readContract({ address: EXACT_PERMIT2_PROXY_ADDRESS, abi: exactPermit2ProxyAbi, functionName: "WITNESS_TYPE_STRING" })).toBe(
      "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)",
    );
  });

  it("the plain token has EIP-2612 and no EIP-3009, and payers hold it", async () => {
    const code = await client.getCode({ address: net.plainToken.address });
    expect(code).not.toContain("e3ee160e"); // transferWithAuthorization(…,v,r,s) selector
    expect(await balance(net.plainToken.address, net.accounts.payers[0]!.address)).toBe(1_000_000_000n);
    expect(net.plainToken).toMatchObject({ decimals: 6, version: "1" });
  });

  it("settle moves exactly the permitted amount to witness.to, once; a replay reverts with InvalidNonce", async () => {
    const owner = await freshPayer(5_000n, { approve: true });
    const p = permit();
    const sig = await sign(owner, p);
    const before = await balance(p.token, p.to);
    const receipt = await send(facilitator, EXACT_PERMIT2_PROXY_ADDRESS, exactPermit2ProxyAbi as unknown as Abi, "settle", settleArgs(owner.address, p, sig));
    expect(receipt.status).toBe("success");
    expect(await balance(p.token, p.to)).toBe(before + 1_000n);
    expect(await balance(p.token, owner.address)).toBe(4_000n);
    // The nonce's bit is set in the owner's bitmap.
    const word = await client.readContract({ address: PERMIT2_ADDRESS, abi: permit2Abi, functionName: "nonceBitmap", args: [owner.address, p.nonce >> 8n] });
    expect((word >> (p.nonce & 0xffn)) & 1n).toBe(1n);
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, exactPermit2ProxyAbi as unknown as Abi, "settle", settleArgs(owner.address, p, sig))).toBe("InvalidNonce");
    expect(await balance(p.token, owner.address)).toBe(4_000n);
  });

  it("refuses a changed recipient, amount or owner, an early or expired permit, and a missing allowance", async () => {
    const owner = await freshPayer(5_000n, { approve: true });
    const p = permit();
    const sig = await sign(owner, p);
    const abi = exactPermit2ProxyAbi as unknown as Abi;
    const other = net.accounts.payers[1]!.address;
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(owner.address, { ...p, to: other }, sig))).toBe("InvalidSigner");
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(owner.address, { ...p, amount: 999n }, sig))).toBe("InvalidSigner");
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(other, p, sig))).toBe("InvalidSigner");
    const early = permit({ validAfter: BigInt(Math.floor(Date.now() / 1000)) + 3600n });
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(owner.address, early, await sign(owner, early)))).toBe("PaymentTooEarly");
    const late = permit({ deadline: 1n, validAfter: 0n });
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(owner.address, late, await sign(owner, late)))).toBe("SignatureExpired");
    const zeroTo = permit({ to: "0x0000000000000000000000000000000000000000" });
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(owner.address, zeroTo, await sign(owner, zeroTo)))).toBe("InvalidDestination");
    // Permit2 only spends through a signature whose spender is the caller: calling it directly fails.
    const direct = await callError(PERMIT2_ADDRESS, permit2Abi as unknown as Abi, "permitWitnessTransferFrom", [
      { permitted: { token: p.token, amount: p.amount }, nonce: p.nonce, deadline: p.deadline },
      { to: p.to, requestedAmount: p.amount },
      owner.address,
      "0x" + "00".repeat(32),
      "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)",
      sig,
    ]);
    expect(direct).toBe("InvalidSigner");
    const unapproved = await freshPayer(5_000n);
    const q = permit();
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settle", settleArgs(unapproved.address, q, await sign(unapproved, q)))).not.toBe("ok");
    expect(await balance(p.token, owner.address)).toBe(5_000n);
  });

  it("invalidateUnorderedNonces cancels a signed permit", async () => {
    const owner = await freshPayer(5_000n, { approve: true });
    const p = permit();
    const sig = await sign(owner, p);
    await send(owner, PERMIT2_ADDRESS, permit2Abi as unknown as Abi, "invalidateUnorderedNonces", [p.nonce >> 8n, 1n << (p.nonce & 0xffn)]);
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, exactPermit2ProxyAbi as unknown as Abi, "settle", settleArgs(owner.address, p, sig))).toBe("InvalidNonce");
    expect(await balance(p.token, owner.address)).toBe(5_000n);
  });

  it("settleWithPermit: a payer with no ETH and no allowance pays with an EIP-2612 permit for exactly the amount", async () => {
    const owner = await freshPayer(5_000n);
    expect(await client.getBalance({ address: owner.address })).toBe(0n);
    const p = permit();
    const sig = await sign(owner, p);
    const sign2612 = async (value: bigint) => {
      const nonce = await client.readContract({ address: p.token, abi: erc20PermitAbi, functionName: "nonces", args: [owner.address] });
      const s = parseSignature(
        await owner.signTypedData({
          domain: { name: net.plainToken.name, version: "1", chainId: net.chainId, verifyingContract: p.token },
          types: eip2612PermitTypes,
          primaryType: "Permit",
          message: { owner: owner.address, spender: PERMIT2_ADDRESS, value, nonce, deadline: p.deadline },
        }),
      );
      return { value, deadline: p.deadline, r: s.r, s: s.s, v: Number(s.v) };
    };
    const abi = exactPermit2ProxyAbi as unknown as Abi;
    expect(await callError(EXACT_PERMIT2_PROXY_ADDRESS, abi, "settleWithPermit", [await sign2612(p.amount + 1n), ...settleArgs(owner.address, p, sig)])).toBe("Permit2612AmountMismatch");
    const before = await balance(p.token, p.to);
    const receipt = await send(facilitator, EXACT_PERMIT2_PROXY_ADDRESS, abi, "settleWithPermit", [await sign2612(p.amount), ...settleArgs(owner.address, p, sig)]);
    expect(receipt.status).toBe("success");
    expect(await balance(p.token, p.to)).toBe(before + p.amount);
    expect(await balance(p.token, owner.address)).toBe(4_000n);
  });
});
