import Foundation

/// A tokenizer.json tokenizer with the semantics of the Hugging Face `tokenizers` library
/// (`Tokenizer.from_file(path).encode(text, add_special_tokens=...)` and `.decode(ids, ...)`).
///
/// Encoding: added tokens are found in the raw text first (non-normalized ones) and kept whole;
/// the text between them is normalized, searched again for normalized added tokens,
/// pre-tokenized into words, and each word is run through the BPE model. With
/// `addSpecialTokens`, the TemplateProcessing post-processor adds its special tokens.
/// Decoding: ids -> token strings (special added tokens dropped when asked), then the decoder.
public struct HFTokenizer: Tokenizer {
    public let vocabularySize: Int
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    public let addedTokens: [AddedToken]

    var model: BPEModel
    let normalizer: HFNormalizer?
    let preTokenizer: HFPreTokenizer?
    let decoder: HFDecoder?
    /// TemplateProcessing "single": nil = sequence A, else a special token's ids.
    let template: [[Int]?]
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedByID: [Int: AddedToken]

    /// Loads tokenizer.json.
    public init(contentsOf path: String) throws {
        guard let data = try readTokenizerFile(path) else { throw TokenizerError.fileNotFound(path) }
        let json: JSONValue
        do {
            json = try JSONValue.parse([UInt8](data))
        } catch {
            throw TokenizerError.malformed(file: path, reason: "invalid JSON: \(error)")
        }
        try self.init(json: json, file: path)
    }

    public init(json: JSONValue, file: String = "tokenizer.json") throws {
        guard let modelJSON = json["model"] else { throw TokenizerError.malformed(file: file, reason: "no model") }
        let modelType = modelJSON["type"]?.stringValue ?? (modelJSON["merges"] != nil ? "BPE" : "unknown")
        guard modelType == "BPE" else { throw TokenizerError.unsupported(file: file, feature: "model type \(modelType)") }
        // BPE dropout is ignored: inference needs the deterministic segmentation.
        guard let vocabMembers = modelJSON["vocab"]?.objectValue else {
            throw TokenizerError.malformed(file: file, reason: "model.vocab is not an object")
        }
        var vocabulary: [(String, Int)] = []
        vocabulary.reserveCapacity(vocabMembers.count)
        for (token, value) in vocabMembers {
            guard let id = value.intValue else { throw TokenizerError.malformed(file: file, reason: "vocab id of \(token.debugDescription) is not an integer") }
            vocabulary.append((token, id))
        }
        var merges: [(String, String)] = []
        for merge in modelJSON["merges"]?.arrayValue ?? [] {
            if let pair = merge.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                merges.append((a, b))
            } else if let text = merge.stringValue, let space = text.firstIndex(of: " ") {
                merges.append((String(text[..<space]), String(text[text.index(after: space)...])))
            } else {
                throw TokenizerError.malformed(file: file, reason: "merge \(merge) is neither \"a b\" nor [a, b]")
            }
        }
        let model = try BPEModel(
            vocabulary: vocabulary, merges: merges,
            unknownToken: modelJSON["unk_token"]?.stringValue,
            fuseUnknown: modelJSON["fuse_unk"]?.boolValue ?? false,
            byteFallback: modelJSON["byte_fallback"]?.boolValue ?? false,
            ignoreMerges: modelJSON["ignore_merges"]?.boolValue ?? false,
            continuingSubwordPrefix: modelJSON["continuing_subword_prefix"]?.stringValue,
            endOfWordSuffix: modelJSON["end_of_word_suffix"]?.stringValue, file: file)

        // Ids of added tokens as tokenizers assigns them (AddedVocabulary::add_tokens): the id of
        // the same content if already known (added or in the model), else the next free id.
        // The "id" written in the file is not used.
        var added: [AddedToken] = []
        var maxAddedID: Int? = nil
        for entry in json["added_tokens"]?.arrayValue ?? [] {
            guard let content = entry["content"]?.stringValue else {
                throw TokenizerError.malformed(file: file, reason: "added token without content")
            }
            let id: Int
            if let existing = added.first(where: { $0.content == content }) {
                id = existing.id
            } else if let modelID = model.vocabulary.lookup(content) {
                id = Int(modelID)
            } else if let maxAddedID, maxAddedID >= model.size {
                id = maxAddedID + 1
            } else {
                id = model.size
            }
            maxAddedID = max(maxAddedID ?? id, id)
            added.append(AddedToken(
                id: id, content: content, special: entry["special"]?.boolValue ?? false,
                lstrip: entry["lstrip"]?.boolValue ?? false, rstrip: entry["rstrip"]?.boolValue ?? false,
                singleWord: entry["single_word"]?.boolValue ?? false,
                normalized: entry["normalized"]?.boolValue ?? !(entry["special"]?.boolValue ?? false)))
        }
        let template = try Self.parsePostProcessor(json["post_processor"], file: file)
        self.init(
            model: model, addedTokens: added,
            normalizer: try json["normalizer"].flatMap { $0.isNull ? nil : try HFNormalizer(json: $0, file: file) },
            preTokenizer: try json["pre_tokenizer"].flatMap { $0.isNull ? nil : try HFPreTokenizer(json: $0, file: file) },
            decoder: try json["decoder"].flatMap { $0.isNull ? nil : try HFDecoder(json: $0, file: file) },
            template: template,
            // Without tokenizer_config.json, BOS/EOS are the template's first/last special tokens.
            bosTokenID: template.first.flatMap { $0?.first },
            eosTokenIDs: template.count > 1 ? (template.last.flatMap { $0 } ?? []) : [])
    }

    init(model: BPEModel, addedTokens added: [AddedToken], normalizer: HFNormalizer?, preTokenizer: HFPreTokenizer?,
         decoder: HFDecoder?, template: [[Int]?], bosTokenID: Int?, eosTokenIDs: [Int]) {
        self.model = model
        addedTokens = added
        rawMatcher = AddedTokenMatcher(added.filter { !$0.normalized })
        // Normalized added tokens are matched, and decoded, in their normalized form (tokenizers
        // normalizes their content when it registers them).
        let normalizedTokens = added.filter(\.normalized).map { token -> AddedToken in
            var token = token
            // Added tokens are short; a pattern that fails on one leaves it as written.
            token.content = (try? normalizer?.normalize(token.content)) ?? token.content
            return token
        }
        normalizedMatcher = AddedTokenMatcher(normalizedTokens)
        addedByID = Dictionary((added.filter { !$0.normalized } + normalizedTokens).map { ($0.id, $0) },
                               uniquingKeysWith: { _, last in last })
        vocabularySize = max(model.size, (added.map(\.id).max() ?? -1) + 1)
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.template = template
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// TemplateProcessing (single sequence), ByteLevel (no effect on ids) or a Sequence of them.
    private static func parsePostProcessor(_ json: JSONValue?, file: String) throws -> [[Int]?] {
        guard let json, !json.isNull, let type = json["type"]?.stringValue else { return [nil] }
        switch type {
        case "ByteLevel":
            return [nil]
        case "Sequence":
            var result: [[Int]?] = [nil]
            for item in json["processors"]?.arrayValue ?? [] {
                let parsed = try parsePostProcessor(item, file: file)
                if parsed.contains(where: { $0 != nil }) { result = parsed }
            }
            return result
        case "TemplateProcessing":
            var specials: [String: [Int]] = [:]
            for (name, value) in json["special_tokens"]?.objectValue ?? [] {
                specials[name] = (value["ids"]?.arrayValue ?? []).compactMap(\.intValue)
            }
            var result: [[Int]?] = []
            for piece in json["single"]?.arrayValue ?? [] {
                if piece["Sequence"] != nil {
                    result.append(nil)
                } else if let name = piece["SpecialToken"]?["id"]?.stringValue {
                    guard let ids = specials[name] else {
                        throw TokenizerError.malformed(file: file, reason: "template special token \(name) is not defined")
                    }
                    result.append(ids)
                } else {
                    throw TokenizerError.malformed(file: file, reason: "unknown TemplateProcessing piece \(piece)")
                }
            }
            return result.isEmpty ? [nil] : result
        default:
            throw TokenizerError.unsupported(file: file, feature: "post_processor \(type)")
        }
    }

    /// The id of a token string (vocabulary or added token).
    public func tokenID(_ token: String) -> Int? {
        if let added = addedTokens.first(where: { $0.content == token }) { return added.id }
        return model.vocabulary.lookup(token).map(Int.init)
    }

    /// The string of a token id.
    public func token(for id: Int) -> String? {
        if let added = addedByID[id] { return added.content }
        return id >= 0 && id < model.tokens.count ? model.tokens[id] : nil
    }

    public func isSpecial(_ id: Int) -> Bool { addedByID[id]?.special ?? false }

    public func isByteFallbackToken(_ id: Int) -> Bool {
        guard addedByID[id] == nil, let token = token(for: id) else { return false }
        return HFDecoder.byteValue(token) != nil
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        guard text.utf8.count < maximumInputBytes else { throw TokenizerError.inputTooLong(bytes: text.utf8.count) }
        var ids: [Int] = []
        for segment in rawMatcher.split(text, startsAtOrigin: true) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw, let startsAtOrigin):
                let normalized = try normalizer?.normalize(raw) ?? raw
                for inner in normalizedMatcher.split(normalized, startsAtOrigin: startsAtOrigin) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let piece, let startsAtOrigin):
                        let words = try preTokenizer?.preTokenize([PreTokenizedPiece(text: piece, startsAtOrigin: startsAtOrigin)])
                            ?? [PreTokenizedPiece(text: piece, startsAtOrigin: startsAtOrigin)]
                        for word in words { model.tokenize(word.text, into: &ids) }
                    }
                }
            }
        }
        guard addSpecialTokens else { return ids }
        var result: [Int] = []
        for part in template {
            if let special = part { result.append(contentsOf: special) } else { result.append(contentsOf: ids) }
        }
        return result
    }

    // MARK: Decoding

    /// Ids out of range are ignored (tokenizers skips ids it cannot map).
    /// The token through the decoder chain as a token after others, in bytes (see
    /// `HFDecoder.middleTokenBytes`); added tokens give their content, special ones nil.
    public func tokenBytes(_ id: Int) -> [UInt8]? {
        if let added = addedByID[id] { return added.special ? nil : Array(added.content.utf8) }
        guard id >= 0 && id < model.tokens.count, let token = model.tokens[id] else { return nil }
        guard let decoder else { return Array((" " + token).utf8) }  // tokens joined by spaces
        return decoder.middleTokenBytes(token)
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedByID[id] {
                if skipSpecialTokens && added.special { continue }
                tokens.append(added.content)
            } else if id >= 0 && id < model.tokens.count, let token = model.tokens[id] {
                tokens.append(token)
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }
}
