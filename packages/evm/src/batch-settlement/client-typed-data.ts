/**
 * What the paying and the serving side of `batch-settlement` take from eip712.ts (the shared
 * encodings), plus the hot path of a server: the voucher digest built by hand (the domain
 * separator cached per chain) and its ECDSA recovery, because it runs once per paid request.
 */
import { hashDomain, hexToBytes, keccak256, toHex, type Address, type Hex, type LocalAccount } from "viem";
import { keccak256Bytes } from "../crypto/keccak.ts";
import { recoverAddress } from "../crypto/recover.ts";
import { signDigest } from "../crypto/sign.ts";
import { privateKeyToAccount } from "viem/accounts";
import { BATCH_SETTLEMENT_ADDRESS, ERC3009_DEPOSIT_COLLECTOR_ADDRESS } from "../contracts/batch-settlement-abi.ts";
import { MAX_WITHDRAW_DELAY, MIN_WITHDRAW_DELAY, batchSettlementDomain, computeChannelId, erc3009DepositNonce, receiveWithAuthorizationTypes, voucherTypes, type ChannelConfig } from "./eip712.ts";

export { BATCH_SETTLEMENT_ADDRESS, ERC3009_DEPOSIT_COLLECTOR_ADDRESS, MAX_WITHDRAW_DELAY, MIN_WITHDRAW_DELAY, batchSettlementDomain, receiveWithAuthorizationTypes, voucherTypes, type ChannelConfig };

export const ZERO_ADDRESS: Address = "0x0000000000000000000000000000000000000000";
export const ZERO_SALT: Hex = "0x0000000000000000000000000000000000000000000000000000000000000000";

/**
 * The channel id (eip712.ts computeChannelId), lower-case: the key of channel records on both
 * sides. Both sides compute it on every paid request, so it is hashed by hand (js-sha3, the
 * domain separator cached), like voucherDigestBytes: viem's hashTypedData took ~0.3 ms a call,
 * the largest single cost of a voucher-paid request (bench/channel.ts profile). Equal to
 * computeChannelId (tested); a config whose fields are not in canonical form goes through viem.
 */
export function channelIdOf(config: ChannelConfig, chainId: number): Hex {
  const struct = channelConfigStruct(config);
  if (!struct) return computeChannelId(config, chainId).toLowerCase() as Hex;
  // The same few channels come back on every request: remembered (bounded), keyed on the
  // well-formed fields (hex is case-insensitive), so a hit costs a string and a lookup.
  const key = `${chainId}|${config.payer}|${config.payerAuthorizer}|${config.receiver}|${config.receiverAuthorizer}|${config.token}|${config.withdrawDelay}|${config.salt}`.toLowerCase();
  const hit = channelIds.get(key);
  if (hit) return hit;
  const id = `0x${Buffer.from(typedDigest(chainId, keccak256Bytes(struct))).toString("hex")}` as Hex;
  if (channelIds.size >= MAX_REMEMBERED_IDS) channelIds.delete(channelIds.keys().next().value!);
  channelIds.set(key, id);
  return id;
}

const channelIds = new Map<string, Hex>();
const MAX_REMEMBERED_IDS = 4_096;

const CHANNEL_CONFIG_TYPEHASH = hexToBytes(
  keccak256(toHex("ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)")),
);
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;

/** typehash ‖ the seven fields, each a 32-byte word; undefined when a field is not well-formed. */
function channelConfigStruct(c: ChannelConfig): Uint8Array | undefined {
  const addresses = [c.payer, c.payerAuthorizer, c.receiver, c.receiverAuthorizer, c.token];
  if (!addresses.every((a) => typeof a === "string" && ADDRESS.test(a))) return undefined;
  if (!Number.isSafeInteger(c.withdrawDelay) || c.withdrawDelay < 0 || c.withdrawDelay >= 2 ** 40) return undefined;
  if (typeof c.salt !== "string" || !BYTES32.test(c.salt)) return undefined;
  const struct = new Uint8Array(32 * 8);
  struct.set(CHANNEL_CONFIG_TYPEHASH, 0);
  addresses.forEach((a, i) => struct.set(Buffer.from(a.slice(2), "hex"), 32 * (i + 1) + 12));
  struct.set(Buffer.from(c.withdrawDelay.toString(16).padStart(64, "0"), "hex"), 32 * 6);
  struct.set(Buffer.from(c.salt.slice(2), "hex"), 32 * 7);
  return struct;
}

/** keccak256(0x1901 ‖ domainSeparator(chainId) ‖ structHash): an EIP-712 digest under the settlement contract's domain. */
function typedDigest(chainId: number, structHash: Uint8Array): Uint8Array {
  const envelope = new Uint8Array(66);
  envelope[0] = 0x19;
  envelope[1] = 0x01;
  envelope.set(domainSeparator(chainId), 2);
  envelope.set(structHash, 34);
  return keccak256Bytes(envelope);
}

/** The ERC-3009 nonce of a deposit (eip712.ts). */
export const depositNonce = erc3009DepositNonce;

const VOUCHER_TYPEHASH = hexToBytes(keccak256(toHex("Voucher(bytes32 channelId,uint128 maxClaimableAmount)")));
const separators = new Map<number, Uint8Array>();

function domainSeparator(chainId: number): Uint8Array {
  let hit = separators.get(chainId);
  if (!hit) {
    hit = hexToBytes(
      hashDomain({
        domain: { name: "x402 Batch Settlement", version: "1", chainId: BigInt(chainId), verifyingContract: BATCH_SETTLEMENT_ADDRESS },
        types: {
          EIP712Domain: [
            { name: "name", type: "string" },
            { name: "version", type: "string" },
            { name: "chainId", type: "uint256" },
            { name: "verifyingContract", type: "address" },
          ],
        },
      }),
    );
    // Chain ids come from configured networks, so this stays small; bound it anyway.
    if (separators.size > 256) separators.clear();
    separators.set(chainId, hit);
  }
  return hit;
}

/** The voucher's EIP-712 digest as bytes, equal to eip712.ts voucherDigest (tested); the domain separator cached. */
export function voucherDigestBytes(channelId: Hex, maxClaimableAmount: bigint, chainId: number): Uint8Array {
  const struct = new Uint8Array(96);
  struct.set(VOUCHER_TYPEHASH, 0);
  struct.set(Buffer.from(channelId.slice(2), "hex"), 32);
  struct.set(Buffer.from(maxClaimableAmount.toString(16).padStart(64, "0"), "hex"), 64);
  return typedDigest(chainId, keccak256Bytes(struct));
}

const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;

/** Who signed a voucher (lower-case), or undefined for a signature that is not a 65-byte ECDSA one. */
export function voucherSigner(channelId: Hex, maxClaimableAmount: bigint, signature: Hex, chainId: number): string | undefined {
  if (!SIGNATURE.test(signature)) return undefined;
  const signer = recoverAddress(voucherDigestBytes(channelId, maxClaimableAmount, chainId), Buffer.from(signature.slice(2), "hex"));
  return signer?.toLowerCase();
}

/**
 * A voucher signer over a private key: vouchers are signed from their digest with libsecp256k1
 * (viem's account takes several milliseconds per signature); the deposit's typed data still goes
 * through viem. The key stays in this closure.
 */
export function fastVoucherSigner(privateKey: Hex): { address: Address; signTypedData: LocalAccount["signTypedData"]; signDigest(digest: Uint8Array): Hex } {
  const account = privateKeyToAccount(privateKey);
  const key = Buffer.from(privateKey.slice(2), "hex");
  return {
    address: account.address,
    signTypedData: (args) => account.signTypedData(args as Parameters<typeof account.signTypedData>[0]),
    signDigest(digest) {
      const { r, s, yParity } = signDigest(digest, key);
      return `0x${r.slice(2)}${s.slice(2)}${yParity === 1 ? "1c" : "1b"}` as Hex;
    },
  };
}
