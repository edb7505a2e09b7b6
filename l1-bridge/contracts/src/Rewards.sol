// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned} from "./Types.sol";

/// @title VerinferToken
/// @notice The inflation token (ERC20); only the Rewards contract mints.
contract VerinferToken {
    error NotMinter(address caller);
    error InsufficientBalance(address from, uint256 balance, uint256 amount);
    error InsufficientAllowance(address spender, uint256 allowance, uint256 amount);

    /// @notice ERC20 transfer (also mint, from the zero address).
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice ERC20 approval.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    string public constant name = "Verinfer";
    string public constant symbol = "VINF";
    uint8 public constant decimals = 18;
    address public immutable minter;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    constructor(address minter_) {
        minter = minter_;
    }

    /// @notice Mints `amount` to `to` (minter only).
    /// @param to Recipient.
    /// @param amount Token units.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice ERC20 transfer.
    /// @param to Recipient.
    /// @param amount Token units.
    /// @return Always true (failures revert).
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice ERC20 approve.
    /// @param spender Who may spend.
    /// @param amount Allowance.
    /// @return Always true.
    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    /// @notice ERC20 transferFrom.
    /// @param from Owner of the tokens.
    /// @param to Recipient.
    /// @param amount Token units.
    /// @return Always true (failures revert).
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 a = allowance[from][msg.sender];
        if (a != type(uint256).max) {
            if (a < amount) revert InsufficientAllowance(msg.sender, a, amount);
            allowance[from][msg.sender] = a - amount;
        }
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) internal {
        uint256 b = balanceOf[from];
        if (b < amount) revert InsufficientBalance(from, b, amount);
        balanceOf[from] = b - amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}

/// @notice The stake bridge facts the rewards contract reads.
interface IStakeView {
    /// @notice Whether `who` holds `role` and is not removed.
    function hasRole(address who, uint8 role) external view returns (bool);
}

/// @title Rewards
/// @notice Epoch accounting of the rollup's income. A finalized receipt credits its worker with
/// its verified tokens (the active-set measure) and with the fee its buyer paid (the split
/// weight) in the epoch it finalizes; that epoch's fees (ether released by the bridge) and its
/// inflation (newly minted VINF) are split pro rata to the fee weights and claimed after the
/// epoch ends. Weighing by fees, not tokens, keeps work on a cheap SKU from taking the fees paid
/// for an expensive one: each worker's fee share is exactly what its own receipts paid. A worker whose credits in the last closed epoch are below `minCredits` is outside the
/// active set (the sequencer assigns it no shards) unless it joined during that epoch or later.
contract Rewards is Owned {
    error NotInbox(address caller);
    error NotBridge(address caller);
    error InboxAlreadySet();
    error EpochNotOver(uint256 epoch, uint256 current);
    error AlreadyClaimed(uint256 epoch, address worker);
    error NoCredits(uint256 epoch, address worker);
    error TransferFailed(address to, uint256 amount);
    error NothingToRoll(uint256 epoch);

    event InboxSet(address inbox);
    event Credited(uint256 indexed epoch, address indexed worker, uint256 tokens, uint256 fee);
    event FeesDeposited(uint256 indexed epoch, uint256 amount);
    event Claimed(uint256 indexed epoch, address indexed worker, uint256 fees, uint256 minted);
    event Joined(address indexed worker, uint256 epoch);
    event RolledOver(uint256 indexed from, uint256 indexed to, uint256 amount);

    VerinferToken public immutable token;
    address public immutable bridge;
    uint64 public immutable genesis;
    uint64 public immutable epochLength;
    uint256 public immutable inflationPerEpoch;
    uint256 public immutable minCredits;
    address public inbox;

    mapping(uint256 => uint256) public feesOf;
    mapping(uint256 => uint256) public totalCredits;
    mapping(uint256 => mapping(address => uint256)) public credits;
    mapping(uint256 => mapping(address => bool)) public claimed;
    /// @notice epoch => worker => fees (wei) its finalized receipts paid: its split weight.
    mapping(uint256 => mapping(address => uint256)) public feeWeight;
    /// @notice epoch => sum of `feeWeight` (equals the epoch's fees released by the inbox).
    mapping(uint256 => uint256) public totalFeeWeight;
    /// @notice First epoch in which a worker was seen (grace period for the active set), plus 1.
    mapping(address => uint256) public joinedEpochPlusOne;

    constructor(address owner_, address bridge_, uint64 epochLength_, uint256 inflationPerEpoch_, uint256 minCredits_)
        Owned(owner_)
    {
        token = new VerinferToken(address(this));
        bridge = bridge_;
        genesis = uint64(block.timestamp);
        epochLength = epochLength_;
        inflationPerEpoch = inflationPerEpoch_;
        minCredits = minCredits_;
    }

    /// @notice Wires the batch inbox, the only caller of `addCredits`. Once only.
    /// @param inbox_ The batch inbox.
    function setInbox(address inbox_) external onlyOwner {
        if (inbox != address(0)) revert InboxAlreadySet();
        inbox = inbox_;
        emit InboxSet(inbox_);
    }

    /// @notice The epoch now.
    /// @return Zero-based epoch number.
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - genesis) / epochLength;
    }

    /// @notice Credits `worker` with `tokens` verified tokens and `fee` wei of buyer fees in the
    /// current epoch (inbox only).
    /// @param worker The worker of a finalized receipt.
    /// @param tokens Its processed tokens.
    /// @param fee What its buyer paid for it.
    function addCredits(address worker, uint256 tokens, uint256 fee) external {
        if (msg.sender != inbox) revert NotInbox(msg.sender);
        uint256 e = currentEpoch();
        credits[e][worker] += tokens;
        totalCredits[e] += tokens;
        feeWeight[e][worker] += fee;
        totalFeeWeight[e] += fee;
        emit Credited(e, worker, tokens, fee);
    }

    /// @notice Receives finalized fees into the current epoch's pot (bridge only).
    function depositFees() external payable {
        if (msg.sender != bridge) revert NotBridge(msg.sender);
        uint256 e = currentEpoch();
        feesOf[e] += msg.value;
        emit FeesDeposited(e, msg.value);
    }

    /// @notice Records the current epoch as the caller's first, which keeps a new worker in the
    /// active set until a full epoch has passed.
    function join() external {
        if (joinedEpochPlusOne[msg.sender] == 0) {
            uint256 e = currentEpoch();
            joinedEpochPlusOne[msg.sender] = e + 1;
            emit Joined(msg.sender, e);
        }
    }

    /// @notice Pays the caller its share of epoch `epoch`'s fees (ether) and inflation (minted
    /// VINF), pro rata to the fees its receipts paid.
    /// @param epoch A finished epoch in which the caller's receipts paid fees.
    function claim(uint256 epoch) external {
        uint256 cur = currentEpoch();
        if (epoch >= cur) revert EpochNotOver(epoch, cur);
        if (claimed[epoch][msg.sender]) revert AlreadyClaimed(epoch, msg.sender);
        uint256 w = feeWeight[epoch][msg.sender];
        if (w == 0) revert NoCredits(epoch, msg.sender);
        claimed[epoch][msg.sender] = true;
        uint256 total = totalFeeWeight[epoch];
        // INVARIANT: sum of payouts <= feesOf[epoch] (floor division, weights sum to total).
        uint256 fee = feesOf[epoch] * w / total;
        uint256 minted = inflationPerEpoch * w / total;
        emit Claimed(epoch, msg.sender, fee, minted);
        token.mint(msg.sender, minted);
        if (fee != 0) {
            (bool ok,) = msg.sender.call{value: fee}("");
            if (!ok) revert TransferFailed(msg.sender, fee);
        }
    }

    /// @notice Moves the fees of a finished epoch that nobody earned (with audits, a receipt
    /// that was not drawn earns no weight, so an epoch can hold fees and no weight) into the
    /// current epoch's pot (anyone): no wei stays unclaimable.
    /// @param epoch A finished epoch with fees and no weight.
    function rollover(uint256 epoch) external {
        uint256 cur = currentEpoch();
        if (epoch >= cur) revert EpochNotOver(epoch, cur);
        uint256 amount = feesOf[epoch];
        if (amount == 0 || totalFeeWeight[epoch] != 0) revert NothingToRoll(epoch);
        feesOf[epoch] = 0;
        feesOf[cur] += amount;
        emit RolledOver(epoch, cur, amount);
    }

    /// @notice Whether `worker` is in the active set: a non-removed worker with at least
    /// `minCredits` in the last finished epoch, or one that joined no earlier than that epoch.
    /// @param worker The worker.
    /// @return True when it may be assigned shards.
    function isActive(address worker) external view returns (bool) {
        if (!IStakeView(bridge).hasRole(worker, 1)) return false;
        uint256 cur = currentEpoch();
        uint256 j = joinedEpochPlusOne[worker];
        // j - 1 is the join epoch: joined in the last finished epoch or the current one.
        if (j != 0 && j >= cur) return true;
        if (cur == 0) return false;
        return credits[cur - 1][worker] >= minCredits;
    }
}
