// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @dev What this registry needs from the identity registry.
interface IAgentManagersView {
    /// Reverts for an unknown agent.
    function isAuthorizedOrOwner(address spender, uint256 agentId) external view returns (bool);
}

/// @title AgentValidationRegistry
/// @notice Tollgate's implementation of the ERC-8004 (v2.0.0) Validation Registry. An agent's owner
///         (or operator) asks a named validator to check some work, identified by `requestHash`;
///         that validator alone answers with a score from 0 to 100, and may answer again later
///         (progressive validation: the latest answer stands).
/// @dev Runtime code is installed with anvil_setCode: the identity registry is set once through
///      `initialize(address)` right after installation instead of by a constructor.
contract AgentValidationRegistry {
    event ValidationRequest(
        address indexed validatorAddress, uint256 indexed agentId, string requestURI, bytes32 indexed requestHash
    );
    event ValidationResponse(
        address indexed validatorAddress,
        uint256 indexed agentId,
        bytes32 indexed requestHash,
        uint8 response,
        string responseURI,
        bytes32 responseHash,
        string tag
    );

    error AlreadyInitialized(address identityRegistry);
    error NotInitialized();
    error ZeroIdentityRegistry();
    error ZeroValidator();
    error RequestExists(bytes32 requestHash);
    error UnknownRequest(bytes32 requestHash);
    error NotAgentManager(uint256 agentId, address caller);
    error NotTheValidator(bytes32 requestHash, address caller);
    error ResponseOutOfRange(uint8 response);

    uint8 private constant MAX_RESPONSE = 100;

    struct Request {
        address validator;
        bool answered;
        uint8 response;
        uint256 agentId;
        bytes32 responseHash;
        uint256 lastUpdate;
        string tag;
    }

    address private _identity;
    mapping(bytes32 requestHash => Request) private _requests;
    mapping(uint256 agentId => bytes32[]) private _byAgent;
    mapping(address validator => bytes32[]) private _byValidator;

    /// @notice Binds this registry to its identity registry; callable once.
    function initialize(address identityRegistry_) external {
        if (_identity != address(0)) revert AlreadyInitialized(_identity);
        if (identityRegistry_ == address(0)) revert ZeroIdentityRegistry();
        _identity = identityRegistry_;
    }

    function getIdentityRegistry() external view returns (address) {
        return _identity;
    }

    function getVersion() external pure returns (string memory) {
        return "2.0.0";
    }

    /// @notice Opens a validation request; the caller must manage `agentId`. `requestHash` (the
    ///         commitment to the off-chain request at `requestURI`) must not have been used before.
    function validationRequest(address validatorAddress, uint256 agentId, string calldata requestURI, bytes32 requestHash)
        external
    {
        if (validatorAddress == address(0)) revert ZeroValidator();
        if (_requests[requestHash].validator != address(0)) revert RequestExists(requestHash);
        address identity = _identity;
        if (identity == address(0)) revert NotInitialized();
        if (!IAgentManagersView(identity).isAuthorizedOrOwner(msg.sender, agentId)) {
            revert NotAgentManager(agentId, msg.sender);
        }

        Request storage r = _requests[requestHash];
        r.validator = validatorAddress;
        r.agentId = agentId;
        r.lastUpdate = block.timestamp;
        _byAgent[agentId].push(requestHash);
        _byValidator[validatorAddress].push(requestHash);
        emit ValidationRequest(validatorAddress, agentId, requestURI, requestHash);
    }

    /// @notice The requested validator's verdict (0 = failed ... 100 = passed); repeatable.
    function validationResponse(
        bytes32 requestHash,
        uint8 response,
        string calldata responseURI,
        bytes32 responseHash,
        string calldata tag
    ) external {
        Request storage r = _requests[requestHash];
        if (r.validator == address(0)) revert UnknownRequest(requestHash);
        if (msg.sender != r.validator) revert NotTheValidator(requestHash, msg.sender);
        if (response > MAX_RESPONSE) revert ResponseOutOfRange(response);
        r.answered = true;
        r.response = response;
        r.responseHash = responseHash;
        r.tag = tag;
        r.lastUpdate = block.timestamp;
        emit ValidationResponse(r.validator, r.agentId, requestHash, response, responseURI, responseHash, tag);
    }

    function getValidationStatus(bytes32 requestHash)
        external
        view
        returns (
            address validatorAddress,
            uint256 agentId,
            uint8 response,
            bytes32 responseHash,
            string memory tag,
            uint256 lastUpdate
        )
    {
        Request storage r = _requests[requestHash];
        if (r.validator == address(0)) revert UnknownRequest(requestHash);
        return (r.validator, r.agentId, r.response, r.responseHash, r.tag, r.lastUpdate);
    }

    /// @notice Count and integer mean of the answered requests for `agentId`, optionally only from
    ///         `validatorAddresses` (empty: any) and with `tag` (empty: any).
    function getSummary(uint256 agentId, address[] calldata validatorAddresses, string calldata tag)
        external
        view
        returns (uint64 count, uint8 avgResponse)
    {
        bytes32[] storage hashes = _byAgent[agentId];
        bool anyTag = bytes(tag).length == 0;
        bytes32 tagHash = keccak256(bytes(tag));
        uint256 total;
        for (uint256 i = 0; i < hashes.length; ++i) {
            Request storage r = _requests[hashes[i]];
            if (!r.answered) continue;
            if (!anyTag && keccak256(bytes(r.tag)) != tagHash) continue;
            if (!_listed(r.validator, validatorAddresses)) continue;
            total += r.response;
            ++count;
        }
        if (count > 0) avgResponse = uint8(total / count);
    }

    function getAgentValidations(uint256 agentId) external view returns (bytes32[] memory) {
        return _byAgent[agentId];
    }

    function getValidatorRequests(address validatorAddress) external view returns (bytes32[] memory) {
        return _byValidator[validatorAddress];
    }

    /// @dev An empty list admits everyone.
    function _listed(address who, address[] calldata list) private pure returns (bool) {
        if (list.length == 0) return true;
        for (uint256 i = 0; i < list.length; ++i) if (list[i] == who) return true;
        return false;
    }
}
