// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title PlainToken
/// @notice A local ERC-20 WITHOUT EIP-3009 (so x402 `exact` must pay with it through Permit2) but
///         WITH EIP-2612 `permit` (EIP-712 domain: the token's name, version "1"), so the
///         `eip2612GasSponsoring` extension can approve Permit2 without the payer paying gas.
///         6 decimals like a stablecoin; the owner mints.
contract PlainToken is ERC20, ERC20Permit, Ownable {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) ERC20Permit(name_) Ownable(msg.sender) {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
