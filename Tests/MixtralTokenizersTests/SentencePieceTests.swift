import Foundation
import Testing
@testable import MixtralTokenizers

@Suite struct SentencePieceTests {
    @Test(arguments: ["v1", "v3"])
    func encodeMatchesSentencePiece(name: String) throws {
        let tokenizer = try SentencePieceTokenizer(contentsOf: Fixtures.path("\(name)/tokenizer.model"))
        let strings = try Fixtures.strings()
        let vectors = try Fixtures.Vectors("vectors/\(name)-sentencepiece.json")
        let expected = try vectors.idLists("encode")
        #expect(strings.count >= 2000)
        var mismatches = 0
        for (text, ids) in zip(strings, expected) {
            let got = try tokenizer.encode(text, addSpecialTokens: false)
            if got != ids {
                mismatches += 1
                if mismatches <= 5 { Issue.record("encode \(text.debugDescription): got \(got), expected \(ids)") }
            }
            let withBOS = try tokenizer.encode(text, addSpecialTokens: true)
            #expect(withBOS == [1] + ids)
        }
        #expect(mismatches == 0, "\(mismatches) of \(strings.count) strings encode differently")
    }

    @Test(arguments: ["v1", "v3"])
    func decodeMatchesSentencePiece(name: String) throws {
        let tokenizer = try SentencePieceTokenizer(contentsOf: Fixtures.path("\(name)/tokenizer.model"))
        let strings = try Fixtures.strings()
        let vectors = try Fixtures.Vectors("vectors/\(name)-sentencepiece.json")
        var mismatches = 0
        for ((text, ids), decoded) in zip(zip(strings, try vectors.idLists("encode")), try vectors.optionalStrings("decode")) {
            let expected = decoded ?? text
            if tokenizer.decode(ids, skipSpecialTokens: true) != expected { mismatches += 1 }
        }
        for (ids, expected) in zip(try vectors.idLists("random_ids"), try vectors.optionalStrings("random_decode")) {
            let got = tokenizer.decode(ids, skipSpecialTokens: true)
            if got != expected {
                mismatches += 1
                if mismatches <= 5 { Issue.record("decode \(ids): got \(got.debugDescription), expected \(String(describing: expected).debugDescription)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func modelFacts() throws {
        let v1 = try SentencePieceTokenizer(contentsOf: Fixtures.path("v1/tokenizer.model"))
        #expect(v1.vocabularySize == 32000)
        #expect(v1.bosTokenID == 1 && v1.eosTokenIDs == [2] && v1.unknownTokenID == 0)
        #expect(v1.model.byteFallback && v1.model.addDummyPrefix && !v1.model.removeExtraWhitespaces)
        let v3 = try SentencePieceTokenizer(contentsOf: Fixtures.path("v3/tokenizer.model"))
        #expect(v3.vocabularySize == 32768)
        #expect(v3.piece(for: 3) == "[INST]" && v3.isSpecial(3) && !v3.isSpecial(1000))
        #expect(v3.decode([1, 3, 2], skipSpecialTokens: false) == "<s>[INST]</s>")
        #expect(v3.decode([1, 3, 2], skipSpecialTokens: true) == "")
    }

    @Test func malformedFilesGiveTypedErrors() throws {
        let truncated = try #require(FileManager.default.contents(atPath: Fixtures.path("v1/tokenizer.model"))).prefix(1000)
        #expect(throws: TokenizerError.self) { try SentencePieceModel(data: Data(truncated), file: "x") }
        #expect(throws: TokenizerError.self) { try SentencePieceModel(data: Data([0xFF, 0xFF, 0xFF]), file: "x") }
        #expect(throws: TokenizerError.self) { try SentencePieceModel(data: Data(), file: "x") }
        #expect(throws: TokenizerError.fileNotFound("/nonexistent/tokenizer.model")) {
            try SentencePieceTokenizer(contentsOf: "/nonexistent/tokenizer.model")
        }
    }
}

@Suite struct SegmentationTests {
    /// Encoding segment by segment (at "▁" runs) is an optimisation that must not change ids:
    /// compare with whole-text BPE on all reference strings joined into one long text.
    @Test func segmentedEncodingEqualsWholeText() throws {
        let text = try Fixtures.strings().joined(separator: " ")
        var sentencePiece = try SentencePieceTokenizer(contentsOf: Fixtures.path("v3/tokenizer.model"))
        #expect(sentencePiece.spaceRunsAreBoundaries)
        let segmented = try sentencePiece.encode(text, addSpecialTokens: false)
        sentencePiece.spaceRunsAreBoundaries = false
        #expect(try sentencePiece.encode(text, addSpecialTokens: false) == segmented)

        var hf = try HFTokenizer(contentsOf: Fixtures.path("v1-hf/tokenizer.json"))
        #expect(hf.model.spaceRunsAreBoundaries)
        let hfSegmented = try hf.encode(text, addSpecialTokens: false)
        hf.model.spaceRunsAreBoundaries = false
        #expect(try hf.encode(text, addSpecialTokens: false) == hfSegmented)
    }
}
