import Foundation
import Testing
@testable import MixtralTokenizers

/// A small deterministic generator (SplitMix64) so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct StreamingTests {
    static let tokenizerPaths = ["v1", "v3", "v1-hf", "v3-hf", "smollm2"]

    /// Property: for random id sequences, fed in random chunks, the deltas concatenate to decode(ids).
    @Test(arguments: tokenizerPaths)
    func deltasConcatenateToDecode(path: String) throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path(path))
        var rng = SplitMix64(state: 0x5EED_0000 &+ UInt64(path.utf8.count))
        let byteIDs = (0..<tokenizer.vocabularySize).filter { tokenizer.isByteFallbackToken($0) }
        let specialIDs = (0..<min(tokenizer.vocabularySize, 1000)).filter { tokenizer.isSpecial($0) }
        // Real encodings too: multi-byte characters split over byte tokens are the interesting case.
        let strings = try Fixtures.strings()
        var sequences: [[Int]] = []
        for _ in 0..<300 {
            var ids: [Int] = []
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                let r = Int.random(in: 0..<10, using: &rng)
                if r < 3, let id = byteIDs.randomElement(using: &rng) {
                    ids.append(id)
                } else if r < 4, let id = specialIDs.randomElement(using: &rng) {
                    ids.append(id)
                } else {
                    ids.append(Int.random(in: 0..<tokenizer.vocabularySize, using: &rng))
                }
            }
            sequences.append(ids)
        }
        for _ in 0..<150 {
            let text = strings.randomElement(using: &rng) ?? ""
            sequences.append(try tokenizer.encode(text, addSpecialTokens: true))
        }
        for skip in [true, false] {
            for ids in sequences {
                var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
                var text = ""
                var index = 0
                while index < ids.count {
                    let chunk = Int.random(in: 1...3, using: &rng)
                    let end = min(ids.count, index + chunk)
                    text += chunk == 1 ? stream.append(ids[index]) : stream.append(contentsOf: Array(ids[index..<end]))
                    index = end
                }
                text += stream.finish()
                let expected = tokenizer.decode(ids, skipSpecialTokens: skip)
                #expect(Array(text.utf8) == Array(expected.utf8), "ids \(ids) skip=\(skip)")
            }
        }
    }

    @Test func holdsBackIncompleteCharactersAndKeepsSpaces() throws {
        let tokenizer = try SentencePieceTokenizer(contentsOf: Fixtures.path("v1/tokenizer.model"))
        // "日" is E6 97 A5: three byte pieces <0xE6> <0x97> <0xA5> = ids 3 + byte.
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(stream.append(1) == "")              // <s>
        #expect(stream.append(22557) == "Hello")     // "▁Hello": leading space dropped at the start
        #expect(stream.append(3 + 0xE6) == "")
        #expect(stream.append(3 + 0x97) == "")
        #expect(stream.append(3 + 0xA5) == "")       // still a byte token: held until the group ends
        #expect(stream.append(1526) == "日 world")   // "▁world"
        #expect(stream.finish() == "")
    }
}

@Suite struct StreamingCheckpointTests {
    /// Long generations decode from a checkpoint, not from the first id: the result must still
    /// equal the full decode, token by token, for a long real text.
    @Test(arguments: ["v1", "v3-hf", "smollm2"])
    func longStreamEqualsDecode(path: String) throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path(path))
        let text = try Fixtures.strings().prefix(300).joined(separator: "\n")
        let ids = try tokenizer.encode(text, addSpecialTokens: true)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var out = ""
        for id in ids { out += stream.append(id) }
        #expect(stream.hasCheckpoint)
        out += stream.finish()
        #expect(Array(out.utf8) == Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8))
    }
}
