/// Chooses the next token from processed scores.
public protocol TokenSampler {
    mutating func choose(from scores: [Float]) -> Int
}

/// argmax, first index on ties (torch.argmax).
public struct GreedySampler: TokenSampler {
    public init() {}
    public mutating func choose(from scores: [Float]) -> Int {
        var best = 0
        for i in scores.indices where scores[i] > scores[best] { best = i }
        return best
    }
}

/// softmax, then one multinomial draw from a seeded generator: the same seed gives the
/// same tokens.
public struct MultinomialSampler: TokenSampler {
    var random: Xoshiro256

    public init(seed: UInt64) { random = Xoshiro256(seed: seed) }

    public mutating func choose(from scores: [Float]) -> Int {
        let probabilities = softmaxed(scores)
        let u = Float(random.nextUnitDouble())
        var cumulative: Float = 0
        var last = 0
        for (i, p) in probabilities.enumerated() where p > 0 {
            cumulative += p
            last = i
            if u < cumulative { return i }
        }
        return last  // rounding left u just above the total
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and identical on every platform.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}
