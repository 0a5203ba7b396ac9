import MixtralKernels
import Synchronization

/// Keys (after RoPE) and values of every processed position, per layer, in fp32 (fp16
/// values under `.fast`, as llama.cpp's default F16 cache holds them). Values
/// are [positions, kvHeads * headDim]; keys are blocked for attention (`KeyLayout`). Grows
/// as tokens are appended, up to `maxPositions`.
public final class KVCache: @unchecked Sendable {
    public let maxPositions: Int
    let rowWidth: Int
    var keys: [FloatBuffer]
    var values: [FloatBuffer]
    /// Positions stored so far.
    public private(set) var count = 0
    /// A name no other cache of this process has: the ranks of a split server name their
    /// copies of one sequence's cache by rank 0's (`ReplicatedStep`).
    public let id = KVCache.lastID.add(1, ordering: .relaxed).newValue
    private static let lastID = Atomic<Int>(0)

    /// `maxPositions` beyond what 32-bit kernel indices address (a config may claim any
    /// `max_position_embeddings`) is cut to that; memory grows only with use.
    init(layers: Int, rowWidth: Int, maxPositions: Int) {
        self.maxPositions = max(0, min(maxPositions, Int(Int32.max) / max(1, rowWidth) / KeyLayout.block * KeyLayout.block))
        self.rowWidth = rowWidth
        keys = (0..<layers).map { _ in FloatBuffer() }
        values = (0..<layers).map { _ in FloatBuffer() }
    }

    /// Makes room for `newTokens` more positions in every layer.
    func reserve(_ newTokens: Int) {
        let needed = (count + newTokens) * rowWidth
        let limit = maxPositions * rowWidth
        // Keys come in whole blocks of positions.
        let blocked = { (positions: Int) in (positions + KeyLayout.block - 1) / KeyLayout.block * KeyLayout.block * self.rowWidth }
        for layer in keys.indices {
            keys[layer].reserve(blocked(count + newTokens), keeping: blocked(count), limit: blocked(maxPositions))
            values[layer].reserve(needed, keeping: count * rowWidth, limit: limit)
        }
    }

    func advance(by tokens: Int) { count += tokens }

    /// Forgets everything after the first `length` positions (to reuse a common prefix).
    public func truncate(to length: Int) { count = min(count, max(0, length)) }

    /// Bytes held by the cache.
    public var byteCount: Int { (keys + values).reduce(0) { $0 + $1.capacity * 4 } }
}
