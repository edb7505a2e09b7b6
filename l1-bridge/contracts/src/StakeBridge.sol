// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned} from "./Types.sol";

/// @notice What the bridge needs from the fee sink.
interface IFeeSink {
    /// @notice Receives finalized fees for the current epoch.
    function depositFees() external payable;
}

/// @notice What the bridge asks of a dispute game when it is registered.
interface IGameLimits {
    /// @notice The longest a game can run, in seconds (both chess clocks spent).
    function maxDuration() external view returns (uint256);
}

/// @notice What the bridge asks of the batch inbox when it is wired.
interface IWindow {
    /// @notice Seconds after posting during which a batch can be challenged.
    function challengeWindow() external view returns (uint64);
}

/// @title StakeBridge
/// @notice ETH on the L1 side of the rollup: worker/verifier stake (bonded, unbonding with a delay
/// longer than any challenge window plus any dispute, slashable until withdrawn), the SKUs each
/// worker serves, and buyer escrow (charged by the batch inbox, withdrawable after a delay).
/// Slashing is reserved to registered dispute games. Every wei is accounted for:
/// `totalStakeDeposited == totalStaked + totalUnbonding + totalStakeWithdrawn + totalSlashPaid
/// + totalBurned`, and burned ether stays locked here forever. Slash rewards are pulled
/// (`claimSlashReward`), so resolving a game never calls out, and they are delayed the way OP's
/// DelayedWETH delays bonds: a reward unlocks `payoutDelay` after its latest credit, and until a
/// slash's delay is over the guardian or the owner can revert it (the taken stake goes back to
/// the slashed account's unbonding balance, the burn and the reward are undone). The guardian
/// can also pause reward payouts and deregister a game; it can move no funds anywhere but back
/// to the account they were slashed from. Stake and escrow exits are never paused.
contract StakeBridge is Owned {
    /// @notice Role bit of a worker (runs shards, posts receipts).
    uint8 public constant ROLE_WORKER = 1;
    /// @notice Role bit of a verifier (audits, challenges).
    uint8 public constant ROLE_VERIFIER = 2;
    uint256 internal constant BPS = 10_000;

    /// @notice One staker. Two slots.
    struct Account {
        uint128 stake;
        uint128 pending;
        uint64 unlockAt;
        uint64 joinedAt;
        uint8 roles;
        uint8 strikes;
        bool removed;
    }

    /// @notice One buyer's escrow. Two slots.
    struct Escrow {
        uint128 balance;
        uint128 pending;
        uint64 unlockAt;
    }

    error ZeroAmount();
    error InvalidRoles(uint8 roles);
    error BelowMinStake(uint256 stake, uint256 minStake);
    error AccountRemoved(address account);
    error NotWorker(address account);
    error InsufficientStake(uint256 available, uint256 requested);
    error StillLocked(uint64 unlockAt);
    error NothingPending();
    error InsufficientEscrow(address buyer, uint256 available, uint256 requested);
    error InsufficientHeldFees(uint256 held, uint256 requested);
    error NotInbox(address caller);
    error NotGame(address caller);
    error ModulesAlreadySet();
    error ModulesNotSet();
    error UnbondingTooShort(uint256 unbondingDelay, uint256 needed);
    error BadBps(uint256 bps);
    error TransferFailed(address to, uint256 amount);
    error NotGuardian(address caller);
    error Paused();
    error UnknownSlash(uint256 slashId);
    error SlashFinal(uint256 slashId, uint256 deadline);
    error SlashAlreadyReverted(uint256 slashId);
    error BadConfig();

    /// @notice One slash, kept so that it can be reverted during the payout delay. Three slots.
    struct SlashRecord {
        address who;
        uint64 at;
        bool reverted;
        address beneficiary;
        uint128 paid;
        uint128 burned;
    }

    event StakeDeposited(address indexed account, uint256 amount, uint8 roles);
    event RolesChanged(address indexed account, uint8 roles);
    event SkuServed(address indexed account, bytes32 indexed skuId, bool serving);
    event UnbondRequested(address indexed account, uint256 amount, uint64 unlockAt);
    event StakeWithdrawn(address indexed account, uint256 amount);
    event Slashed(address indexed account, uint256 taken, address indexed beneficiary, uint256 paid, uint256 burned);
    event SlashRewardClaimed(address indexed beneficiary, uint256 amount);
    event Struck(address indexed account, uint8 strikes);
    event AccountRemovedEvent(address indexed account);
    event EscrowDeposited(address indexed buyer, uint256 amount);
    event EscrowWithdrawalRequested(address indexed buyer, uint256 amount, uint64 unlockAt);
    event EscrowWithdrawn(address indexed buyer, uint256 amount);
    event Charged(address indexed buyer, uint256 amount);
    event Refunded(address indexed buyer, uint256 amount);
    event FeesReleased(address indexed sink, uint256 amount);
    event ModulesSet(address inbox, address feeSink);
    event GameRegistered(address indexed game);
    event GameDeregistered(address indexed game, address by);
    event GuardianChanged(address guardian);
    event PausedChanged(bool paused, address by);
    /// @notice Slash `slashId` (index into the slash log) was taken; revertible until `deadline`.
    event SlashRecorded(uint256 indexed slashId, address indexed who, uint256 deadline);
    event SlashReverted(uint256 indexed slashId, address indexed who, uint256 restored, address by);

    uint64 public immutable unbondingDelay;
    uint64 public immutable escrowDelay;
    uint128 public immutable minStake;
    uint8 public immutable maxStrikes;
    /// @notice Seconds a slash reward waits before it can be claimed (and a slash can be reverted).
    uint64 public immutable payoutDelay;

    /// @notice May pause reward payouts, deregister a game and revert a slash inside its delay.
    address public guardian;
    bool public paused;
    SlashRecord[] internal slashLog;
    /// @notice When the caller's slash rewards become claimable (reset by every new credit).
    mapping(address => uint64) public rewardUnlockAt;

    address public inbox;
    address public feeSink;
    mapping(address => bool) public isGame;
    /// @notice Games the guardian or owner deregistered: their calls take nothing but succeed.
    mapping(address => bool) public retired;

    mapping(address => Account) internal accounts;
    mapping(address => mapping(bytes32 => bool)) public serves;
    mapping(address => Escrow) internal escrows;

    uint256 public totalStakeDeposited;
    uint256 public totalStakeWithdrawn;
    uint256 public totalStaked;
    uint256 public totalUnbonding;
    uint256 public totalSlashPaid;
    uint256 public totalSlashClaimed;
    mapping(address => uint256) public rewardOwed;
    uint256 public totalBurned;
    uint256 public totalEscrow;
    uint256 public heldFees;

    constructor(
        address owner_,
        uint64 unbondingDelay_,
        uint64 escrowDelay_,
        uint128 minStake_,
        uint8 maxStrikes_,
        uint64 payoutDelay_
    ) Owned(owner_) {
        if (maxStrikes_ == 0) revert BadConfig();
        unbondingDelay = unbondingDelay_;
        escrowDelay = escrowDelay_;
        minStake = minStake_;
        maxStrikes = maxStrikes_;
        payoutDelay = payoutDelay_;
    }

    modifier onlyGuardianOrOwner() {
        if (msg.sender != guardian && msg.sender != owner) revert NotGuardian(msg.sender);
        _;
    }

    modifier onlyInbox() {
        if (msg.sender != inbox || inbox == address(0)) revert NotInbox(msg.sender);
        _;
    }

    modifier onlyGame() {
        if (!isGame[msg.sender] && !retired[msg.sender]) revert NotGame(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ wiring (owner, once)

    /// @notice Wires the batch inbox (charges escrow) and the fee sink (rewards). Once only.
    /// @param inbox_ The batch inbox.
    /// @param feeSink_ The contract finalized fees go to.
    function setModules(address inbox_, address feeSink_) external onlyOwner {
        if (inbox != address(0)) revert ModulesAlreadySet();
        inbox = inbox_;
        feeSink = feeSink_;
        emit ModulesSet(inbox_, feeSink_);
    }

    /// @notice Lets `game` slash. The unbonding delay must outlast the challenge window plus the
    /// game's longest run, so that no stake leaves while a claim against it can still be made.
    /// @param game The dispute game contract.
    function registerGame(address game) external onlyOwner {
        if (inbox == address(0)) revert ModulesNotSet();
        uint256 needed = uint256(IWindow(inbox).challengeWindow()) + IGameLimits(game).maxDuration();
        if (unbondingDelay <= needed) revert UnbondingTooShort(unbondingDelay, needed);
        isGame[game] = true;
        retired[game] = false;
        emit GameRegistered(game);
    }

    /// @notice Stops `game` from slashing (guardian or owner): the way out of a rogue or broken
    /// game. Re-registering goes through the owner (a timelock in production).
    /// @param game The dispute game.
    /// Its games still resolve: its `slash` and `strike` calls become no-ops instead of
    /// reverting, so deregistering never freezes a dispute or a batch's finalization.
    function deregisterGame(address game) external onlyGuardianOrOwner {
        if (!isGame[game]) revert NotGame(game);
        isGame[game] = false;
        retired[game] = true;
        emit GameDeregistered(game, msg.sender);
    }

    /// @notice Sets the guardian (owner only).
    /// @param guardian_ The new guardian (zero: none).
    function setGuardian(address guardian_) external onlyOwner {
        guardian = guardian_;
        emit GuardianChanged(guardian_);
    }

    /// @notice Pauses or resumes slash reward payouts (guardian or owner). Nothing else pauses:
    /// stakers and buyers can always leave, games always resolve.
    /// @param paused_ True to pause.
    function setPaused(bool paused_) external onlyGuardianOrOwner {
        paused = paused_;
        emit PausedChanged(paused_, msg.sender);
    }

    // ------------------------------------------------------------------ stake

    /// @notice Adds `msg.value` to the caller's stake and sets its roles.
    /// @param roles Bitmask of ROLE_WORKER / ROLE_VERIFIER (non-zero).
    function depositStake(uint8 roles) external payable {
        if (msg.value == 0) revert ZeroAmount();
        if (roles == 0 || roles > (ROLE_WORKER | ROLE_VERIFIER)) revert InvalidRoles(roles);
        Account storage a = accounts[msg.sender];
        if (a.removed) revert AccountRemoved(msg.sender);
        uint256 stake = a.stake + msg.value;
        if (stake < minStake) revert BelowMinStake(stake, minStake);
        a.stake = uint128(stake);
        a.roles = roles;
        if (a.joinedAt == 0) a.joinedAt = uint64(block.timestamp);
        totalStakeDeposited += msg.value;
        totalStaked += msg.value;
        emit StakeDeposited(msg.sender, msg.value, roles);
    }

    /// @notice Changes the caller's roles.
    /// @param roles Bitmask of ROLE_WORKER / ROLE_VERIFIER (non-zero).
    function setRoles(uint8 roles) external {
        if (roles == 0 || roles > (ROLE_WORKER | ROLE_VERIFIER)) revert InvalidRoles(roles);
        Account storage a = accounts[msg.sender];
        if (a.removed) revert AccountRemoved(msg.sender);
        if (a.stake == 0) revert InsufficientStake(0, minStake);
        a.roles = roles;
        emit RolesChanged(msg.sender, roles);
    }

    /// @notice Declares whether the caller (a worker) serves `skuId`.
    /// @param skuId The SKU.
    /// @param serving True to serve it, false to stop.
    function setSku(bytes32 skuId, bool serving) external {
        Account storage a = accounts[msg.sender];
        if (a.roles & ROLE_WORKER == 0 || a.removed) revert NotWorker(msg.sender);
        serves[msg.sender][skuId] = serving;
        emit SkuServed(msg.sender, skuId, serving);
    }

    /// @notice Starts unbonding `amount` of the caller's stake; the whole pending amount unlocks
    /// `unbondingDelay` after the latest request and stays slashable until then.
    /// @param amount Wei to unbond.
    function requestUnbond(uint128 amount) external {
        if (amount == 0) revert ZeroAmount();
        Account storage a = accounts[msg.sender];
        if (amount > a.stake) revert InsufficientStake(a.stake, amount);
        a.stake -= amount;
        a.pending += amount;
        a.unlockAt = uint64(block.timestamp) + unbondingDelay;
        totalStaked -= amount;
        totalUnbonding += amount;
        emit UnbondRequested(msg.sender, amount, a.unlockAt);
    }

    /// @notice Pays out the caller's unbonded stake once its delay has passed.
    function withdrawStake() external {
        Account storage a = accounts[msg.sender];
        uint256 amount = a.pending;
        if (amount == 0) revert NothingPending();
        if (block.timestamp < a.unlockAt) revert StillLocked(a.unlockAt);
        a.pending = 0;
        totalUnbonding -= amount;
        totalStakeWithdrawn += amount;
        emit StakeWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ slashing (games only)

    /// @notice Takes `bps` of `account`'s bonded plus unbonding stake (bonded first), pays
    /// `rewardBps` of what was taken to `beneficiary` and burns the rest.
    /// @param who The slashed staker.
    /// @param bps Share of its stake to take, in basis points.
    /// @param beneficiary Who receives the reward share (the game's winner).
    /// @param rewardBps Share of the taken amount paid to `beneficiary`, in basis points.
    /// @return taken Wei taken from the account.
    function slash(address who, uint256 bps, address beneficiary, uint256 rewardBps)
        external
        onlyGame
        returns (uint256 taken)
    {
        if (retired[msg.sender]) return 0;
        if (bps > BPS) revert BadBps(bps);
        if (rewardBps > BPS) revert BadBps(rewardBps);
        Account storage a = accounts[who];
        uint256 total = uint256(a.stake) + a.pending;
        taken = total * bps / BPS;
        uint256 fromStake = taken <= a.stake ? taken : a.stake;
        uint256 fromPending = taken - fromStake;
        a.stake -= uint128(fromStake);
        a.pending -= uint128(fromPending);
        totalStaked -= fromStake;
        totalUnbonding -= fromPending;
        uint256 paid = taken * rewardBps / BPS;
        uint256 burned = taken - paid;
        totalSlashPaid += paid;
        totalBurned += burned;
        // Pull payment: resolution never depends on the beneficiary accepting ether.
        rewardOwed[beneficiary] += paid;
        rewardUnlockAt[beneficiary] = uint64(block.timestamp) + payoutDelay;
        uint256 id = slashLog.length;
        slashLog.push(
            SlashRecord({
                who: who,
                at: uint64(block.timestamp),
                reverted: false,
                beneficiary: beneficiary,
                paid: uint128(paid),
                burned: uint128(burned)
            })
        );
        emit Slashed(who, taken, beneficiary, paid, burned);
        emit SlashRecorded(id, who, block.timestamp + payoutDelay);
    }

    /// @notice Undoes slash `slashId` while its payout delay runs (guardian or owner): the taken
    /// stake goes back to the account's unbonding balance (withdrawable `unbondingDelay` later), the
    /// reward is taken back from the beneficiary's unclaimed balance and the burn is undone.
    /// @param slashId Index in the slash log (`SlashRecorded`).
    function revertSlash(uint256 slashId) external onlyGuardianOrOwner {
        if (slashId >= slashLog.length) revert UnknownSlash(slashId);
        SlashRecord storage r = slashLog[slashId];
        if (r.reverted) revert SlashAlreadyReverted(slashId);
        uint256 deadline = uint256(r.at) + payoutDelay;
        if (block.timestamp >= deadline) revert SlashFinal(slashId, deadline);
        r.reverted = true;
        uint256 restored = uint256(r.paid) + r.burned;
        // INVARIANT: the reward is still unclaimed: every credit pushes the beneficiary's unlock
        // to at least this slash's deadline, which has not passed.
        rewardOwed[r.beneficiary] -= r.paid;
        totalSlashPaid -= r.paid;
        totalBurned -= r.burned;
        Account storage a = accounts[r.who];
        a.pending += uint128(restored);
        // Restored stake unbonds like any other: it stays slashable by the other games for the
        // usual delay, so a reverted slash never lets a real cheat leave early.
        uint64 unlock = uint64(block.timestamp) + unbondingDelay;
        if (a.unlockAt < unlock) a.unlockAt = unlock;
        totalUnbonding += restored;
        emit SlashReverted(slashId, r.who, restored, msg.sender);
    }

    /// @notice Slash `slashId` of the log.
    /// @param slashId Its index.
    /// @return The record.
    function slashRecord(uint256 slashId) external view returns (SlashRecord memory) {
        if (slashId >= slashLog.length) revert UnknownSlash(slashId);
        return slashLog[slashId];
    }

    /// @notice Number of slashes recorded.
    /// @return The count.
    function slashCount() external view returns (uint256) {
        return slashLog.length;
    }

    /// @notice Pays the caller the slash rewards it has won, once their delay is over and
    /// payouts are not paused.
    function claimSlashReward() external {
        if (paused) revert Paused();
        uint256 amount = rewardOwed[msg.sender];
        if (amount == 0) revert NothingPending();
        if (block.timestamp < rewardUnlockAt[msg.sender]) revert StillLocked(rewardUnlockAt[msg.sender]);
        rewardOwed[msg.sender] = 0;
        totalSlashClaimed += amount;
        emit SlashRewardClaimed(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Records a lost dispute against `account`; at `maxStrikes` the account is removed:
    /// roles cleared, all stake moved to unbonding (still slashable until it unlocks).
    /// @param who The staker who lost.
    /// Never reverts: a removed account is no longer counted and the counter saturates, so a
    /// game against a much-struck worker always resolves.
    function strike(address who) external onlyGame {
        if (retired[msg.sender]) return;
        Account storage a = accounts[who];
        if (a.removed) return;
        // INVARIANT: strikes < maxStrikes <= 255 here (removal happens at maxStrikes), so the
        // increment cannot overflow; the check keeps that true whatever maxStrikes is.
        if (a.strikes < type(uint8).max) a.strikes += 1;
        emit Struck(who, a.strikes);
        if (a.strikes >= maxStrikes) {
            a.removed = true;
            a.roles = 0;
            uint128 s = a.stake;
            a.stake = 0;
            a.pending += s;
            a.unlockAt = uint64(block.timestamp) + unbondingDelay;
            totalStaked -= s;
            totalUnbonding += s;
            emit AccountRemovedEvent(who);
        }
    }

    // ------------------------------------------------------------------ buyer escrow

    /// @notice Adds `msg.value` to the caller's escrow.
    function depositEscrow() external payable {
        if (msg.value == 0) revert ZeroAmount();
        escrows[msg.sender].balance += uint128(msg.value);
        totalEscrow += msg.value;
        emit EscrowDeposited(msg.sender, msg.value);
    }

    /// @notice Moves `amount` of the caller's escrow out of reach of new charges; it can be
    /// withdrawn `escrowDelay` later (the delay lets the sequencer see it before taking jobs).
    /// @param amount Wei to withdraw.
    function requestEscrowWithdrawal(uint128 amount) external {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = escrows[msg.sender];
        if (amount > e.balance) revert InsufficientEscrow(msg.sender, e.balance, amount);
        e.balance -= amount;
        e.pending += amount;
        e.unlockAt = uint64(block.timestamp) + escrowDelay;
        emit EscrowWithdrawalRequested(msg.sender, amount, e.unlockAt);
    }

    /// @notice Pays out the caller's requested escrow withdrawal once its delay has passed.
    function withdrawEscrow() external {
        Escrow storage e = escrows[msg.sender];
        uint256 amount = e.pending;
        if (amount == 0) revert NothingPending();
        if (block.timestamp < e.unlockAt) revert StillLocked(e.unlockAt);
        e.pending = 0;
        totalEscrow -= amount;
        emit EscrowWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Charges `amount` from `buyer`'s escrow into the held fees (inbox only).
    /// @param buyer The buyer.
    /// @param amount Wei.
    function charge(address buyer, uint256 amount) external onlyInbox {
        Escrow storage e = escrows[buyer];
        if (amount > e.balance) revert InsufficientEscrow(buyer, e.balance, amount);
        e.balance -= uint128(amount);
        totalEscrow -= amount;
        heldFees += amount;
        emit Charged(buyer, amount);
    }

    /// @notice Returns `amount` of held fees to `buyer`'s escrow (inbox only; fraudulent receipts).
    /// @param buyer The buyer.
    /// @param amount Wei.
    function refund(address buyer, uint256 amount) external onlyInbox {
        if (amount > heldFees) revert InsufficientHeldFees(heldFees, amount);
        heldFees -= amount;
        escrows[buyer].balance += uint128(amount);
        totalEscrow += amount;
        emit Refunded(buyer, amount);
    }

    /// @notice Sends `amount` of held fees to the fee sink (inbox only; finalized receipts).
    /// @param amount Wei.
    function releaseFees(uint256 amount) external onlyInbox {
        if (amount > heldFees) revert InsufficientHeldFees(heldFees, amount);
        heldFees -= amount;
        emit FeesReleased(feeSink, amount);
        if (amount != 0) IFeeSink(feeSink).depositFees{value: amount}();
    }

    // ------------------------------------------------------------------ views

    /// @notice The account of `who`.
    /// @param who The staker.
    /// @return The stored account.
    function account(address who) external view returns (Account memory) {
        return accounts[who];
    }

    /// @notice The escrow of `buyer`.
    /// @param buyer The buyer.
    /// @return The stored escrow.
    function escrow(address buyer) external view returns (Escrow memory) {
        return escrows[buyer];
    }

    /// @notice Whether `who` may run shards of `skuId` now.
    /// @param who The worker.
    /// @param skuId The SKU.
    /// @return True for a non-removed worker at or above the minimum stake serving the SKU.
    function isWorkerFor(address who, bytes32 skuId) external view returns (bool) {
        Account storage a = accounts[who];
        return a.roles & ROLE_WORKER != 0 && !a.removed && a.stake >= minStake && a.stake != 0 && serves[who][skuId];
    }

    /// @notice A verifier's drawing weight in the audit protocol: its bonded stake while it holds
    /// the verifier role and is not removed (unbonding stake does not count).
    /// @param who The staker.
    /// @return Wei.
    function verifierWeight(address who) external view returns (uint256) {
        Account storage a = accounts[who];
        if (a.roles & ROLE_VERIFIER == 0 || a.removed) return 0;
        return a.stake;
    }

    /// @notice Strikes recorded against `who` (lost disputes).
    /// @param who The staker.
    /// @return The count.
    function strikesOf(address who) external view returns (uint8) {
        return accounts[who].strikes;
    }

    /// @notice Whether `who` is a non-removed staker holding `role`.
    /// @param who The staker.
    /// @param role ROLE_WORKER or ROLE_VERIFIER.
    /// @return True when it holds the role.
    function hasRole(address who, uint8 role) external view returns (bool) {
        Account storage a = accounts[who];
        return a.roles & role != 0 && !a.removed && a.stake != 0;
    }

    function _send(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
