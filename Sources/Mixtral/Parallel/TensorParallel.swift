import Foundation
import MixtralKernels

/// Megatron-style tensor parallelism: rank r of N holds
/// - q/k/v: the rows of its query heads (numHeads/N) and key/value heads (numKeyValueHeads/N);
///   a contiguous range of query heads uses a contiguous range of key/value heads (GQA), so
///   attention needs nothing from the other ranks and each rank keeps its own KV cache;
/// - o_proj: the columns of its query heads, so its product is a partial sum over heads;
/// - each expert's (a dense MLP's) gate and up: rows r*I/N ..< (r+1)*I/N of the
///   intermediate dimension; down: the same columns, again a partial sum;
/// - embeddings, norms, routers and lm_head: whole (replicated).
/// Two all-reduces per layer (after o_proj, after the MLP or MoE output) make every rank's
/// residual stream the same, so every rank routes, normalises and computes the logits alike.
///
/// Row slices point into the weight file in place; a matrix has no column stride, so a
/// column slice is copied into memory the model owns (`TensorParallelSlices`).
public enum TensorParallel {
    /// Whether `config` splits over `size` ranks; the reason when it does not.
    static func check(_ config: ModelConfig, size: Int) -> String? {
        guard size >= 1 else { return "the number of ranks must be at least 1" }
        if config.numKeyValueHeads % size != 0 {
            return "\(config.numKeyValueHeads) key/value heads do not split over \(size) ranks (the number of ranks must divide the key/value heads)"
        }
        if config.intermediateSize % size != 0 {
            return "intermediate size \(config.intermediateSize) does not split over \(size) ranks"
        }
        return nil
    }

    /// The shape rank's slice computes: its share of the heads and of the intermediate
    /// dimension. `headDim` is stored, not derived, so it stays the model's.
    static func rankConfig(_ config: ModelConfig, size: Int) -> ModelConfig {
        var local = config
        local.numHeads = config.numHeads / size
        local.numKeyValueHeads = config.numKeyValueHeads / size
        local.intermediateSize = config.intermediateSize / size
        return local
    }

    /// `weights` cut to rank `rank` of `size` (see the type's comment), with the memory of
    /// the column slices. Throws when the model does not split so: heads or intermediate
    /// size not divisible by `size`, or a column slice that would cut a quantised block.
    /// `isMapped` says whether a matrix is mapped from its file (`WeightStore.fileLocation`):
    /// only then are its pages dropped after its slice is copied.
    static func slice(_ weights: DecoderWeights, config: ModelConfig, rank: Int, size: Int,
                      isMapped: (UnsafeRawPointer) -> Bool) throws(CheckpointError) -> (DecoderWeights, ModelConfig, TensorParallelSlices) {
        if let reason = check(config, size: size) { throw .tensorParallelUnavailable(reason: reason) }
        guard (0..<size).contains(rank) else { throw .tensorParallelUnavailable(reason: "rank \(rank) is not in 0..<\(size)") }
        let local = rankConfig(config, size: size)
        let storage = TensorParallelSlices()
        let qRows = local.numHeads * local.headDim, kvRows = local.numKeyValueHeads * local.headDim
        let ffnRows = local.intermediateSize
        func feedForward(_ ffn: DecoderWeights.FeedForward, _ name: String) throws(CheckpointError) -> DecoderWeights.FeedForward {
            .init(gate: ffn.gate.rowSlice(rank * ffnRows, count: ffnRows),
                  up: ffn.up.rowSlice(rank * ffnRows, count: ffnRows),
                  down: try storage.columnSlice(ffn.down, first: rank * ffnRows, count: ffnRows, name: name + " down",
                                                dropSourcePages: isMapped(ffn.down.base)))
        }
        var sliced = weights
        for (index, layer) in weights.layers.enumerated() {
            let a = layer.attention
            var out = layer
            out.attention = .init(q: a.q.rowSlice(rank * qRows, count: qRows),
                                  k: a.k.rowSlice(rank * kvRows, count: kvRows),
                                  v: a.v.rowSlice(rank * kvRows, count: kvRows),
                                  o: try storage.columnSlice(a.o, first: rank * qRows, count: qRows, name: "layer \(index) o_proj",
                                                             dropSourcePages: isMapped(a.o.base)))
            switch layer.mlp {
            case .dense(let ffn):
                out.mlp = .dense(try feedForward(ffn, "layer \(index) mlp"))
            case .sparseMoE(let router, let experts):
                var local: [DecoderWeights.FeedForward] = []
                for (e, expert) in experts.enumerated() { local.append(try feedForward(expert, "layer \(index) expert \(e)")) }
                out.mlp = .sparseMoE(router: router, experts: local)
            }
            sliced.layers[index] = out
        }
        return (sliced, local, storage)
    }
}

extension WeightMatrix {
    /// Rows `first ..< first + count`, in place.
    func rowSlice(_ first: Int, count: Int) -> WeightMatrix {
        WeightMatrix(type: type, rows: count, columns: columns, base: row(first))
    }
}

/// The memory of a model slice's column slices (o_proj and down), freed with the model.
final class TensorParallelSlices: @unchecked Sendable {
    private var buffers: [UnsafeMutableRawPointer] = []
    private(set) var byteCount = 0

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// Columns `first ..< first + count` of `matrix`, copied row by row into owned memory.
    /// A quantised row is a sequence of blocks, so the slice must start and end on block
    /// boundaries. With `dropSourcePages` (the matrix is mapped from its file) the source's
    /// pages are then dropped from this process's memory (MADV_DONTNEED: a mapped file
    /// reads them again if touched), so a rank's resident memory holds its slice, not the
    /// whole matrix.
    func columnSlice(_ matrix: WeightMatrix, first: Int, count: Int, name: String,
                     dropSourcePages: Bool) throws(CheckpointError) -> WeightMatrix {
        let block = matrix.type.blockSize
        guard first % block == 0, count % block == 0, let rowBytes = matrix.type.byteCount(elements: count) else {
            throw .tensorParallelUnavailable(reason: "\(name): columns \(first)..<\(first + count) of \(matrix.columns) would cut a \(matrix.type.rawValue) block of \(block) weights")
        }
        let bytes = matrix.rows * rowBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        let offset = first / block * matrix.type.blockBytes
        for r in 0..<matrix.rows {
            (buffer + r * rowBytes).copyMemory(from: matrix.row(r) + offset, byteCount: rowBytes)
        }
        buffers.append(buffer)
        byteCount += bytes
        if dropSourcePages { Self.dropPages(matrix.base, byteCount: matrix.byteCount) }
        return WeightMatrix(type: matrix.type, rows: matrix.rows, columns: count, base: UnsafeRawPointer(buffer))
    }

    /// Tells the kernel the whole pages inside `base ..< base + byteCount` are not needed.
    /// Only for memory mapped from a weight file, which the kernel reads again if it is
    /// touched (on anonymous memory MADV_DONTNEED would zero it).
    static func dropPages(_ base: UnsafeRawPointer, byteCount: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + byteCount) / page * page
        guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(pointer, end - start, Int32(MADV_DONTNEED))
    }
}
