import Foundation
import MixtralKernels

/// Megatron-style tensor parallelism: rank r of N holds (`Share`: contiguous ranges that
/// differ by at most one head or block when N does not divide evenly)
/// - q/k/v: the rows of its key/value heads (about numKeyValueHeads/N) and of the query heads
///   that attend with them (GQA), so attention needs nothing from the other ranks and each
///   rank keeps its own KV cache;
/// - o_proj: the columns of its query heads, so its product is a partial sum over heads;
/// - each expert's (a dense MLP's) gate and up: its rows of the intermediate dimension
///   (about I/N, in whole blocks of the down projection's type); down: the same columns,
///   again a partial sum;
/// - lm_head and the embedding: the rows of its share of the vocabulary (`vocabularyRange`).
///   Each rank computes those logits whole and an all-gather sets them side by side; the
///   owner of a token's embedding row sends it to the others in an all-reduce (`embed`).
///   Both give the single process's bits;
/// - norms and routers: whole (replicated).
/// Two all-reduces per layer (after o_proj, after the MLP or MoE output) make every rank's
/// residual stream the same, so every rank routes, normalises and computes the logits alike.
///
/// Every slice is copied into memory the rank owns (`TensorParallelSlices`) and the file's
/// pages it came from are dropped, so a rank's resident memory is its share of the model,
/// whatever granularity the kernel maps file pages with (recent kernels map a whole large
/// page-cache folio, up to 2 MB, on one touch, which would keep the other ranks' rows).
public enum TensorParallel {
    /// Whether `config` splits over `size` ranks, each taking at least one key/value head and
    /// one `unit` of the intermediate dimension; the reason when it does not.
    static func check(_ config: ModelConfig, size: Int, unit: Int) -> String? {
        guard size >= 1 else { return "the number of ranks must be at least 1" }
        if size > config.numKeyValueHeads {
            return "\(config.numKeyValueHeads) key/value heads do not split over \(size) ranks (each rank needs one; at most \(config.numKeyValueHeads) ranks)"
        }
        if config.intermediateSize % unit != 0 || size > config.intermediateSize / unit {
            return "intermediate size \(config.intermediateSize) does not split over \(size) ranks in pieces of \(unit) (the down projection's block)"
        }
        return nil
    }

    /// What rank `rank` of `size` computes: a contiguous range of key/value heads (with their
    /// query heads) and of the intermediate dimension, in whole `unit`s. Shares differ by
    /// at most one head and one unit, so any number of ranks up to the key/value heads works
    /// (3 key/value heads over 2 ranks: 2 and 1).
    struct Share {
        var keyValueHeads: Range<Int>
        var heads: Range<Int>
        var intermediate: Range<Int>

        init(_ config: ModelConfig, rank: Int, size: Int, unit: Int) {
            let kv = config.numKeyValueHeads
            keyValueHeads = (kv * rank / size)..<(kv * (rank + 1) / size)
            let group = config.numHeads / kv
            heads = (keyValueHeads.lowerBound * group)..<(keyValueHeads.upperBound * group)
            let units = config.intermediateSize / unit
            intermediate = (units * rank / size * unit)..<(units * (rank + 1) / size * unit)
        }

        /// The shape this share computes. `headDim` is stored, not derived, so it stays the
        /// model's.
        func config(_ config: ModelConfig) -> ModelConfig {
            var local = config
            local.numHeads = heads.count
            local.numKeyValueHeads = keyValueHeads.count
            local.intermediateSize = intermediate.count
            return local
        }
    }

    /// The block of the down projections' type (1 for float weights): an intermediate share
    /// must hold whole blocks, as its columns are cut out of them.
    static func intermediateUnit(_ weights: DecoderWeights) -> Int {
        var unit = 1
        for layer in weights.layers {
            switch layer.mlp {
            case .dense(let ffn): unit = max(unit, ffn.down.type.blockSize)
            case .sparseMoE(_, let experts): for expert in experts { unit = max(unit, expert.down.type.blockSize) }
            }
        }
        return unit
    }

    /// The rows of lm_head (the logits) rank `rank` of `size` computes: contiguous shares
    /// that differ by at most one row.
    public static func vocabularyRange(vocabularySize: Int, rank: Int, size: Int) -> Range<Int> {
        (vocabularySize * rank / size)..<(vocabularySize * (rank + 1) / size)
    }

    /// `weights` cut to rank `rank` of `size` (see the type's comment), copied into the
    /// returned storage. Throws when the model does not split so: heads or intermediate size
    /// not divisible by `size`, or a column slice that would cut a quantised block.
    /// `dropSourcePages` runs after each copy (`WeightStore.dropMappedPages`), so that at
    /// no time does the rank hold much more than its share.
    static func slice(_ weights: DecoderWeights, config: ModelConfig, rank: Int, size: Int,
                      dropSourcePages: @escaping () -> Void) throws(CheckpointError) -> (DecoderWeights, ModelConfig, TensorParallelSlices) {
        let unit = intermediateUnit(weights)
        if let reason = check(config, size: size, unit: unit) { throw .tensorParallelUnavailable(reason: reason) }
        guard (0..<size).contains(rank) else { throw .tensorParallelUnavailable(reason: "rank \(rank) is not in 0..<\(size)") }
        let share = Share(config, rank: rank, size: size, unit: unit)
        let local = share.config(config)
        let storage = TensorParallelSlices(dropSourcePages: dropSourcePages)
        let d = config.headDim
        let q = share.heads.lowerBound * d, qRows = share.heads.count * d
        let kv = share.keyValueHeads.lowerBound * d, kvRows = share.keyValueHeads.count * d
        let ffn = share.intermediate.lowerBound, ffnRows = share.intermediate.count
        func feedForward(_ weights: DecoderWeights.FeedForward, _ name: String) throws(CheckpointError) -> DecoderWeights.FeedForward {
            .init(gate: storage.rows(of: weights.gate, first: ffn, count: ffnRows),
                  up: storage.rows(of: weights.up, first: ffn, count: ffnRows),
                  down: try storage.columns(of: weights.down, first: ffn, count: ffnRows, name: name + " down"))
        }
        var sliced = weights
        for (index, layer) in weights.layers.enumerated() {
            let a = layer.attention
            var out = layer
            out.attention = .init(q: storage.rows(of: a.q, first: q, count: qRows),
                                  k: storage.rows(of: a.k, first: kv, count: kvRows),
                                  v: storage.rows(of: a.v, first: kv, count: kvRows),
                                  o: try storage.columns(of: a.o, first: q, count: qRows, name: "layer \(index) o_proj"))
            switch layer.mlp {
            case .dense(let ffn):
                out.mlp = .dense(try feedForward(ffn, "layer \(index) mlp"))
            case .sparseMoE(let router, let experts):
                var local: [DecoderWeights.FeedForward] = []
                for (e, expert) in experts.enumerated() { local.append(try feedForward(expert, "layer \(index) expert \(e)")) }
                out.mlp = .sparseMoE(router: storage.rows(of: router, first: 0, count: router.rows), experts: local)
            }
            sliced.layers[index] = out
        }
        let vocabulary = vocabularyRange(vocabularySize: weights.lmHead.rows, rank: rank, size: size)
        sliced.lmHead = storage.rows(of: weights.lmHead, first: vocabulary.lowerBound, count: vocabulary.count)
        let embedding = vocabularyRange(vocabularySize: weights.embedTokens.rows, rank: rank, size: size)
        sliced.embedTokens = storage.rows(of: weights.embedTokens, first: embedding.lowerBound, count: embedding.count)
        return (sliced, local, storage)
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

    /// Columns `first ..< first + count` of `matrix`, copied row by row. A quantised row is
    /// a sequence of blocks, so the slice must start and end on block boundaries.
    func columns(of matrix: WeightMatrix, first: Int, count: Int, name: String) throws(CheckpointError) -> WeightMatrix {
        let block = matrix.type.blockSize
        guard first % block == 0, count % block == 0, let rowBytes = matrix.type.byteCount(elements: count) else {
            throw .tensorParallelUnavailable(reason: "\(name): columns \(first)..<\(first + count) of \(matrix.columns) would cut a \(matrix.type.rawValue) block of \(block) weights")
        }
        let buffer = allocate(matrix.rows * rowBytes)
        let offset = first / block * matrix.type.blockBytes
        for r in 0..<matrix.rows {
            (buffer + r * rowBytes).copyMemory(from: matrix.row(r) + offset, byteCount: rowBytes)
        }
        dropSourcePages()
        return WeightMatrix(type: matrix.type, rows: matrix.rows, columns: count, base: UnsafeRawPointer(buffer))
    }
}
