// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @dev The EIP-3009 entry point the collector uses (bytes-signature form, as in USDC v2.2).
interface IDepositReceiveWithAuthorization {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;
}

/**
 * @title ERC3009DepositCollector — pulls a `batch-settlement` deposit with EIP-3009 receiveWithAuthorization.
 * @dev EIP-3009's `receiveWithAuthorization` only lets the payee (`to`) submit, so the payer signs the
 * authorization to this collector, which forwards the tokens to the settlement contract in the same call.
 * The authorization nonce is `keccak256(abi.encode(channelId, salt))`: a signature made for one channel
 * cannot fund another. Only the settlement contract may call `collect`, so no one can use a leaked
 * authorization to park a payer's tokens here. No immutables: installable with anvil_setCode.
 */
contract ERC3009DepositCollector {
    using SafeERC20 for IERC20;

    /// @notice The canonical x402BatchSettlement this collector feeds.
    address public constant BATCH_SETTLEMENT = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;

    error OnlyBatchSettlement();

    /// @param data `abi.encode(uint256 validAfter, uint256 validBefore, uint256 salt, bytes signature)`.
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external {
        if (msg.sender != BATCH_SETTLEMENT) revert OnlyBatchSettlement();
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(data, (uint256, uint256, uint256, bytes));
        bytes32 nonce = keccak256(abi.encode(channelId, salt));
        IDepositReceiveWithAuthorization(token).receiveWithAuthorization(
            payer, address(this), amount, validAfter, validBefore, nonce, signature
        );
        IERC20(token).safeTransfer(BATCH_SETTLEMENT, amount);
    }
}
