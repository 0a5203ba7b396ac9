import Foundation
import Testing
@testable import MixtralTokenizers

/// `tokenBytes`: the bytes a token adds after others. Concatenated, they are the decoded
/// text: for every tokenizer and reference string, decode(ids) equals the first token's
/// decode followed by the other tokens' bytes (grammar constraints rely on it).
@Suite("Token bytes")
struct TokenBytesTests {
    static let tokenizers = ["smollm2", "v1", "v1-hf", "v3", "v3-hf"]

    @Test(arguments: tokenizers)
    func concatenatedBytesAreTheDecodedText(_ name: String) throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path(name))
        var checked = 0
        for text in try Fixtures.strings() {
            let ids = try tokenizer.encode(text, addSpecialTokens: false).filter { !tokenizer.isSpecial($0) }
            guard ids.count >= 2 else { continue }
            var bytes = Array(tokenizer.decode([ids[0]], skipSpecialTokens: false).utf8)
            // The first token may be a partial character (byte-level pieces): then start at
            // the first token that decodes whole.
            guard !bytes.contains(0xEF) else { continue }
            for id in ids.dropFirst() { bytes += try #require(tokenizer.tokenBytes(id), "\(name): id \(id)") }
            #expect(String(decoding: bytes, as: UTF8.self) == tokenizer.decode(ids, skipSpecialTokens: false),
                    "\(name): \(text.prefix(40))")
            checked += 1
        }
        #expect(checked > 10)
    }

    @Test(arguments: tokenizers)
    func specialTokensHaveNoBytes(_ name: String) throws {
        let tokenizer = try TokenizerLoader.load(path: Fixtures.path(name))
        for id in tokenizer.eosTokenIDs + [tokenizer.bosTokenID].compactMap({ $0 }) {
            #expect(tokenizer.tokenBytes(id) == nil, "\(name): \(id)")
        }
    }
}
