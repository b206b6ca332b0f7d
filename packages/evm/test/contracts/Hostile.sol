// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// Test-only contracts an attacker would deploy against a facilitator. Never shipped: compiled by
// the tests that use them (packages/evm/test/attacks.anvil.test.ts).

/// Claims to be an EIP-3009 token: answers every read a facilitator makes (a rich balance, an
/// unused nonce, the domain the requirements name) and "settles" by logging AuthorizationUsed and
/// Transfer, moving nothing. Without an asset allowlist it would verify as valid, and the fee payer
/// would pay gas for transfers of nothing.
contract HostileToken {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

    bytes32 public immutable DOMAIN_SEPARATOR;
    string public name;
    string public version;

    constructor(string memory name_, string memory version_) {
        name = name_;
        version = version_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name_)),
                keccak256(bytes(version_)),
                block.chainid,
                address(this)
            )
        );
    }

    function balanceOf(address) external pure returns (uint256) {
        return type(uint128).max;
    }

    function authorizationState(address, bytes32) external pure returns (bool) {
        return false;
    }

    function transferWithAuthorization(address from, address to, uint256 value, uint256, uint256, bytes32 nonce, uint8, bytes32, bytes32)
        external
    {
        emit AuthorizationUsed(from, nonce);
        emit Transfer(from, to, value);
    }

    function transferWithAuthorization(address from, address to, uint256 value, uint256, uint256, bytes32 nonce, bytes calldata)
        external
    {
        emit AuthorizationUsed(from, nonce);
        emit Transfer(from, to, value);
    }
}

/// Emits the token's AuthorizationUsed event from its own address: a receipt reader that accepts
/// the event from any contract would take this for a settlement.
contract LogForger {
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

    function forge(address authorizer, bytes32 nonce) external {
        emit AuthorizationUsed(authorizer, nonce);
    }
}

/// An ERC-1271 wallet. Mode 0 (griefing): valid only when the call pays no gas price, i.e. in a
/// fee-less eth_call; mined (gas price > 0) it burns all the gas it gets and answers "invalid".
/// Mode 1: always valid (an honest wallet). Mode 2: never valid.
contract GriefingWallet {
    uint256 public mode;

    function setMode(uint256 m) external {
        mode = m;
    }

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        if (mode == 1 || (mode == 0 && tx.gasprice == 0)) return 0x1626ba7e;
        uint256 burned;
        while (gasleft() > 3_000) burned++;
        return burned == 0 ? bytes4(0) : bytes4(0xffffffff);
    }
}
