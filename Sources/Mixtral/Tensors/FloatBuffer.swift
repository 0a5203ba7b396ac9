import MixtralKernels

/// A growable fp32 scratch buffer with a stable base address, for activations and caches.
/// (Swift arrays would need nested `withUnsafe...` closures at every kernel call.)
final class FloatBuffer: @unchecked Sendable {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = allocateCacheAligned(Float.self, count: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// Ensures room for `count` floats, growing geometrically but never past `limit`; when
    /// it grows, keeps the first `keeping` values.
    func reserve(_ count: Int, keeping: Int = 0, limit: Int = .max) {
        guard count > capacity else { return }
        let newCapacity = max(count, min(capacity * 2, limit))
        let newPointer = allocateCacheAligned(Float.self, count: newCapacity)
        if keeping > 0 { newPointer.update(from: pointer, count: min(keeping, capacity)) }
        pointer.deallocate()
        pointer = newPointer
        capacity = newCapacity
    }

    subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }
}
