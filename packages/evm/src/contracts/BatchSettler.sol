// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @dev The EIP-3009 entry point BatchSettler relies on (FiatToken v2.2 `bytes signature` overload).
interface IERC3009Bytes {
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}

/// @title BatchSettler
/// @notice Settles many EIP-3009 authorizations for one token in a single transaction. Each item is
///         attempted independently, so one bad authorization (used nonce, expired, bad signature,
///         insufficient balance) does not sink the others. Holds no funds and needs no approval:
///         the token moves value straight from payer to payee, and every transfer is bound by the
///         payer's own signature, so anyone may call `settle`.
contract BatchSettler {
    struct Item {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        bytes signature;
    }

    /// @notice One per item that did not settle, with the token's revert data. A settled item needs
    ///         no event of ours: the token's own `AuthorizationUsed` and `Transfer` logs prove it,
    ///         and a second log per item would cost about 3,000 gas for nothing.
    event ItemFailed(bytes32 indexed nonce, address indexed from, address indexed to, uint256 index, bytes reason);

    error NotAContract(address token);

    function settle(address token, Item[] calldata items) external returns (bool[] memory ok) {
        // A call to an address without code would revert outside try/catch; fail the batch up front instead.
        if (token.code.length == 0) revert NotAContract(token);
        ok = new bool[](items.length);
        for (uint256 i = 0; i < items.length; ++i) {
            Item calldata item = items[i];
            try IERC3009Bytes(token).transferWithAuthorization(
                item.from, item.to, item.value, item.validAfter, item.validBefore, item.nonce, item.signature
            ) {
                ok[i] = true;
            } catch (bytes memory reason) {
                emit ItemFailed(item.nonce, item.from, item.to, i, reason);
            }
        }
    }
}
