import Foundation
import MixtralKernels

/// Quantises a checkpoint's linear-layer weights while the model loads, as transformers'
/// `load_in_8bit` / `load_in_4bit` do: the q/k/v/o projections and the feed-forward or
/// expert matrices become `type` (Q8_0, Q4_0, Q4_K or NF4) in memory; embeddings, the
/// router, norms and lm_head stay as stored (bitsandbytes leaves lm_head unquantised;
/// llama.cpp keeps the router in full precision).
public final class QuantizingWeightStore: WeightStore, @unchecked Sendable {
    public static let supportedTypes: [WeightType] = [.q8_0, .q4_0, .q4_K, .nf4]

    let base: any WeightStore
    public let type: WeightType
    let pool: ComputePool
    let progress: (Int, Int) -> Void
    private let quantizable: [String]
    private var done = 0
    /// The quantised matrices. Models keep their store, and matrices point into these.
    private var owned: [OwnedBytes] = []

    public init(base: any WeightStore, type: WeightType, pool: ComputePool,
                progress: @escaping (Int, Int) -> Void = { _, _ in }) throws(CheckpointError) {
        guard Self.supportedTypes.contains(type) else {
            throw .invalidConfig(file: base.location, reason: "cannot quantize to \(type.rawValue) at load (supported: q8_0, q4_0, q4_k, nf4)")
        }
        self.base = base
        self.type = type
        self.pool = pool
        self.progress = progress
        quantizable = base.tensorNames.filter(Self.isQuantized)
    }

    static func isQuantized(_ name: String) -> Bool {
        let projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        return projections.contains { name.hasSuffix(".\($0).weight") }
            || (name.contains(".experts.") && (name.hasSuffix(".w1.weight") || name.hasSuffix(".w2.weight") || name.hasSuffix(".w3.weight")))
    }

    public var location: String { base.location }
    public var tensorNames: [String] { base.tensorNames }
    public func contains(_ name: String) -> Bool { base.contains(name) }
    public func dropMappedPages() { base.dropMappedPages() }

    public func tensor(_ name: String) throws(CheckpointError) -> TensorView {
        let source = try base.tensor(name)
        guard Self.isQuantized(name), source.shape.count == 2, source.type != type else { return source }
        let (rows, columns) = (source.shape[0], source.shape[1])
        guard let rowBytes = type.byteCount(elements: columns), let sourceRowBytes = source.type.byteCount(elements: columns) else {
            throw .malformedTensor(file: source.file, tensor: name,
                                   reason: "\(columns) columns are not a whole number of \(type.rawValue) blocks of \(type.blockSize)")
        }
        let buffer = OwnedBytes(count: rows * rowBytes)
        let failures = ManagedAtomicFlag()
        pool.parallelRanges(rows, granularity: 8) { range in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: columns)
            defer { row.deallocate() }
            for r in range {
                dequantizeRow(source.type, source.data + r * sourceRowBytes, row, count: columns)
                do { try quantizeRow(type, row, buffer.pointer + r * rowBytes, count: columns) } catch { failures.set() }
            }
        }
        if failures.isSet { throw .malformedTensor(file: source.file, tensor: name, reason: "cannot quantize to \(type.rawValue)") }
        done += 1
        owned.append(buffer)
        progress(done, quantizable.count)
        return TensorView(name: name, file: source.file, type: type, shape: source.shape, data: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }
}

/// Bytes owned by a tensor made in memory.
final class OwnedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(count: Int) { pointer = .allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { pointer.deallocate() }
}

/// A flag set from several threads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
