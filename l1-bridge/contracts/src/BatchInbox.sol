// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned, Receipt, JobRequest, SignedJob} from "./Types.sol";
import {Merkle} from "./Merkle.sol";
import {IAuditsInbox, IInboxAudits} from "./interfaces/IAudits.sol";

/// @notice The SKU facts the inbox reads.
interface ISkuView {
    /// @notice Whether the SKU takes new jobs.
    function isActive(bytes32 skuId) external view returns (bool);
    /// @notice The SKU's price per token in wei.
    function priceOf(bytes32 skuId) external view returns (uint128);
}

/// @notice The bridge calls the inbox makes.
interface IBridgeInbox {
    function isWorkerFor(address who, bytes32 skuId) external view returns (bool);
    function charge(address buyer, uint256 amount) external;
    function refund(address buyer, uint256 amount) external;
    function releaseFees(uint256 amount) external;
}

/// @notice The rewards call the inbox makes.
interface IRewardsInbox {
    function addCredits(address worker, uint256 tokens, uint256 fee) external;
}

/// @title BatchInbox
/// @notice Where the sequencer posts batches. A batch carries the buyers' signed job requests with
/// their inputs and the workers' signed receipts as calldata (data availability); on chain it
/// keeps a header (the Merkle root over the receipts' ABI encodings, the count, the time) and a
/// running accumulator over every batch. Buyers are charged from escrow when a receipt of their
/// job is posted (tokens × the price fixed when the job was first posted, capped by the job's
/// max price). Each batch can be challenged for `challengeWindow` seconds; afterwards, with no
/// dispute open, anyone finalizes it: valid receipts credit their workers and release their
/// fees, receipts proven fraudulent are refunded.
contract BatchInbox is Owned, IInboxAudits {
    /// @notice One posted batch. Two slots. `finalizedCount` receipts (a prefix) are settled;
    /// the batch is `finalized` when all of them are.
    struct Batch {
        bytes32 receiptsRoot;
        uint64 postedAt;
        uint64 postBlock;
        uint32 receiptCount;
        uint32 openDisputes;
        bool finalized;
        uint32 finalizedCount;
    }

    /// @notice One posted job. Four slots. `charged` is what the buyer pays now (fraudulent
    /// receipts' charges are taken off when refunded), `refunded` the total refunded and `frauds`
    /// how many of its receipts were proven fraudulent.
    struct Job {
        address buyer;
        uint96 charged;
        uint128 pricePerToken;
        uint128 maxPrice;
        bytes32 skuId;
        uint96 refunded;
        uint32 frauds;
    }

    error NotSequencer(address caller);
    error NotGame(address caller);
    error GameAlreadySet();
    error AuditsAlreadySet();
    error EmptyBatch();
    error TooManyReceipts(uint256 count, uint256 max);
    error LengthMismatch(uint256 receipts, uint256 signatures);
    error BadSignature();
    error WrongSigner(address expected, address got);
    error InputsMismatch(bytes32 jobId);
    error JobAlreadyPosted(bytes32 jobId);
    error UnknownJob(bytes32 jobId);
    error SkuInactive(bytes32 skuId);
    error SkuMismatch(bytes32 jobId, bytes32 receiptSku);
    error NotAWorker(address worker, bytes32 skuId);
    error OverMaxPrice(bytes32 jobId, uint256 charged, uint256 maxPrice);
    error UnknownBatch(uint256 batchId);
    error WindowClosed(uint256 batchId, uint256 deadline);
    error WindowOpen(uint256 batchId, uint256 deadline);
    error DisputesOpen(uint256 batchId, uint256 open);
    error AlreadyFinalized(uint256 batchId);
    error ReceiptsMismatch(uint256 batchId);
    error NoOpenDispute(uint256 batchId);
    error ShardAlreadyPosted(bytes32 jobId, uint32 shardIndex);
    error NotFraudulent(uint256 batchId, bytes32 receiptHash);
    error AlreadyRefunded(uint256 batchId, bytes32 receiptHash);
    error BadRange(uint256 batchId, uint256 start, uint256 cursor);
    error ReceiptProvenFraudulent(bytes32 receiptHash);
    error NotForced(bytes32 jobId);
    error ForcedNotDue(bytes32 jobId, uint256 deadline);

    event SequencerChanged(address sequencer);
    event GameSet(address game);
    event AuditsSet(address audits);
    event JobPosted(bytes32 indexed jobId, address indexed buyer, bytes32 indexed skuId, uint256 pricePerToken);
    event ReceiptPosted(
        uint256 indexed batchId, uint256 index, bytes32 indexed receiptHash, bytes32 indexed jobId, uint256 charge
    );
    event BatchPosted(uint256 indexed batchId, bytes32 receiptsRoot, uint256 receiptCount, bytes32 accumulator);
    event DisputeOpened(uint256 indexed batchId);
    event DisputeClosed(uint256 indexed batchId, bytes32 indexed receiptHash, bool fraud);
    /// @notice The last range of `batchId` settled; `credited`/`refunded` are that range's
    /// amounts (the whole batch's when it was finalized in one call; sum `RangeFinalized` otherwise).
    event BatchFinalized(uint256 indexed batchId, uint256 credited, uint256 refunded);
    /// @notice Receipts [start, end) of `batchId` were settled (fees credited, frauds refunded).
    event RangeFinalized(uint256 indexed batchId, uint256 start, uint256 end, uint256 credited, uint256 refunded);
    /// @notice A job was registered on L1 by its buyer; after `deadline` anyone may post its receipts.
    event JobForced(bytes32 indexed jobId, address indexed buyer, uint256 deadline);
    /// @notice A game proved receipt `receiptHash` of batch `batchId` fraudulent.
    event FraudProven(uint256 indexed batchId, bytes32 indexed receiptHash);
    /// @notice The charge of a fraudulent receipt went back to its buyer's escrow; the job's
    /// `charged` dropped by `amount` and its shard may be posted again (re-run).
    event FraudRefunded(
        uint256 indexed batchId,
        bytes32 indexed receiptHash,
        bytes32 indexed jobId,
        uint32 shardIndex,
        address buyer,
        uint256 amount
    );

    /// @notice EIP-712 type of a job request.
    bytes32 public constant JOB_TYPEHASH = keccak256(
        "JobRequest(address buyer,bytes32 skuId,bytes32 inputsHash,uint64 maxNewTokens,uint256 maxPrice,uint64 nonce)"
    );
    /// @notice EIP-712 type of a receipt (the worker signs it).
    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(bytes32 jobId,uint32 shardIndex,bytes32 skuId,address worker,bytes32 inputRoot,bytes32 outputRoot,bytes32 traceRoot,uint64 stepCount,uint64 tokensProcessed)"
    );
    /// @notice Most receipts per batch. EIP-7825 caps a transaction at 2^24 gas; the worst
    /// `postBatch` (each receipt from its own worker, for its own new job of its own buyer, with
    /// a 77-byte prompt) costs about 142k gas per receipt with its calldata
    /// (`test_gas_postBatchWorstCaseFitsTxCap`), so 112 receipts stay under 2^24 with about 5%
    /// to spare. Longer prompts cost 16 gas per calldata byte more: the sequencer sizes batches
    /// by a gas budget below this cap (docs/SECURITY.md, attack 5).
    uint256 public constant MAX_RECEIPTS = 112;
    /// @notice Most new jobs per batch (each costs a signature check and four fresh slots).
    uint256 public constant MAX_NEW_JOBS = 112;
    /// @notice Seconds the sequencer has to serve a forced job before anyone may post its
    /// receipts (Arbitrum's delayed inbox uses 24 hours).
    uint256 public constant FORCE_INCLUSION_DELAY = 1 days;
    /// @notice EIP-7825's per-transaction gas cap, for reference by off-chain batchers.
    uint256 public constant TX_GAS_CAP = 1 << 24;
    /// @notice fraudState value: proven fraudulent, charge not refunded yet.
    uint8 internal constant FRAUD = 1;
    /// @notice fraudState value: proven fraudulent and refunded.
    uint8 internal constant REFUNDED = 2;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev The domain separator for the chain id the contract was deployed on; recomputed on
    /// any other chain id (a fork), so a signature for one chain never verifies on the other.
    bytes32 internal immutable CACHED_DOMAIN_SEPARATOR;
    uint256 internal immutable CACHED_CHAIN_ID;
    ISkuView public immutable skus;
    IBridgeInbox public immutable bridge;
    IRewardsInbox public immutable rewards;
    uint64 public immutable challengeWindow;

    address public sequencer;
    address public game;
    /// @notice The audit protocol; while unset (tests of the inbox alone) every valid receipt
    /// earns its fee at finalization.
    IAuditsInbox public audits;
    bytes32 public accumulator;
    Batch[] internal batches;
    mapping(bytes32 => Job) internal jobs;
    /// @notice keccak256(batchId, receiptHash) => 0 none, 1 proven fraudulent, 2 refunded.
    mapping(bytes32 => uint8) public fraudState;
    /// @notice jobId => word (shardIndex / 256) => bitmap of shards with a live receipt. A shard
    /// is posted once; a fraud refund clears its bit so the shard can be re-run.
    mapping(bytes32 => mapping(uint256 => uint256)) internal shardBits;
    /// @notice receiptHash => proven fraudulent in some batch; such a receipt is never posted again.
    mapping(bytes32 => bool) public provenFraud;
    /// @notice jobId => when it was forced on L1 by `forceJob` (0: came through the sequencer).
    mapping(bytes32 => uint64) public forcedAt;

    constructor(
        address owner_,
        address sequencer_,
        ISkuView skus_,
        IBridgeInbox bridge_,
        IRewardsInbox rewards_,
        uint64 challengeWindow_
    ) Owned(owner_) {
        sequencer = sequencer_;
        skus = skus_;
        bridge = bridge_;
        rewards = rewards_;
        challengeWindow = challengeWindow_;
        CACHED_CHAIN_ID = block.chainid;
        CACHED_DOMAIN_SEPARATOR = _buildDomainSeparator();
        emit SequencerChanged(sequencer_);
    }

    /// @notice The EIP-712 domain separator for the current chain id.
    /// @return The separator (recomputed when the chain id is not the deployment's).
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        if (block.chainid == CACHED_CHAIN_ID) return CACHED_DOMAIN_SEPARATOR;
        return _buildDomainSeparator();
    }

    function _buildDomainSeparator() internal view returns (bytes32) {
        return
            keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("Verinfer"), keccak256("1"), block.chainid, address(this)));
    }

    // ------------------------------------------------------------------ admin

    /// @notice Replaces the sequencer.
    /// @param sequencer_ The new sequencer.
    function setSequencer(address sequencer_) external onlyOwner {
        sequencer = sequencer_;
        emit SequencerChanged(sequencer_);
    }

    /// @notice Wires the dispute game. Once only.
    /// @param game_ The dispute game.
    function setGame(address game_) external onlyOwner {
        if (game != address(0)) revert GameAlreadySet();
        game = game_;
        emit GameSet(game_);
    }

    /// @notice Wires the audit protocol. Once only.
    /// @param audits_ The audits contract.
    function setAudits(address audits_) external onlyOwner {
        if (address(audits) != address(0)) revert AuditsAlreadySet();
        audits = IAuditsInbox(audits_);
        emit AuditsSet(audits_);
    }

    // ------------------------------------------------------------------ posting

    /// @notice Posts a batch (sequencer only): registers the new jobs (signature, inputs, SKU),
    /// checks every receipt (its worker's signature and stake, its job, one live receipt per
    /// shard), charges the buyers, and stores the header.
    /// @param newJobs Jobs first seen in this batch, with their signatures and inputs.
    /// @param receipts Receipts of jobs posted in this or an earlier batch.
    /// @param receiptSigs The workers' EIP-712 signatures of `receipts`, same order.
    /// @return batchId The new batch's id.
    function postBatch(SignedJob[] calldata newJobs, Receipt[] calldata receipts, bytes[] calldata receiptSigs)
        external
        returns (uint256 batchId)
    {
        if (msg.sender != sequencer) revert NotSequencer(msg.sender);
        if (newJobs.length > MAX_NEW_JOBS) revert TooManyReceipts(newJobs.length, MAX_NEW_JOBS);
        batchId = batches.length;
        bytes32 jobsAcc;
        for (uint256 i = 0; i < newJobs.length; ++i) {
            bytes32 jobId = _postJob(newJobs[i]);
            jobsAcc = keccak256(abi.encode(jobsAcc, jobId));
        }
        _postReceipts(batchId, receipts, receiptSigs, jobsAcc, false);
    }

    // ------------------------------------------------------------------ forced inclusion

    /// @notice Registers a buyer-signed job directly on L1 (anyone may send it; the buyer's
    /// signature is what counts), bypassing the sequencer. The sequencer should serve it; if no
    /// receipt of it is posted within FORCE_INCLUSION_DELAY, anyone may post its receipts with
    /// `postForced` (a staked worker's signed receipt, charged and disputable as usual).
    /// @param sj The signed job with its inputs.
    /// @return jobId The job's id.
    function forceJob(SignedJob calldata sj) external returns (bytes32 jobId) {
        jobId = jobDigest(sj.request);
        if (jobs[jobId].buyer == address(0)) {
            _postJob(sj);
        } else {
            // A sequencer that front-runs this call by posting the job itself (and then never
            // serving it) does not escape the deadline: the job is marked forced all the same.
            address signer = _recover(jobId, sj.signature);
            if (signer != sj.request.buyer) revert WrongSigner(sj.request.buyer, signer);
            if (forcedAt[jobId] != 0) revert JobAlreadyPosted(jobId);
        }
        forcedAt[jobId] = uint64(block.timestamp);
        emit JobForced(jobId, sj.request.buyer, block.timestamp + FORCE_INCLUSION_DELAY);
    }

    /// @notice Posts a batch of receipts of forced jobs whose inclusion deadline has passed
    /// (anyone): the way around a sequencer that censors a buyer or a worker. Same checks,
    /// charges, challenge window and finalization as a sequencer batch.
    /// @param receipts Receipts, each of a forced job past its deadline.
    /// @param receiptSigs The workers' signatures, same order.
    /// @return batchId The new batch's id.
    function postForced(Receipt[] calldata receipts, bytes[] calldata receiptSigs) external returns (uint256 batchId) {
        batchId = batches.length;
        _postReceipts(batchId, receipts, receiptSigs, bytes32(0), true);
    }

    /// @dev Checks, charges and commits `receipts` as batch `batchId`; with `forced`, each must
    /// belong to a forced job past its inclusion deadline.
    function _postReceipts(
        uint256 batchId,
        Receipt[] calldata receipts,
        bytes[] calldata receiptSigs,
        bytes32 jobsAcc,
        bool forced
    ) internal {
        uint256 n = receipts.length;
        if (n == 0) revert EmptyBatch();
        if (n > MAX_RECEIPTS) revert TooManyReceipts(n, MAX_RECEIPTS);
        if (receiptSigs.length != n) revert LengthMismatch(n, receiptSigs.length);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            Receipt calldata r = receipts[i];
            if (forced) _checkForced(r.jobId);
            leaves[i] = _postReceipt(batchId, i, r, receiptSigs[i]);
        }
        bytes32 root = _root(leaves);
        batches.push(
            Batch({
                receiptsRoot: root,
                postedAt: uint64(block.timestamp),
                postBlock: uint64(block.number),
                receiptCount: uint32(n),
                openDisputes: 0,
                finalized: false,
                finalizedCount: 0
            })
        );
        accumulator = keccak256(abi.encode(accumulator, batchId, root, jobsAcc));
        emit BatchPosted(batchId, root, n, accumulator);
    }

    function _checkForced(bytes32 jobId) internal view {
        uint256 at = forcedAt[jobId];
        if (at == 0) revert NotForced(jobId);
        if (block.timestamp < at + FORCE_INCLUSION_DELAY) revert ForcedNotDue(jobId, at + FORCE_INCLUSION_DELAY);
    }

    /// @dev Checks and charges one receipt; returns its leaf.
    function _postReceipt(uint256 batchId, uint256 i, Receipt calldata r, bytes calldata sig)
        internal
        returns (bytes32 leaf)
    {
        address signer = _recover(receiptDigest(r), sig);
        if (signer != r.worker) revert WrongSigner(r.worker, signer);
        if (!bridge.isWorkerFor(r.worker, r.skuId)) revert NotAWorker(r.worker, r.skuId);
        Job storage job = jobs[r.jobId];
        if (job.buyer == address(0)) revert UnknownJob(r.jobId);
        if (job.skuId != r.skuId) revert SkuMismatch(r.jobId, r.skuId);
        _claimShard(r.jobId, r.shardIndex);
        uint256 cost = uint256(r.tokensProcessed) * job.pricePerToken;
        uint256 charged = job.charged + cost;
        // INVARIANT: a job never costs its buyer more than the max price it signed.
        if (charged > job.maxPrice) revert OverMaxPrice(r.jobId, charged, job.maxPrice);
        job.charged = uint96(charged);
        if (cost != 0) bridge.charge(job.buyer, cost);
        bytes memory enc = abi.encode(r);
        bytes32 receiptHash = keccak256(enc);
        if (provenFraud[receiptHash]) revert ReceiptProvenFraudulent(receiptHash);
        leaf = Merkle.leafHashMem(enc);
        emit ReceiptPosted(batchId, i, receiptHash, r.jobId, cost);
    }

    function _postJob(SignedJob calldata sj) internal returns (bytes32 jobId) {
        JobRequest calldata q = sj.request;
        jobId = jobDigest(q);
        if (_recover(jobId, sj.signature) != q.buyer) revert WrongSigner(q.buyer, _recover(jobId, sj.signature));
        if (keccak256(sj.inputs) != q.inputsHash) revert InputsMismatch(jobId);
        if (jobs[jobId].buyer != address(0)) revert JobAlreadyPosted(jobId);
        if (!skus.isActive(q.skuId)) revert SkuInactive(q.skuId);
        uint128 price = skus.priceOf(q.skuId);
        uint256 cap = q.maxPrice;
        // The charged field is 96 bits wide (≈ 7.9e10 ether): a larger cap is the same as no cap.
        if (cap > type(uint96).max) cap = type(uint96).max;
        jobs[jobId] = Job({
            buyer: q.buyer,
            charged: 0,
            pricePerToken: price,
            maxPrice: uint128(cap),
            skuId: q.skuId,
            refunded: 0,
            frauds: 0
        });
        emit JobPosted(jobId, q.buyer, q.skuId, price);
    }

    /// @dev Marks shard `shardIndex` of `jobId` posted; a second live receipt for the same shard
    /// (in this batch or any earlier one) would charge the buyer twice and is refused.
    function _claimShard(bytes32 jobId, uint32 shardIndex) internal {
        mapping(uint256 => uint256) storage words = shardBits[jobId];
        uint256 bit = uint256(1) << (shardIndex & 0xff);
        uint256 w = words[shardIndex >> 8];
        // INVARIANT: at most one charged, unrefunded receipt per (jobId, shardIndex).
        if (w & bit != 0) revert ShardAlreadyPosted(jobId, shardIndex);
        words[shardIndex >> 8] = w | bit;
    }

    /// @notice Whether shard `shardIndex` of `jobId` has a live (posted, not refunded) receipt.
    /// @param jobId The job.
    /// @param shardIndex The shard.
    /// @return True when a receipt for it is posted and not refunded as fraud.
    function shardPosted(bytes32 jobId, uint32 shardIndex) external view returns (bool) {
        return shardBits[jobId][shardIndex >> 8] & (uint256(1) << (shardIndex & 0xff)) != 0;
    }

    // ------------------------------------------------------------------ disputes (game only)

    /// @notice Checks that `receipt` is leaf `index` of batch `batchId` and returns its hash.
    /// @param batchId The batch.
    /// @param receipt The receipt.
    /// @param index Its position in the batch.
    /// @param proof Merkle siblings of its leaf.
    /// @return receiptHash keccak256(abi.encode(receipt)).
    function verifyReceipt(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof)
        public
        view
        returns (bytes32 receiptHash)
    {
        Batch storage b = _batch(batchId);
        bytes memory enc = abi.encode(receipt);
        bytes32 got = Merkle.rootOfSized(Merkle.leafHashMem(enc), index, proof, b.receiptCount);
        if (got != b.receiptsRoot) revert ReceiptsMismatch(batchId);
        receiptHash = keccak256(enc);
    }

    /// @notice Registers a dispute on `batchId` (game only); the batch cannot finalize until it
    /// is closed. Only inside the challenge window.
    /// @param batchId The batch.
    function onDisputeOpened(uint256 batchId) external {
        if (msg.sender != game || game == address(0)) revert NotGame(msg.sender);
        Batch storage b = _batch(batchId);
        uint256 deadline = uint256(b.postedAt) + challengeWindow;
        if (block.timestamp >= deadline) revert WindowClosed(batchId, deadline);
        b.openDisputes += 1;
        emit DisputeOpened(batchId);
    }

    /// @notice Closes a dispute on `batchId` (game only), marking the receipt fraudulent when the
    /// challenger won.
    /// @param batchId The batch.
    /// @param receiptHash The disputed receipt.
    /// @param fraud Whether the receipt was proven wrong.
    function onDisputeClosed(uint256 batchId, bytes32 receiptHash, bool fraud) external {
        if (msg.sender != game || game == address(0)) revert NotGame(msg.sender);
        Batch storage b = _batch(batchId);
        if (b.openDisputes == 0) revert NoOpenDispute(batchId);
        b.openDisputes -= 1;
        if (fraud) _markFraud(batchId, receiptHash);
        emit DisputeClosed(batchId, receiptHash, fraud);
    }

    /// @notice Marks receipt `receiptHash` of batch `batchId` fraudulent (game only). Idempotent:
    /// several games may prove the same receipt wrong. Does not close a dispute. The charge goes
    /// back to the buyer through `refundFraud` (anyone, at once) or at finalization.
    /// @param batchId The batch.
    /// @param receiptHash The receipt proven wrong.
    function onFraudProven(uint256 batchId, bytes32 receiptHash) external {
        if (msg.sender != game || game == address(0)) revert NotGame(msg.sender);
        Batch storage b = _batch(batchId);
        // A finalized batch has paid its receipts out; no game can be open on it (disputes
        // only open inside the window and block finalization), so this is a game bug.
        if (b.finalized) revert AlreadyFinalized(batchId);
        _markFraud(batchId, receiptHash);
    }

    function _markFraud(uint256 batchId, bytes32 receiptHash) internal {
        bytes32 key = keccak256(abi.encode(batchId, receiptHash));
        if (fraudState[key] != 0) return;
        fraudState[key] = FRAUD;
        provenFraud[receiptHash] = true;
        emit FraudProven(batchId, receiptHash);
    }

    /// @notice Whether receipt `receiptHash` of batch `batchId` was proven fraudulent.
    /// @param batchId The batch.
    /// @param receiptHash The receipt.
    /// @return True once a game proved it wrong (refunded or not).
    function fraudulent(uint256 batchId, bytes32 receiptHash) external view returns (bool) {
        return fraudState[keccak256(abi.encode(batchId, receiptHash))] != 0;
    }

    /// @notice Refunds a receipt proven fraudulent into its buyer's escrow now (anyone may call):
    /// the job's `charged` drops by the receipt's charge and its shard may be posted again.
    /// @param batchId The batch.
    /// @param receipt The fraudulent receipt.
    /// @param index Its position in the batch.
    /// @param proof Merkle siblings of its leaf.
    function refundFraud(uint256 batchId, Receipt calldata receipt, uint256 index, bytes32[] calldata proof) external {
        bytes32 receiptHash = verifyReceipt(batchId, receipt, index, proof);
        bytes32 key = keccak256(abi.encode(batchId, receiptHash));
        uint8 st = fraudState[key];
        if (st == 0) revert NotFraudulent(batchId, receiptHash);
        if (st == REFUNDED) revert AlreadyRefunded(batchId, receiptHash);
        uint256 cost = _refund(batchId, receiptHash, key, receipt);
        if (cost != 0) bridge.refund(jobs[receipt.jobId].buyer, cost);
    }

    /// @dev Books the refund of a fraudulent receipt (state, job, shard bit, event) and returns
    /// the amount; the caller moves the ether.
    function _refund(uint256 batchId, bytes32 receiptHash, bytes32 key, Receipt calldata r)
        internal
        returns (uint256 cost)
    {
        fraudState[key] = REFUNDED;
        Job storage job = jobs[r.jobId];
        cost = uint256(r.tokensProcessed) * job.pricePerToken;
        // INVARIANT: a refund never exceeds what this receipt added to `charged` at posting.
        job.charged -= uint96(cost);
        job.refunded += uint96(cost);
        job.frauds += 1;
        shardBits[r.jobId][r.shardIndex >> 8] &= ~(uint256(1) << (r.shardIndex & 0xff));
        emit FraudRefunded(batchId, receiptHash, r.jobId, r.shardIndex, job.buyer, cost);
    }

    // ------------------------------------------------------------------ finalization

    /// @notice Finalizes a whole batch in one transaction (`finalizeRange` over every receipt
    /// with an empty proof); it fits the gas cap for any batch of at most MAX_RECEIPTS.
    /// @param batchId The batch.
    /// @param receipts All of its receipts, in posting order.
    function finalizeBatch(uint256 batchId, Receipt[] calldata receipts) external {
        Batch storage b = _batch(batchId);
        if (receipts.length != b.receiptCount) revert ReceiptsMismatch(batchId);
        _finalizeRange(batchId, b, 0, Merkle.depthFor(b.receiptCount), receipts, new bytes32[](0));
    }

    /// @notice Settles receipts [start, start + 2^level) of a batch (clipped to its count) after
    /// its window with no open dispute: credits the workers of valid receipts, releases their
    /// fees, refunds fraudulent ones not refunded yet. Ranges go in order (`start` must be the
    /// batch's `finalizedCount`) and are aligned subtrees of the receipts tree, so the caller
    /// picks a size that fits one transaction and proves the range with `depth − level`
    /// siblings. Anyone may call.
    /// @param batchId The batch.
    /// @param start First receipt of the range (a multiple of 2^level).
    /// @param level log2 of the range size (at most the tree depth).
    /// @param receipts The range's receipts, in posting order.
    /// @param proof Siblings of the range's subtree root, from its level up.
    function finalizeRange(
        uint256 batchId,
        uint256 start,
        uint256 level,
        Receipt[] calldata receipts,
        bytes32[] calldata proof
    ) external {
        _finalizeRange(batchId, _batch(batchId), start, level, receipts, proof);
    }

    function _finalizeRange(
        uint256 batchId,
        Batch storage b,
        uint256 start,
        uint256 level,
        Receipt[] calldata receipts,
        bytes32[] memory proof
    ) internal {
        if (b.finalized) revert AlreadyFinalized(batchId);
        uint256 deadline = uint256(b.postedAt) + challengeWindow;
        if (block.timestamp < deadline) revert WindowOpen(batchId, deadline);
        if (b.openDisputes != 0) revert DisputesOpen(batchId, b.openDisputes);
        uint256 count = b.receiptCount;
        uint256 depth = Merkle.depthFor(count);
        if (start != b.finalizedCount || level > depth || start % (uint256(1) << level) != 0) {
            revert BadRange(batchId, start, b.finalizedCount);
        }
        uint256 size = uint256(1) << level;
        uint256 end = start + size < count ? start + size : count;
        if (receipts.length != end - start || proof.length != depth - level) revert ReceiptsMismatch(batchId);
        bytes32[] memory hashes = _checkRange(b.receiptsRoot, batchId, start >> level, size, receipts, proof);
        b.finalizedCount = uint32(end);
        if (end == count) b.finalized = true;
        (uint256 fees, uint256 refunded) = _settle(batchId, start, receipts, hashes);
        bridge.releaseFees(fees);
        emit RangeFinalized(batchId, start, end, fees, refunded);
        if (end == count) emit BatchFinalized(batchId, fees, refunded);
    }

    /// @dev Checks that `receipts` (padded with zero leaves to `size`) form subtree `sub` of the
    /// batch's receipts tree; returns their hashes.
    function _checkRange(
        bytes32 root,
        uint256 batchId,
        uint256 sub,
        uint256 size,
        Receipt[] calldata receipts,
        bytes32[] memory proof
    ) internal pure returns (bytes32[] memory hashes) {
        uint256 n = receipts.length;
        bytes32[] memory leaves = new bytes32[](size);
        hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            bytes memory enc = abi.encode(receipts[i]);
            leaves[i] = Merkle.leafHashMem(enc);
            hashes[i] = keccak256(enc);
        }
        bytes32 h = _root(leaves);
        for (uint256 i = 0; i < proof.length; ++i) {
            h = (sub >> i) & 1 == 0 ? Merkle.node(h, proof[i]) : Merkle.node(proof[i], h);
        }
        if (h != root) revert ReceiptsMismatch(batchId);
    }

    /// @dev Credits valid receipts (through the audit protocol when wired) and refunds
    /// fraudulent ones not refunded yet; returns the fees to release and the amount refunded.
    function _settle(uint256 batchId, uint256 start, Receipt[] calldata receipts, bytes32[] memory hashes)
        internal
        returns (uint256 fees, uint256 refunded)
    {
        for (uint256 i = 0; i < receipts.length; ++i) {
            Receipt calldata r = receipts[i];
            bytes32 key = keccak256(abi.encode(batchId, hashes[i]));
            uint8 st = fraudState[key];
            if (st == FRAUD) {
                uint256 cost = _refund(batchId, hashes[i], key, r);
                refunded += cost;
                if (cost != 0) bridge.refund(jobs[r.jobId].buyer, cost);
            }
            uint256 fee = st == 0 ? uint256(r.tokensProcessed) * jobs[r.jobId].pricePerToken : 0;
            fees += fee;
            _credit(batchId, start + i, hashes[i], r, fee, st != 0);
        }
    }

    /// @dev Credits one settled receipt: its fee as the worker's weight without audits; with
    /// them, whatever the audit protocol says it earned (verified tokens, fee ÷ draw probability,
    /// the verifier's cut).
    function _credit(uint256 batchId, uint256 index, bytes32 receiptHash, Receipt calldata r, uint256 fee, bool fraud)
        internal
    {
        if (address(audits) == address(0)) {
            if (!fraud) rewards.addCredits(r.worker, r.tokensProcessed, fee);
            return;
        }
        (uint256 weight, uint256 tokens, address verifier, uint256 verifierWeight) =
            audits.settle(batchId, index, receiptHash, r, fee, fraud);
        if (weight != 0) rewards.addCredits(r.worker, tokens, weight);
        if (verifierWeight != 0) rewards.addCredits(verifier, 0, verifierWeight);
    }

    // ------------------------------------------------------------------ views

    /// @notice EIP-712 digest of a job request: the job's id, which the buyer signs.
    /// @param q The request.
    /// @return The digest.
    function jobDigest(JobRequest calldata q) public view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(JOB_TYPEHASH, q.buyer, q.skuId, q.inputsHash, q.maxNewTokens, q.maxPrice, q.nonce));
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
    }

    /// @notice EIP-712 digest of a receipt, which its worker signs.
    /// @param r The receipt.
    /// @return The digest.
    function receiptDigest(Receipt calldata r) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(RECEIPT_TYPEHASH, r));
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
    }

    /// @notice Number of batches posted.
    /// @return The count.
    function batchCount() external view returns (uint256) {
        return batches.length;
    }

    /// @notice The header of batch `batchId`.
    /// @param batchId The batch.
    /// @return The stored header.
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        return _batch(batchId);
    }

    /// @notice The posted job `jobId` (zero buyer when unknown).
    /// @param jobId The job.
    /// @return The stored job.
    function getJob(bytes32 jobId) external view returns (Job memory) {
        return jobs[jobId];
    }

    /// @notice The facts of batch `batchId` the audit protocol reads.
    /// @param batchId The batch.
    /// @return receiptsRoot Its receipts root.
    /// @return receiptCount Its receipt count.
    /// @return postBlock The block it was posted in.
    /// @return postedAt When.
    function batchFacts(uint256 batchId)
        external
        view
        returns (bytes32 receiptsRoot, uint256 receiptCount, uint256 postBlock, uint256 postedAt)
    {
        Batch storage b = _batch(batchId);
        return (b.receiptsRoot, b.receiptCount, b.postBlock, b.postedAt);
    }

    /// @notice The time until which batch `batchId` can be challenged.
    /// @param batchId The batch.
    /// @return Unix seconds.
    function challengeDeadline(uint256 batchId) external view returns (uint256) {
        return uint256(_batch(batchId).postedAt) + challengeWindow;
    }

    function _batch(uint256 batchId) internal view returns (Batch storage) {
        if (batchId >= batches.length) revert UnknownBatch(batchId);
        return batches[batchId];
    }

    /// @dev Merkle root over leaf hashes (zero-leaf padding), in place.
    function _root(bytes32[] memory level) internal pure returns (bytes32) {
        return Merkle.rootOfLeaves(level);
    }

    /// @dev ecrecover of a 65-byte r ‖ s ‖ v signature; rejects malleable (high-s) ones.
    function _recover(bytes32 digest, bytes calldata sig) internal pure returns (address signer) {
        if (sig.length != 65) revert BadSignature();
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (v < 27) v += 27;
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0 || (v != 27 && v != 28)) {
            revert BadSignature();
        }
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature();
    }
}
