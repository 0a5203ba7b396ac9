import Foundation
import MixtralKernels

/// Tensor parallelism that never cuts a dot product. Rank r of N holds (`Share`: contiguous
/// ranges that differ by at most one head or row when N does not divide evenly)
/// - q/k/v: the rows of its key/value heads (about numKeyValueHeads/N) and of the query heads
///   that attend with them (GQA), so attention needs nothing from the other ranks and each
///   rank keeps its own KV cache;
/// - o_proj: its rows of the hidden size, whole (every head's columns);
/// - each expert's (a dense MLP's) gate and up: its rows of the intermediate dimension;
///   down: its rows of the hidden size, whole;
/// - lm_head and the embedding: the rows of its share of the vocabulary;
/// - norms and routers: whole (replicated).
/// Where Megatron-LM splits o_proj and down by columns and adds the ranks' partial sums, here
/// the inputs of o_proj and down (the attention output, the SwiGLU activations) are
/// all-gathered and each rank computes whole dot products for its rows; another all-gather
/// sets the rows side by side. Every number is then computed by one rank exactly as one
/// process computes it: the logits are the single process's bits under every precision
/// (a changed summation order would be amplified by `fast`'s 8-bit activations). It
/// exchanges more bytes than partial sums (the intermediate activations are wider than
/// the hidden state) in four all-gathers per layer instead of two all-reduces.
///
/// Every slice is copied into memory the rank owns (`TensorParallelSlices`) and the file's
/// pages it came from are dropped, so a rank's resident memory is its share of the model,
/// whatever granularity the kernel maps file pages with (recent kernels map a whole large
/// page-cache folio, up to 2 MB, on one touch, which would keep the other ranks' rows).
public enum TensorParallel {
    /// Whether `config` splits over `size` ranks, each taking at least one key/value head;
    /// the reason when it does not.
    static func check(_ config: ModelConfig, size: Int) -> String? {
        guard size >= 1 else { return "the number of ranks must be at least 1" }
        if size > config.numKeyValueHeads {
            return "\(config.numKeyValueHeads) key/value heads do not split over \(size) ranks (each rank needs one; at most \(config.numKeyValueHeads) ranks)"
        }
        if size > config.intermediateSize || size > config.hiddenSize || size > config.vocabSize {
            return "the model is too small to split over \(size) ranks"
        }
        return nil
    }

    /// `count` things over `size` ranks: rank `rank`'s contiguous range (shares differ by at
    /// most one).
    public static func range(_ count: Int, rank: Int, size: Int) -> Range<Int> {
        (count * rank / size)..<(count * (rank + 1) / size)
    }

    /// What rank `rank` of `size` computes: contiguous ranges of key/value heads (with their
    /// query heads), of the intermediate dimension, of the hidden size (o_proj's and down's
    /// rows) and of the vocabulary. Any number of ranks up to the key/value heads works
    /// (3 key/value heads over 2 ranks: 2 and 1).
    struct Share: Sendable {
        var keyValueHeads: Range<Int>
        var heads: Range<Int>
        var intermediate: Range<Int>
        var hidden: Range<Int>
        var vocabulary: Range<Int>

        init(_ config: ModelConfig, rank: Int, size: Int) {
            keyValueHeads = TensorParallel.range(config.numKeyValueHeads, rank: rank, size: size)
            let group = config.numHeads / config.numKeyValueHeads
            heads = (keyValueHeads.lowerBound * group)..<(keyValueHeads.upperBound * group)
            intermediate = TensorParallel.range(config.intermediateSize, rank: rank, size: size)
            hidden = TensorParallel.range(config.hiddenSize, rank: rank, size: size)
            vocabulary = TensorParallel.range(config.vocabSize, rank: rank, size: size)
        }

        /// The shape this share's attention and feed-forwards compute (the residual stream
        /// stays whole). `headDim` is stored, not derived, so it stays the model's.
        func config(_ config: ModelConfig) -> ModelConfig {
            var local = config
            local.numHeads = heads.count
            local.numKeyValueHeads = keyValueHeads.count
            local.intermediateSize = intermediate.count
            return local
        }
    }

    /// Every rank's share, in rank order.
    static func shares(_ config: ModelConfig, size: Int) -> [Share] {
        (0..<size).map { Share(config, rank: $0, size: size) }
    }

    /// `weights` cut to rank `rank` of `size` (see the type's comment), copied into the
    /// returned storage. Throws when the model does not split so (more ranks than key/value
    /// heads). `dropSourcePages` runs after each copy (`WeightStore.dropMappedPages`), so
    /// that at no time does the rank hold much more than its share.
    ///
    /// With `feedForwardsInFile` (expert streaming) the experts' (MLPs') slices are not
    /// copied but point into the mapped file, untouched, where the streamer finds their
    /// offsets: each is three runs of whole rows (gate, up, down), which it reads alone.
    static func slice(_ weights: DecoderWeights, config: ModelConfig, rank: Int, size: Int, feedForwardsInFile: Bool = false,
                      dropSourcePages: @escaping () -> Void) throws(CheckpointError) -> (DecoderWeights, ModelConfig, TensorParallelSlices) {
        if let reason = check(config, size: size) { throw .tensorParallelUnavailable(reason: reason) }
        guard (0..<size).contains(rank) else { throw .tensorParallelUnavailable(reason: "rank \(rank) is not in 0..<\(size)") }
        let share = Share(config, rank: rank, size: size)
        // Twice: once to count the bytes, so that the memory is one allocation of that size.
        var bytes = 0
        _ = cut(weights, share, rank: rank, size: size, headDim: config.headDim, feedForwardsInFile: feedForwardsInFile) { matrix, rows in
            bytes += TensorParallelSlices.rounded(rows.count * matrix.rowBytes)
            return matrix
        }
        let storage = TensorParallelSlices(byteCount: bytes, dropSourcePages: dropSourcePages)
        let sliced = cut(weights, share, rank: rank, size: size, headDim: config.headDim, feedForwardsInFile: feedForwardsInFile,
                         copy: storage.rows)
        return (sliced, share.config(config), storage)
    }

    /// `weights` with every matrix replaced by `copy(matrix, rank's rows)`, the experts'
    /// by in-place row slices when they stay in the file.
    private static func cut(_ weights: DecoderWeights, _ share: Share, rank: Int, size: Int, headDim d: Int, feedForwardsInFile: Bool,
                            copy rows: (WeightMatrix, Range<Int>) -> WeightMatrix) -> DecoderWeights {
        let q = (share.heads.lowerBound * d)..<(share.heads.upperBound * d)
        let kv = (share.keyValueHeads.lowerBound * d)..<(share.keyValueHeads.upperBound * d)
        func feedForward(_ ffn: DecoderWeights.FeedForward) -> DecoderWeights.FeedForward {
            guard feedForwardsInFile else {
                return .init(gate: rows(ffn.gate, share.intermediate), up: rows(ffn.up, share.intermediate), down: rows(ffn.down, share.hidden))
            }
            func inPlace(_ matrix: WeightMatrix, _ range: Range<Int>) -> WeightMatrix {
                WeightMatrix(type: matrix.type, rows: range.count, columns: matrix.columns, base: matrix.row(range.lowerBound))
            }
            return .init(gate: inPlace(ffn.gate, share.intermediate), up: inPlace(ffn.up, share.intermediate),
                         down: inPlace(ffn.down, share.hidden))
        }
        var sliced = weights
        for (index, layer) in weights.layers.enumerated() {
            let a = layer.attention
            var out = layer
            out.attention = .init(q: rows(a.q, q), k: rows(a.k, kv), v: rows(a.v, kv), o: rows(a.o, share.hidden))
            switch layer.mlp {
            case .dense(let ffn):
                out.mlp = .dense(feedForward(ffn))
            case .sparseMoE(let router, let experts):
                out.mlp = .sparseMoE(router: rows(router, 0..<router.rows), experts: experts.map(feedForward))
            }
            sliced.layers[index] = out
        }
        sliced.lmHead = rows(weights.lmHead, range(weights.lmHead.rows, rank: rank, size: size))
        sliced.embedTokens = rows(weights.embedTokens, range(weights.embedTokens.rows, rank: rank, size: size))
        return sliced
    }
}

/// The memory of a rank's share of the weights, freed with the model: one allocation of
/// anonymous memory advised as 2 MB pages (as the single process reads its weights, for the
/// same decode speed), filled slice by slice.
final class TensorParallelSlices: @unchecked Sendable {
    private let dropSourcePages: () -> Void
    private let memory: UnsafeMutableRawPointer
    private let length: Int
    private let mapped: Bool
    private var used = 0

    /// A slice's bytes as laid out: each slice starts on a 64-byte line.
    static func rounded(_ bytes: Int) -> Int { (max(bytes, 1) + 63) / 64 * 64 }

    /// Room for `byteCount` bytes of slices (each `rounded`).
    init(byteCount: Int, dropSourcePages: @escaping () -> Void) {
        self.dropSourcePages = dropSourcePages
        let hugePage = 1 << 21
        let length = max(hugePage, (byteCount + hugePage - 1) / hugePage * hugePage)
        if let region = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), region != MAP_FAILED {
            #if os(Linux)
            _ = madvise(region, length, 14)  // MADV_HUGEPAGE
            #endif
            memory = region
            mapped = true
        } else {
            memory = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 64)
            mapped = false
        }
        self.length = length
    }

    deinit {
        if mapped { munmap(memory, length) } else { memory.deallocate() }
    }

    /// `rows` of `matrix`, copied.
    func rows(of matrix: WeightMatrix, _ rows: Range<Int>) -> WeightMatrix {
        let bytes = rows.count * matrix.rowBytes
        precondition(used + Self.rounded(bytes) <= length, "a slice beyond the planned memory")
        let buffer = memory + used
        used += Self.rounded(bytes)
        buffer.copyMemory(from: matrix.row(rows.lowerBound), byteCount: bytes)
        dropSourcePages()
        return WeightMatrix(type: matrix.type, rows: rows.count, columns: matrix.columns, base: UnsafeRawPointer(buffer))
    }
}
