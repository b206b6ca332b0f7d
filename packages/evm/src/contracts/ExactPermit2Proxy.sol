// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev The part of Permit2 the proxy calls (the structs are ABI-identical to Permit2's).
interface ISignatureTransferLike {
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

/// @dev EIP-2612 `permit`, as the token implements it.
interface IERC2612 {
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
}

/// @title ExactPermit2Proxy
/// @notice Our implementation of the x402 `exact` scheme's Permit2 spender (the ABI, witness type
///         and errors of x402ExactPermit2Proxy). The payer's Permit2 signature names this contract
///         as spender and commits to a witness (recipient, validAfter); this contract only ever
///         asks Permit2 to send the permitted amount to `witness.to`, so whoever submits the call
///         (the facilitator) can neither redirect the funds nor change the amount. The devnet
///         installs the runtime code at the canonical address with anvil_setCode (no constructor
///         runs), so Permit2's address is a constant and the reentrancy lock is transient storage.
contract ExactPermit2Proxy {
    struct Witness {
        address to;
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

    /// @notice Completes Permit2's "PermitWitnessTransferFrom(...," stub into the full EIP-712 type.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";

    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    event Settled();
    event SettledWithPermit();
    /// @notice The EIP-2612 permit was refused (e.g. someone submitted it first); settlement still
    ///         proceeds and succeeds if the allowance is in place anyway.
    event EIP2612PermitFailed(address indexed token, address indexed owner, bytes reason);

    error InvalidAmount();
    error InvalidDestination();
    error InvalidOwner();
    error InvalidPermit2Address();
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

    /// @notice Moves `permit.permitted.amount` from `owner` to `witness.to`, as signed.
    function settle(
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settle(permit, owner, witness, signature);
        emit Settled();
    }

    /// @notice As `settle`, after submitting the owner's EIP-2612 permit giving Permit2 an allowance
    ///         (the `eip2612GasSponsoring` extension: the payer needs no gas for the approval).
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        // The approval must be for exactly what is paid: no standing allowance rides along.
        if (permit2612.value != permit.permitted.amount) revert Permit2612AmountMismatch();
        try IERC2612(permit.permitted.token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch (bytes memory reason) {
            // A front-run permit consumed the nonce but set the same allowance: carry on; if the
            // allowance is missing, Permit2's transfer below reverts the whole call.
            emit EIP2612PermitFailed(permit.permitted.token, owner, reason);
        }
        _settle(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settle(
        ISignatureTransferLike.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        if (permit.permitted.amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        // The recipient and amount come from the signed permit and witness only: Permit2 checks
        // the signature over exactly these values, so nothing the caller adds can change them.
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransferLike.SignatureTransferDetails({to: witness.to, requestedAmount: permit.permitted.amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}
