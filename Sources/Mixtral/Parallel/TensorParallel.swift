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
    static func range(_ count: Int, rank: Int, size: Int) -> Range<Int> {
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
        let storage = TensorParallelSlices(dropSourcePages: dropSourcePages)
        let d = config.headDim
        func rows(_ matrix: WeightMatrix, _ range: Range<Int>) -> WeightMatrix {
            storage.rows(of: matrix, first: range.lowerBound, count: range.count)
        }
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
        return (sliced, share.config(config), storage)
    }
}

/// The memory of a rank's share of the weights, freed with the model: regions of anonymous
/// memory advised as 2 MB pages (as the single process reads its weights, for the same
/// decode speed), filled slice by slice.
final class TensorParallelSlices: @unchecked Sendable {
    private let dropSourcePages: () -> Void
    private var heapBuffers: [UnsafeMutableRawPointer] = []
    private var regions: [(start: UnsafeMutableRawPointer, length: Int)] = []
    private var next: UnsafeMutableRawPointer?
    private var remaining = 0
    private(set) var byteCount = 0

    init(dropSourcePages: @escaping () -> Void) { self.dropSourcePages = dropSourcePages }

    deinit {
        for region in regions { munmap(region.start, region.length) }
        for buffer in heapBuffers { buffer.deallocate() }
    }

    /// `bytes` of fresh memory at a 64-byte boundary.
    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let rounded = (max(bytes, 1) + 63) / 64 * 64
        if rounded > remaining {
            let hugePage = 1 << 21
            let length = (max(rounded, 64 << 20) + hugePage - 1) / hugePage * hugePage
            if let region = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), region != MAP_FAILED {
                #if os(Linux)
                _ = madvise(region, length, 14)  // MADV_HUGEPAGE
                #endif
                regions.append((region, length))
                next = region
                remaining = length
            } else {
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: 64)
                heapBuffers.append(buffer)
                byteCount += bytes
                return buffer
            }
        }
        let pointer = next!
        next = pointer + rounded
        remaining -= rounded
        byteCount += bytes
        return pointer
    }

    /// Rows `first ..< first + count` of `matrix`, copied.
    func rows(of matrix: WeightMatrix, first: Int, count: Int) -> WeightMatrix {
        let bytes = count * matrix.rowBytes
        let buffer = allocate(bytes)
        buffer.copyMemory(from: matrix.row(first), byteCount: bytes)
        dropSourcePages()
        return WeightMatrix(type: matrix.type, rows: count, columns: matrix.columns, base: UnsafeRawPointer(buffer))
    }
}
