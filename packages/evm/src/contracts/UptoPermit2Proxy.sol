// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ISignatureTransferLike, IERC2612} from "./ExactPermit2Proxy.sol";

/// @title UptoPermit2Proxy
/// @notice Our implementation of the x402 `upto` scheme's Permit2 spender (the ABI, witness type
///         and errors of x402UptoPermit2Proxy). The payer signs a Permit2 transfer of at most
///         `permit.permitted.amount`, naming this contract as spender and committing to a witness
///         (recipient, facilitator, validAfter). Only the named facilitator may settle, and only
///         for an amount up to the signed maximum, always to `witness.to`. Installed at the
///         canonical address with anvil_setCode (no constructor runs): Permit2's address is a
///         constant and the reentrancy lock is transient storage.
contract UptoPermit2Proxy {
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    /// @notice The canonical Permit2 (same address on every chain).
    ISignatureTransferLike public constant PERMIT2 = ISignatureTransferLike(0x000000000022D473030F116dDEE9F6B43aC78BA3);

    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";

    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    event Settled();
    event SettledWithPermit();
    event EIP2612PermitFailed(address indexed token, address indexed owner, bytes reason);

    error AmountExceedsPermitted();
    error UnauthorizedFacilitator();
    error InvalidAmount();
    error InvalidDestination();
    error InvalidOwner();
    error PaymentTooEarly();
    error Permit2612AmountMismatch();
    error ReentrancyGuardReentrantCall();

    bool private transient locked;

    modifier nonReentrant() {
        if (locked) revert ReentrancyGuardReentrantCall();
        locked = true;
        _;
        locked = false;
    }

    /// @notice Moves `amount` (at most the signed maximum) from `owner` to `witness.to`.
    function settle(
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _authorize(permit, amount, witness);
        _settle(permit, amount, owner, witness, signature);
        emit Settled();
    }

    /// @notice As `settle`, after submitting the owner's EIP-2612 permit giving Permit2 an allowance
    ///         of the signed maximum (`eip2612GasSponsoring`).
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _authorize(permit, amount, witness);
        if (permit2612.value != permit.permitted.amount) revert Permit2612AmountMismatch();
        try IERC2612(permit.permitted.token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch (bytes memory reason) {
            // A front-run permit set the same allowance: carry on; a missing allowance makes
            // Permit2's transfer below revert the whole call.
            emit EIP2612PermitFailed(permit.permitted.token, owner, reason);
        }
        _settle(permit, amount, owner, witness, signature);
        emit SettledWithPermit();
    }

    /// @dev The two rules that make `upto` safe for the payer: never above what was signed, and
    ///      only the facilitator the payer named may choose the amount.
    function _authorize(ISignatureTransferLike.PermitTransferFrom calldata permit, uint256 amount, Witness calldata witness) private view {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
    }

    function _settle(
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        // A zero charge moves nothing: the facilitator sends no transaction for it at all.
        if (amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransferLike.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}
