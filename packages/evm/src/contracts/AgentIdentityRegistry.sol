// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title AgentIdentityRegistry
/// @notice Tollgate's implementation of the ERC-8004 (v2.0.0) Identity Registry: every agent is an
///         ERC-721 token whose tokenURI points at its registration file, plus free-form on-chain
///         metadata and one verified payout wallet.
/// @dev Meant to run with its runtime code installed directly at an address (anvil_setCode), so no
///      constructor may leave state behind and nothing may live in immutables: the token name and
///      symbol are constants and the EIP-712 domain is derived from chainid/address(this) on use.
///      The ABI (selectors, events, struct field names) matches the public ERC-8004 deployments.
contract AgentIdentityRegistry is ERC721URIStorage {
    /// @notice One key/value pair of on-chain agent metadata, as passed to `register`.
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
    event MetadataSet(uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue);
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);

    error NotAgentManager(uint256 agentId, address caller);
    error ReservedMetadataKey(string metadataKey);
    error ZeroWallet();
    error WalletProofExpired(uint256 deadline);
    error WalletProofDeadlineTooFar(uint256 deadline);
    error WalletProofInvalid(address newWallet);

    /// @dev The only metadata key this contract writes itself; callers can never set it directly.
    string private constant WALLET_KEY = "agentWallet";
    bytes32 private constant WALLET_KEY_HASH = keccak256(bytes(WALLET_KEY));

    /// @dev A wallet proof may not be valid for longer than this (bounds replay of a leaked proof).
    uint256 private constant PROOF_WINDOW = 300;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant DOMAIN_NAME_HASH = keccak256("ERC8004IdentityRegistry");
    bytes32 private constant DOMAIN_VERSION_HASH = keccak256("1");
    bytes32 private constant WALLET_PROOF_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");

    /// @dev Number of agents minted so far; also the next agentId (ids start at 0).
    uint256 private _agentCount;
    mapping(uint256 agentId => mapping(string key => bytes value)) private _agentMetadata;

    constructor() ERC721("", "") {}

    // ---------------------------------------------------------------- ERC-721 identity

    function name() public pure override returns (string memory) {
        return "AgentIdentity";
    }

    function symbol() public pure override returns (string memory) {
        return "AGENT";
    }

    function getVersion() external pure returns (string memory) {
        return "2.0.0";
    }

    /// @notice Mints an agent with no URI yet. The caller owns it and is its initial wallet.
    function register() external returns (uint256 agentId) {
        agentId = _mintAgent("", false);
    }

    /// @notice Mints an agent pointing at `agentURI`.
    function register(string memory agentURI) external returns (uint256 agentId) {
        agentId = _mintAgent(agentURI, true);
    }

    /// @notice Mints an agent pointing at `agentURI` and stores extra metadata in the same call.
    ///         The key "agentWallet" is refused here: it only changes through `setAgentWallet`.
    function register(string memory agentURI, MetadataEntry[] memory metadata) external returns (uint256 agentId) {
        agentId = _mintAgent(agentURI, true);
        for (uint256 i = 0; i < metadata.length; ++i) {
            _writeMetadata(agentId, metadata[i].metadataKey, metadata[i].metadataValue);
        }
    }

    function setAgentURI(uint256 agentId, string calldata newURI) external {
        _onlyManager(agentId);
        _setTokenURI(agentId, newURI);
        emit URIUpdated(agentId, newURI, msg.sender);
    }

    /// @notice True when `spender` is the agent's owner, an operator of the owner, or approved for it.
    ///         Reverts (ERC721NonexistentToken) for an unknown agent. The other registries use it.
    function isAuthorizedOrOwner(address spender, uint256 agentId) public view returns (bool) {
        return _isAuthorized(_requireOwned(agentId), spender, agentId);
    }

    // ---------------------------------------------------------------- metadata

    function getMetadata(uint256 agentId, string memory metadataKey) external view returns (bytes memory) {
        return _agentMetadata[agentId][metadataKey];
    }

    function setMetadata(uint256 agentId, string memory metadataKey, bytes memory metadataValue) external {
        _onlyManager(agentId);
        _writeMetadata(agentId, metadataKey, metadataValue);
    }

    // ---------------------------------------------------------------- verified wallet

    /// @notice The agent's payout wallet (the zero address when unset or cleared by a transfer).
    function getAgentWallet(uint256 agentId) external view returns (address) {
        bytes memory packed = _agentMetadata[agentId][WALLET_KEY];
        if (packed.length < 20) return address(0);
        return address(bytes20(packed));
    }

    /// @notice Points the agent at `newWallet`, which must consent: `signature` is its EIP-712
    ///         signature over AgentWalletSet(agentId, newWallet, owner, deadline) (an EOA), or is
    ///         accepted by its ERC-1271 `isValidSignature` (a contract wallet).
    function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature) external {
        address agentOwner = _onlyManager(agentId);
        if (newWallet == address(0)) revert ZeroWallet();
        if (deadline < block.timestamp) revert WalletProofExpired(deadline);
        if (deadline > block.timestamp + PROOF_WINDOW) revert WalletProofDeadlineTooFar(deadline);

        bytes32 digest = _walletProofDigest(agentId, newWallet, agentOwner, deadline);
        if (!_walletConsents(newWallet, digest, signature)) revert WalletProofInvalid(newWallet);
        _writeWallet(agentId, abi.encodePacked(newWallet));
    }

    /// @notice Forgets the agent's wallet (getAgentWallet then returns the zero address).
    function unsetAgentWallet(uint256 agentId) external {
        _onlyManager(agentId);
        _writeWallet(agentId, "");
    }

    /// @notice ERC-5267: the EIP-712 domain wallet proofs are signed against.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory domainName,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "ERC8004IdentityRegistry", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------- internals

    function _mintAgent(string memory agentURI, bool withURI) private returns (uint256 agentId) {
        agentId = _agentCount;
        _agentCount = agentId + 1;
        bytes memory wallet = abi.encodePacked(msg.sender);
        // Stored before the mint's receiver callback runs, so a re-entrant caller already sees it.
        _agentMetadata[agentId][WALLET_KEY] = wallet;
        _safeMint(msg.sender, agentId);
        if (withURI) _setTokenURI(agentId, agentURI);
        emit Registered(agentId, agentURI, msg.sender);
        emit MetadataSet(agentId, WALLET_KEY, WALLET_KEY, wallet);
    }

    function _writeMetadata(uint256 agentId, string memory key, bytes memory value) private {
        if (keccak256(bytes(key)) == WALLET_KEY_HASH) revert ReservedMetadataKey(key);
        _agentMetadata[agentId][key] = value;
        emit MetadataSet(agentId, key, key, value);
    }

    function _writeWallet(uint256 agentId, bytes memory packed) private {
        _agentMetadata[agentId][WALLET_KEY] = packed;
        emit MetadataSet(agentId, WALLET_KEY, WALLET_KEY, packed);
    }

    /// @dev Reverts unless the caller may manage `agentId`; returns the agent's owner.
    function _onlyManager(uint256 agentId) private view returns (address agentOwner) {
        agentOwner = _requireOwned(agentId);
        if (!_isAuthorized(agentOwner, msg.sender, agentId)) revert NotAgentManager(agentId, msg.sender);
    }

    function _walletProofDigest(uint256 agentId, address newWallet, address agentOwner, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        bytes32 domainSeparator =
            keccak256(abi.encode(DOMAIN_TYPEHASH, DOMAIN_NAME_HASH, DOMAIN_VERSION_HASH, block.chainid, address(this)));
        bytes32 structHash = keccak256(abi.encode(WALLET_PROOF_TYPEHASH, agentId, newWallet, agentOwner, deadline));
        return keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
    }

    /// @dev A plain ECDSA signature by the wallet key counts first (EOAs, EIP-7702 accounts); failing
    ///      that, a wallet with code is asked through ERC-1271.
    function _walletConsents(address wallet, bytes32 digest, bytes calldata signature) private view returns (bool) {
        (address signer, ECDSA.RecoverError failure,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (failure == ECDSA.RecoverError.NoError && signer == wallet) return true;
        if (wallet.code.length == 0) return false;
        (bool ok, bytes memory answer) =
            wallet.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, signature)));
        return ok && answer.length >= 32 && abi.decode(answer, (bytes4)) == IERC1271.isValidSignature.selector;
    }

    /// @dev A verified wallet belongs to the owner who proved it: any transfer (not mint or burn) clears it.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        address from = _ownerOf(tokenId);
        if (from != address(0) && to != address(0)) _writeWallet(tokenId, "");
        return super._update(to, tokenId, auth);
    }
}
