import Foundation

/// A read-only hash table from byte strings to ids, looked up by a slice of a byte buffer without
/// building a String or Array for every lookup (the BPE inner loops look up every candidate pair).
/// Open addressing with linear probing; keys are stored back to back in one array.
struct ByteStringTable: Sendable {
    private var keyBytes: [UInt8] = []
    private var keyStarts: [Int32] = [0]
    private var values: [Int32] = []
    /// Slot -> entry index + 1 (0 = empty).
    private var slots: [Int32] = []
    private var mask = 0

    init() { rebuildSlots(capacity: 16) }

    /// Builds a table from (key, value) pairs; for a repeated key the first one wins.
    init<S: Sequence>(_ entries: S) where S.Element == (key: [UInt8], value: Int32) {
        for entry in entries {
            keyBytes.append(contentsOf: entry.key)
            keyStarts.append(Int32(keyBytes.count))
            values.append(entry.value)
        }
        var capacity = 16
        while capacity < values.count * 2 { capacity *= 2 }
        rebuildSlots(capacity: capacity)
    }

    var count: Int { values.count }

    private mutating func rebuildSlots(capacity: Int) {
        slots = [Int32](repeating: 0, count: capacity)
        mask = capacity - 1
        keyBytes.withUnsafeBufferPointer { bytes in
            for entry in 0..<values.count {
                let start = Int(keyStarts[entry]), end = Int(keyStarts[entry + 1])
                let key = UnsafeBufferPointer(rebasing: bytes[start..<end])
                var slot = Self.hash(key) & mask
                var isDuplicate = false
                while slots[slot] != 0 {
                    let other = Int(slots[slot]) - 1
                    let oStart = Int(keyStarts[other]), oEnd = Int(keyStarts[other + 1])
                    if oEnd - oStart == key.count && bytes[oStart..<oEnd].elementsEqual(key) {
                        isDuplicate = true
                        break
                    }
                    slot = (slot + 1) & mask
                }
                if !isDuplicate { slots[slot] = Int32(entry + 1) }
            }
        }
    }

    @inline(__always)
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        // FNV-1a, 64-bit.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The id of `key`, or nil.
    @inline(__always)
    func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        var slot = Self.hash(key) & mask
        return slots.withUnsafeBufferPointer { slots in
            keyStarts.withUnsafeBufferPointer { starts in
                keyBytes.withUnsafeBufferPointer { bytes -> Int32? in
                    while true {
                        let entryPlusOne = slots[slot]
                        if entryPlusOne == 0 { return nil }
                        let entry = Int(entryPlusOne) - 1
                        let start = Int(starts[entry])
                        if Int(starts[entry + 1]) - start == key.count {
                            if key.isEmpty { return values[entry] }
                            if let stored = bytes.baseAddress, let wanted = key.baseAddress,
                               memcmp(stored + start, wanted, key.count) == 0 {
                                return values[entry]
                            }
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }

    func lookup(_ key: some StringProtocol) -> Int32? {
        var s = String(key)
        return s.withUTF8 { lookup($0) }
    }

    func lookup(bytes key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { lookup($0) }
    }
}
