// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @dev The one question this registry asks the identity registry.
interface IAgentManagers {
    /// Reverts for an unknown agent.
    function isAuthorizedOrOwner(address spender, uint256 agentId) external view returns (bool);
}

/// @title AgentReputationRegistry
/// @notice Tollgate's implementation of the ERC-8004 (v2.0.0) Reputation Registry. A client posts a
///         signed fixed-point score (value, valueDecimals) with optional tags about an agent; the
///         agent's own owner and operators may not. Clients can revoke their feedback, anyone can
///         append a response to it, and reads aggregate over an explicit list of clients.
/// @dev Runtime code is installed with anvil_setCode, so there is no constructor state: the
///      identity registry is set once through `initialize(address)` right after installation.
contract AgentReputationRegistry {
    event NewFeedback(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        int128 value,
        uint8 valueDecimals,
        string indexed indexedTag1,
        string tag1,
        string tag2,
        string endpoint,
        string feedbackURI,
        bytes32 feedbackHash
    );
    event FeedbackRevoked(uint256 indexed agentId, address indexed clientAddress, uint64 indexed feedbackIndex);
    event ResponseAppended(
        uint256 indexed agentId,
        address indexed clientAddress,
        uint64 feedbackIndex,
        address indexed responder,
        string responseURI,
        bytes32 responseHash
    );

    error AlreadyInitialized(address identityRegistry);
    error NotInitialized();
    error ZeroIdentityRegistry();
    error DecimalsOutOfRange(uint8 valueDecimals);
    error ValueOutOfRange(int128 value);
    error SelfFeedback(uint256 agentId, address caller);
    error NoSuchFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex);
    error FeedbackAlreadyRevoked(uint256 agentId, uint64 feedbackIndex);
    error EmptyResponseURI();
    error ClientListRequired();

    /// @dev Scores are bounded so that normalising to 18 decimals can never overflow int256.
    int128 private constant VALUE_LIMIT = 1e38;
    uint8 private constant MAX_DECIMALS = 18;

    struct Entry {
        int128 value;
        uint8 valueDecimals;
        bool isRevoked;
        string tag1;
        string tag2;
    }

    address private _identity;

    /// @dev Feedback of one client about one agent, 1-indexed: index 0 is never used.
    mapping(uint256 agentId => mapping(address client => Entry[])) private _entries;
    mapping(uint256 agentId => address[]) private _clientList;
    mapping(uint256 agentId => mapping(address client => bool)) private _isClient;
    /// @dev Responses per (agent, client, feedback index, responder), plus the responders seen.
    mapping(bytes32 feedbackKey => mapping(address responder => uint64)) private _responseTally;
    mapping(bytes32 feedbackKey => address[]) private _responderList;

    /// @notice Binds this registry to its identity registry. Callable once, by anyone: whoever
    ///         installs the code calls it in the same breath.
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

    // ---------------------------------------------------------------- writes

    /// @notice Records feedback from the caller about `agentId`. `endpoint`, `feedbackURI` and
    ///         `feedbackHash` are only emitted; value, decimals, tags and revocation are stored.
    function giveFeedback(
        uint256 agentId,
        int128 value,
        uint8 valueDecimals,
        string memory tag1,
        string memory tag2,
        string memory endpoint,
        string memory feedbackURI,
        bytes32 feedbackHash
    ) external {
        // (memory rather than calldata strings: eight calldata arguments leave no stack room)
        if (valueDecimals > MAX_DECIMALS) revert DecimalsOutOfRange(valueDecimals);
        if (value > VALUE_LIMIT || value < -VALUE_LIMIT) revert ValueOutOfRange(value);
        _refuseSelfFeedback(agentId);
        uint64 feedbackIndex = _store(agentId, Entry(value, valueDecimals, false, tag1, tag2));
        emit NewFeedback(
            agentId, msg.sender, feedbackIndex, value, valueDecimals, tag1, tag1, tag2, endpoint, feedbackURI, feedbackHash
        );
    }

    /// @notice Marks the caller's own feedback `feedbackIndex` about `agentId` as revoked.
    function revokeFeedback(uint256 agentId, uint64 feedbackIndex) external {
        Entry storage entry = _existing(agentId, msg.sender, feedbackIndex);
        if (entry.isRevoked) revert FeedbackAlreadyRevoked(agentId, feedbackIndex);
        entry.isRevoked = true;
        emit FeedbackRevoked(agentId, msg.sender, feedbackIndex);
    }

    /// @notice Attaches a response (a refund note, a rebuttal, a spam flag...) to existing feedback.
    function appendResponse(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        string calldata responseURI,
        bytes32 responseHash
    ) external {
        if (bytes(responseURI).length == 0) revert EmptyResponseURI();
        _existing(agentId, clientAddress, feedbackIndex);
        bytes32 key = _feedbackKey(agentId, clientAddress, feedbackIndex);
        if (_responseTally[key][msg.sender] == 0) _responderList[key].push(msg.sender);
        _responseTally[key][msg.sender] += 1;
        emit ResponseAppended(agentId, clientAddress, feedbackIndex, msg.sender, responseURI, responseHash);
    }

    // ---------------------------------------------------------------- reads

    function getLastIndex(uint256 agentId, address clientAddress) public view returns (uint64) {
        uint256 n = _entries[agentId][clientAddress].length;
        return n == 0 ? 0 : uint64(n - 1);
    }

    function getClients(uint256 agentId) external view returns (address[] memory) {
        return _clientList[agentId];
    }

    function readFeedback(uint256 agentId, address clientAddress, uint64 feedbackIndex)
        external
        view
        returns (int128 value, uint8 valueDecimals, string memory tag1, string memory tag2, bool isRevoked)
    {
        Entry storage e = _existing(agentId, clientAddress, feedbackIndex);
        return (e.value, e.valueDecimals, e.tag1, e.tag2, e.isRevoked);
    }

    /// @notice Average of the non-revoked feedback from `clientAddresses` matching the tags (an empty
    ///         tag matches anything). The average is taken at 18 decimals, then expressed with the
    ///         decimals most of the counted feedback used (ties: the fewer decimals). The client list
    ///         is mandatory: an unfiltered average over every address would reward Sybil spam.
    function getSummary(uint256 agentId, address[] calldata clientAddresses, string calldata tag1, string calldata tag2)
        external
        view
        returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals)
    {
        if (clientAddresses.length == 0) revert ClientListRequired();
        return _summarize(agentId, clientAddresses, _filter(tag1, tag2));
    }

    /// @notice Every feedback entry from `clientAddresses` (all clients when empty) that matches the
    ///         tags, flattened into parallel arrays; revoked entries only when `includeRevoked`.
    function readAllFeedback(
        uint256 agentId,
        address[] memory clientAddresses,
        string memory tag1,
        string memory tag2,
        bool includeRevoked
    )
        external
        view
        returns (
            address[] memory clients,
            uint64[] memory feedbackIndexes,
            int128[] memory values,
            uint8[] memory valueDecimals,
            string[] memory tag1s,
            string[] memory tag2s,
            bool[] memory revokedStatuses
        )
    {
        // (memory arguments, and the work in _collect: seven return arrays leave little stack room)
        Rows memory rows = _collect(agentId, _clientsOrAll(agentId, clientAddresses), _filter(tag1, tag2), includeRevoked);
        return (rows.clients, rows.indexes, rows.values, rows.decimals, rows.tag1s, rows.tag2s, rows.revoked);
    }

    /// @notice Number of responses to feedback. `clientAddress` zero: every client's feedback about
    ///         the agent; `feedbackIndex` zero: every feedback of that client. `responders` empty
    ///         counts every responder, otherwise only the listed ones.
    function getResponseCount(
        uint256 agentId,
        address clientAddress,
        uint64 feedbackIndex,
        address[] calldata responders
    ) external view returns (uint64 count) {
        if (clientAddress == address(0)) {
            address[] storage everyone = _clientList[agentId];
            for (uint256 c = 0; c < everyone.length; ++c) count += _responsesOfClient(agentId, everyone[c], responders);
        } else if (feedbackIndex == 0) {
            count = _responsesOfClient(agentId, clientAddress, responders);
        } else {
            count = _responsesTo(_feedbackKey(agentId, clientAddress, feedbackIndex), responders);
        }
    }

    // ---------------------------------------------------------------- internals

    struct TagFilter {
        bool anyTag1;
        bool anyTag2;
        bytes32 tag1Hash;
        bytes32 tag2Hash;
    }

    struct Rows {
        address[] clients;
        uint64[] indexes;
        int128[] values;
        uint8[] decimals;
        string[] tag1s;
        string[] tag2s;
        bool[] revoked;
    }

    /// @dev Owners and operators may not rate their own agent; an unknown agent reverts in the identity registry.
    function _refuseSelfFeedback(uint256 agentId) private view {
        address identity = _identity;
        if (identity == address(0)) revert NotInitialized();
        if (IAgentManagers(identity).isAuthorizedOrOwner(msg.sender, agentId)) revert SelfFeedback(agentId, msg.sender);
    }

    /// @dev Appends the caller's entry (creating the unused slot 0 first) and returns its index.
    function _store(uint256 agentId, Entry memory entry) private returns (uint64 feedbackIndex) {
        Entry[] storage list = _entries[agentId][msg.sender];
        if (list.length == 0) list.push();
        list.push(entry);
        feedbackIndex = uint64(list.length - 1);
        if (!_isClient[agentId][msg.sender]) {
            _isClient[agentId][msg.sender] = true;
            _clientList[agentId].push(msg.sender);
        }
    }

    function _summarize(uint256 agentId, address[] calldata clients, TagFilter memory f)
        private
        view
        returns (uint64 count, int128 summaryValue, uint8 summaryValueDecimals)
    {
        int256 total;
        uint64[19] memory perDecimals;
        for (uint256 c = 0; c < clients.length; ++c) {
            (int256 clientTotal, uint64 clientCount) = _tallyClient(agentId, clients[c], f, perDecimals);
            total += clientTotal;
            count += clientCount;
        }
        if (count == 0) return (0, 0, 0);
        uint64 best;
        for (uint8 d = 0; d <= MAX_DECIMALS; ++d) {
            if (perDecimals[d] > best) {
                best = perDecimals[d];
                summaryValueDecimals = d;
            }
        }
        int256 mean = total / int256(uint256(count));
        summaryValue = int128(mean / int256(10 ** uint256(MAX_DECIMALS - summaryValueDecimals)));
    }

    /// @dev Sum (at 18 decimals) and count of one client's live, tag-matching feedback; also tallies
    ///      how many of them used each number of decimals.
    function _tallyClient(uint256 agentId, address client, TagFilter memory f, uint64[19] memory perDecimals)
        private
        view
        returns (int256 total, uint64 count)
    {
        Entry[] storage list = _entries[agentId][client];
        for (uint256 i = 1; i < list.length; ++i) {
            Entry storage e = list[i];
            if (e.isRevoked || !_matches(f, e)) continue;
            total += int256(e.value) * int256(10 ** uint256(MAX_DECIMALS - e.valueDecimals));
            perDecimals[e.valueDecimals] += 1;
            count += 1;
        }
    }

    /// @dev The given client list, or every client the agent has when it is empty.
    function _clientsOrAll(uint256 agentId, address[] memory given) private view returns (address[] memory) {
        return given.length == 0 ? _clientList[agentId] : given;
    }

    function _filter(string memory tag1, string memory tag2) private pure returns (TagFilter memory f) {
        f.anyTag1 = bytes(tag1).length == 0;
        f.anyTag2 = bytes(tag2).length == 0;
        f.tag1Hash = keccak256(bytes(tag1));
        f.tag2Hash = keccak256(bytes(tag2));
    }

    function _matches(TagFilter memory f, Entry storage e) private view returns (bool) {
        if (!f.anyTag1 && keccak256(bytes(e.tag1)) != f.tag1Hash) return false;
        if (!f.anyTag2 && keccak256(bytes(e.tag2)) != f.tag2Hash) return false;
        return true;
    }

    function _selected(Entry storage e, TagFilter memory f, bool includeRevoked) private view returns (bool) {
        return (includeRevoked || !e.isRevoked) && _matches(f, e);
    }

    function _collect(uint256 agentId, address[] memory who, TagFilter memory f, bool includeRevoked)
        private
        view
        returns (Rows memory rows)
    {
        uint256 n;
        for (uint256 c = 0; c < who.length; ++c) {
            Entry[] storage list = _entries[agentId][who[c]];
            for (uint256 i = 1; i < list.length; ++i) if (_selected(list[i], f, includeRevoked)) ++n;
        }
        rows.clients = new address[](n);
        rows.indexes = new uint64[](n);
        rows.values = new int128[](n);
        rows.decimals = new uint8[](n);
        rows.tag1s = new string[](n);
        rows.tag2s = new string[](n);
        rows.revoked = new bool[](n);
        uint256 at;
        for (uint256 c = 0; c < who.length; ++c) {
            Entry[] storage list = _entries[agentId][who[c]];
            for (uint256 i = 1; i < list.length; ++i) {
                Entry storage e = list[i];
                if (!_selected(e, f, includeRevoked)) continue;
                rows.clients[at] = who[c];
                rows.indexes[at] = uint64(i);
                rows.values[at] = e.value;
                rows.decimals[at] = e.valueDecimals;
                rows.tag1s[at] = e.tag1;
                rows.tag2s[at] = e.tag2;
                rows.revoked[at] = e.isRevoked;
                ++at;
            }
        }
    }

    function _existing(uint256 agentId, address client, uint64 feedbackIndex) private view returns (Entry storage) {
        Entry[] storage list = _entries[agentId][client];
        if (feedbackIndex == 0 || feedbackIndex >= list.length) revert NoSuchFeedback(agentId, client, feedbackIndex);
        return list[feedbackIndex];
    }

    function _feedbackKey(uint256 agentId, address client, uint64 feedbackIndex) private pure returns (bytes32) {
        return keccak256(abi.encode(agentId, client, feedbackIndex));
    }

    function _responsesOfClient(uint256 agentId, address client, address[] calldata responders)
        private
        view
        returns (uint64 count)
    {
        uint64 last = getLastIndex(agentId, client);
        for (uint64 i = 1; i <= last; ++i) count += _responsesTo(_feedbackKey(agentId, client, i), responders);
    }

    function _responsesTo(bytes32 key, address[] calldata responders) private view returns (uint64 count) {
        if (responders.length == 0) {
            address[] storage seen = _responderList[key];
            for (uint256 r = 0; r < seen.length; ++r) count += _responseTally[key][seen[r]];
        } else {
            for (uint256 r = 0; r < responders.length; ++r) count += _responseTally[key][responders[r]];
        }
    }
}
