// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Timelock
/// @notice The owner of every Verinfer contract in a production deployment. The admin schedules
/// a call (target, value, data); anyone executes it once `delay` has passed; the admin or the
/// guardian may cancel it before. The delay is fixed at deployment and must exceed the stake
/// bridge's unbonding delay (checked by `deploy.rs` and visible on chain), so a staker who sees a
/// hostile call scheduled (a rogue dispute game, a new sequencer, a price or SKU change) can
/// unbond and withdraw before it takes effect. The guardian can only cancel and, on the bridge,
/// pause payouts, deregister a game and revert a slash inside its payout delay: it can neither
/// schedule nor execute anything, so it cannot move funds. Admin and guardian changes go through
/// the timelock itself (`setAdmin`/`setGuardian` callable only by this contract).
contract Timelock {
    error NotAdmin(address caller);
    error NotSelf(address caller);
    error NotAdminOrGuardian(address caller);
    error AlreadyScheduled(bytes32 id);
    error NotScheduled(bytes32 id);
    error NotReady(bytes32 id, uint256 readyAt);
    error CallFailed(bytes32 id, bytes reason);
    error DelayTooShort(uint256 delay);

    event Scheduled(bytes32 indexed id, address indexed target, uint256 value, bytes data, uint256 readyAt);
    event Executed(bytes32 indexed id, address indexed target, uint256 value, bytes data);
    event Cancelled(bytes32 indexed id, address by);
    event AdminChanged(address admin);
    event GuardianChanged(address guardian);

    /// @notice Seconds between scheduling and the earliest execution.
    uint256 public immutable delay;
    address public admin;
    address public guardian;
    /// @notice Operation id => earliest execution time (0: not scheduled).
    mapping(bytes32 => uint256) public readyAt;

    /// @param admin_ Who schedules (a multisig in production).
    /// @param guardian_ Who may cancel (a separate security council).
    /// @param delay_ Seconds; at least one hour (a zero delay would be no timelock at all).
    constructor(address admin_, address guardian_, uint256 delay_) {
        if (delay_ < 1 hours) revert DelayTooShort(delay_);
        admin = admin_;
        guardian = guardian_;
        delay = delay_;
        emit AdminChanged(admin_);
        emit GuardianChanged(guardian_);
    }

    /// @notice The id of a call.
    /// @param target Contract called.
    /// @param value Wei sent.
    /// @param data Calldata.
    /// @param salt Distinguishes otherwise identical calls.
    /// @return The operation id.
    function operationId(address target, uint256 value, bytes calldata data, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(target, value, data, salt));
    }

    /// @notice Schedules a call (admin only); it can run `delay` seconds from now.
    /// @param target Contract called.
    /// @param value Wei sent.
    /// @param data Calldata.
    /// @param salt Distinguishes otherwise identical calls.
    /// @return id The operation id.
    function schedule(address target, uint256 value, bytes calldata data, bytes32 salt) external returns (bytes32 id) {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        id = operationId(target, value, data, salt);
        if (readyAt[id] != 0) revert AlreadyScheduled(id);
        uint256 at = block.timestamp + delay;
        readyAt[id] = at;
        emit Scheduled(id, target, value, data, at);
    }

    /// @notice Runs a scheduled call whose delay has passed (anyone).
    /// @param target Contract called.
    /// @param value Wei sent (from this contract's balance or msg.value).
    /// @param data Calldata.
    /// @param salt As scheduled.
    /// @return result The call's return data.
    function execute(address target, uint256 value, bytes calldata data, bytes32 salt)
        external
        payable
        returns (bytes memory result)
    {
        bytes32 id = operationId(target, value, data, salt);
        uint256 at = readyAt[id];
        if (at == 0) revert NotScheduled(id);
        if (block.timestamp < at) revert NotReady(id, at);
        delete readyAt[id];
        emit Executed(id, target, value, data);
        bool ok;
        (ok, result) = target.call{value: value}(data);
        if (!ok) revert CallFailed(id, result);
    }

    /// @notice Cancels a scheduled call (admin or guardian).
    /// @param id The operation id.
    function cancel(bytes32 id) external {
        if (msg.sender != admin && msg.sender != guardian) revert NotAdminOrGuardian(msg.sender);
        if (readyAt[id] == 0) revert NotScheduled(id);
        delete readyAt[id];
        emit Cancelled(id, msg.sender);
    }

    /// @notice Replaces the admin (only through a scheduled call to this contract).
    /// @param admin_ The new admin.
    function setAdmin(address admin_) external {
        if (msg.sender != address(this)) revert NotSelf(msg.sender);
        admin = admin_;
        emit AdminChanged(admin_);
    }

    /// @notice Replaces the guardian (only through a scheduled call to this contract).
    /// @param guardian_ The new guardian.
    function setGuardian(address guardian_) external {
        if (msg.sender != address(this)) revert NotSelf(msg.sender);
        guardian = guardian_;
        emit GuardianChanged(guardian_);
    }
}
