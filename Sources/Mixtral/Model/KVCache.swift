/// Keys (after RoPE) and values of every processed position, per layer, in fp32:
/// [positions, kvHeads * headDim]. Grows as tokens are appended, up to `maxPositions`.
public final class KVCache: @unchecked Sendable {
    public let maxPositions: Int
    let rowWidth: Int
    var keys: [FloatBuffer]
    var values: [FloatBuffer]
    /// Positions stored so far.
    public private(set) var count = 0

    init(layers: Int, rowWidth: Int, maxPositions: Int) {
        self.maxPositions = maxPositions
        self.rowWidth = rowWidth
        keys = (0..<layers).map { _ in FloatBuffer() }
        values = (0..<layers).map { _ in FloatBuffer() }
    }

    /// Makes room for `newTokens` more positions in every layer.
    func reserve(_ newTokens: Int) {
        let needed = (count + newTokens) * rowWidth
        for layer in keys.indices {
            keys[layer].reserve(needed, keeping: count * rowWidth)
            values[layer].reserve(needed, keeping: count * rowWidth)
        }
    }

    func advance(by tokens: Int) { count += tokens }

    /// Forgets everything after the first `length` positions (to reuse a common prefix).
    public func truncate(to length: Int) { count = min(count, max(0, length)) }

    /// Bytes held by the cache.
    public var byteCount: Int { (keys + values).reduce(0) { $0 + $1.capacity * 4 } }
}
