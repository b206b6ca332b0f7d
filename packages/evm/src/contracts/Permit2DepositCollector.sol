// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @dev The part of Permit2's SignatureTransfer the collector calls (ABI-identical structs).
interface IDepositPermit2Transfer {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;
}

/**
 * @title Permit2DepositCollector — pulls a `batch-settlement` deposit of any ERC-20 through Permit2.
 * @dev The payer signs a PermitWitnessTransferFrom whose spender is this collector and whose witness is
 * `DepositWitness(bytes32 channelId)`: tokens go straight from the payer to the settlement contract and
 * the signature is bound to one channel. An optional EIP-2612 permit (payer → Permit2) runs first when
 * the payer has not approved Permit2 yet; its failure is tolerated (an approval may already exist — if
 * not, the Permit2 transfer itself reverts). No immutables: installable with anvil_setCode.
 */
contract Permit2DepositCollector {
    address public constant BATCH_SETTLEMENT = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;
    address public constant PERMIT2 = 0x000000000022D473030F116dDEE9F6B43aC78BA3;

    /// @dev Permit2 appends this to its witness stub; referenced types in EIP-712 alphabetical order.
    string public constant DEPOSIT_WITNESS_TYPE_STRING =
        "DepositWitness witness)DepositWitness(bytes32 channelId)TokenPermissions(address token,uint256 amount)";
    bytes32 public constant DEPOSIT_WITNESS_TYPEHASH = keccak256("DepositWitness(bytes32 channelId)");

    error OnlyBatchSettlement();
    error Permit2612AmountMismatch();

    event EIP2612PermitFailed(address indexed token, address indexed owner, bytes reason);

    /// @param data `abi.encode(uint256 nonce, uint256 deadline, bytes permit2Signature, bytes eip2612Permit)`;
    /// `eip2612Permit` is empty or `abi.encode(uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)`.
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external {
        if (msg.sender != BATCH_SETTLEMENT) revert OnlyBatchSettlement();
        (uint256 nonce, uint256 deadline, bytes memory signature, bytes memory eip2612Permit) =
            abi.decode(data, (uint256, uint256, bytes, bytes));
        if (eip2612Permit.length > 0) _tryPermit(payer, token, amount, eip2612Permit);

        IDepositPermit2Transfer(PERMIT2).permitWitnessTransferFrom(
            IDepositPermit2Transfer.PermitTransferFrom({
                permitted: IDepositPermit2Transfer.TokenPermissions({token: token, amount: amount}),
                nonce: nonce,
                deadline: deadline
            }),
            IDepositPermit2Transfer.SignatureTransferDetails({to: BATCH_SETTLEMENT, requestedAmount: amount}),
            payer,
            keccak256(abi.encode(DEPOSIT_WITNESS_TYPEHASH, channelId)),
            DEPOSIT_WITNESS_TYPE_STRING,
            signature
        );
    }

    function _tryPermit(address payer, address token, uint256 amount, bytes memory eip2612Permit) private {
        (uint256 value, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s) =
            abi.decode(eip2612Permit, (uint256, uint256, uint8, bytes32, bytes32));
        if (value != amount) revert Permit2612AmountMismatch();
        try IERC20Permit(token).permit(payer, PERMIT2, value, permitDeadline, v, r, s) {}
        catch (bytes memory reason) {
            emit EIP2612PermitFailed(token, payer, reason);
        }
    }
}
