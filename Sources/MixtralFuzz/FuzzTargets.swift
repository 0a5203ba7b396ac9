import Foundation
import Mixtral
import MixtralServer
import MixtralTokenizers

// Fuzz targets for every parser of untrusted input. Built by scripts/fuzz/run.sh with
// `-sanitize=fuzzer,address -DFUZZING`, libFuzzer drives `LLVMFuzzerTestOneInput` with
// the target named by MIXTRAL_FUZZ_TARGET. In a normal build this is a replay tool:
// `mixtral-fuzz TARGET FILE_OR_FOLDER...` runs each input once (CI replays the corpora).
// An input passes when it ends in a value or a typed error; a trap, a crash or a
// sanitizer report is a finding.

/// A target: one input through one parser and what follows it.
typealias FuzzTarget = @Sendable ([UInt8]) -> Void

/// Files the targets need (the tokenizer fixtures), found from the repository root.
enum FuzzFixtures {
    static let root: String = ProcessInfo.processInfo.environment["MIXTRAL_FUZZ_ROOT"] ?? FileManager.default.currentDirectoryPath
    static let tokenizers: [any Tokenizer] = ["smollm2", "v1", "v3"].compactMap {
        try? TokenizerLoader.load(path: root + "/Tests/MixtralTokenizersTests/Fixtures/" + $0)
    }
    /// A scratch file per process for the parsers that read files.
    static let scratch = NSTemporaryDirectory() + "mixtral-fuzz-\(getpid())"
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
func scratchFile(_ name: String, _ bytes: [UInt8]) -> String? {
    try? FileManager.default.createDirectory(atPath: FuzzFixtures.scratch, withIntermediateDirectories: true)
    let path = FuzzFixtures.scratch + "/" + name
    return FileManager.default.createFile(atPath: path, contents: Data(bytes)) ? path : nil
}

let targets: [String: FuzzTarget] = [
    // GGUF header, metadata and tensor infos, then what a model load reads from them.
    "gguf": { bytes in
        guard let path = scratchFile("model.gguf", bytes), let file = try? GGUFFile(path: path) else { return }
        _ = try? GGUFLlamaHyperparameters(file: file)
        _ = try? file.loadTokenizer()
        for name in file.tensorNames.prefix(16) { _ = try? file.tensorInfo(name) }
    },
    // A safetensors file: header JSON, dtypes, shapes and offsets.
    "safetensors": { bytes in
        guard let path = scratchFile("model.safetensors", bytes), let file = try? SafeTensorsFile(path: path) else { return }
        for name in file.tensorNames.prefix(16) { _ = try? file.tensor(name) }
    },
    // config.json, and generation_config.json beside it.
    "config": { bytes in
        guard let path = scratchFile("config.json", bytes) else { return }
        if let config = try? ModelConfig.load(path: path) {
            _ = scratchFile("generation_config.json", bytes)
            _ = try? GenerationOptions.defaults(folder: FuzzFixtures.scratch, config: config)
        }
        try? FileManager.default.removeItem(atPath: FuzzFixtures.scratch + "/generation_config.json")
    },
    // tokenizer.json, then encoding and decoding with it.
    "tokenizer-json": { bytes in
        guard let json = try? JSONValue.parse(bytes), let tokenizer = try? HFTokenizer(json: json) else { return }
        _ = try? tokenizer.encode("Hello world! 123 <s> ünïcödé \u{1F600}", addSpecialTokens: true)
        _ = tokenizer.decode(Array(0..<min(tokenizer.vocabularySize, 300)), skipSpecialTokens: false)
    },
    // tokenizer.model (SentencePiece protobuf).
    "tokenizer-model": { bytes in
        guard let model = try? SentencePieceModel(data: Data(bytes), file: "fuzz"),
              let tokenizer = try? SentencePieceTokenizer(model: model, file: "fuzz") else { return }
        _ = try? tokenizer.encode("Hello world! 123 ünïcödé", addSpecialTokens: true)
        _ = tokenizer.decode(Array(0..<min(tokenizer.vocabularySize, 300)), skipSpecialTokens: false)
    },
    // A Jinja chat template: parse, then render a conversation with tools.
    "template": { bytes in
        guard let template = try? ChatTemplate(String(decoding: bytes, as: UTF8.self)) else { return }
        let messages = [ChatMessage.system("Be brief."), .user("Hi"), .assistant("Hello!"), .user("Bye")]
        _ = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    },
    // A GBNF grammar: parse, then match the input's own text and bytes against it.
    "grammar": { bytes in
        guard let grammar = try? Grammar(gbnf: String(decoding: bytes, as: UTF8.self)),
              let matcher = try? GrammarMatcher(grammar) else { return }
        _ = matcher.accepts(String(decoding: bytes.prefix(64), as: UTF8.self))
        var state = matcher.initial
        for byte in bytes.suffix(64) {
            guard let next = matcher.advance(state, byte: byte) else { break }
            state = next
        }
    },
    // A JSON schema: converted to GBNF, which must then parse (a converter that writes a
    // grammar it cannot read is a bug: the target stops), and match its own instance text.
    "json-schema": { bytes in
        guard let schema = try? JSONValue.parse(bytes), let text = try? JSONSchemaGrammar.gbnf(schema) else { return }
        guard let grammar = try? Grammar(gbnf: text) else { fatalError("the converter wrote GBNF that does not parse:\n\(text)") }
        guard let matcher = try? GrammarMatcher(grammar) else { return }
        _ = matcher.accepts(String(decoding: bytes.prefix(256), as: UTF8.self))
    },
    // A completions and a chat completions request body.
    "request": { bytes in
        _ = requestValidationError(body: bytes, chat: false, vocabularySize: 32000)
        _ = requestValidationError(body: bytes, chat: true, vocabularySize: 32000)
    },
    // Random ids (4 bytes each, any value) through every fixture tokenizer's decoder.
    "detokenizer": { bytes in
        let ids = stride(from: 0, to: bytes.count - 3, by: 4).map { i in
            Int(Int32(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24))
        }
        for tokenizer in FuzzFixtures.tokenizers {
            let valid = ids.map { (($0 % tokenizer.vocabularySize) + tokenizer.vocabularySize) % tokenizer.vocabularySize }
            _ = tokenizer.decode(valid, skipSpecialTokens: false)
            _ = tokenizer.decode(valid, skipSpecialTokens: true)
            _ = try? tokenizer.validate(ids: ids)
        }
    },
]

#if FUZZING
nonisolated(unsafe) private var selected: FuzzTarget? = nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected?(bytes)
    return 0
}

/// libFuzzer's entry point for programs that have their own main (SwiftPM gives every
/// executable one).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
#endif

@main
struct FuzzMain {
    static func main() {
        #if FUZZING
        let name = ProcessInfo.processInfo.environment["MIXTRAL_FUZZ_TARGET"] ?? ""
        guard let target = targets[name] else {
            print("MIXTRAL_FUZZ_TARGET must be one of \(targets.keys.sorted().joined(separator: ", "))")
            exit(2)
        }
        selected = target
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, fuzzOneInput))
        #else
        replay()
        #endif
    }

    /// Runs every input file given (or every file in each folder given) through a target.
    static func replay() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = targets[name] else {
            print("usage: mixtral-fuzz TARGET FILE_OR_FOLDER...  (targets: \(targets.keys.sorted().joined(separator: ", ")))")
            print("Replays inputs through a fuzz target; scripts/fuzz/run.sh builds the libFuzzer version.")
            exit(2)
        }
        var count = 0
        for argument in arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder) else { continue }
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []).sorted().map { argument + "/" + $0 }
                : [argument]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target([UInt8](data))
                count += 1
            }
        }
        try? FileManager.default.removeItem(atPath: FuzzFixtures.scratch)
        print("\(name): \(count) inputs replayed")
    }
}
