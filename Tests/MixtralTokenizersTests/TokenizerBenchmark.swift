import Foundation
import Testing
@testable import MixtralTokenizers

/// Encoding-speed benchmark, run by scripts/tokenizers/benchmark.py (which sets
/// MIXTRAL_TOKENIZER_BENCH_TEXT to a 1 MB text file). Without that variable it does nothing:
/// it reports timings and asserts only that the encodings are non-empty.
@Suite struct TokenizerBenchmark {
    @Test func encodingThroughput() throws {
        guard let path = ProcessInfo.processInfo.environment["MIXTRAL_TOKENIZER_BENCH_TEXT"],
              let data = FileManager.default.contents(atPath: path) else { return }
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.components(separatedBy: "\n")
        let megabytes = Double(data.count) / 1e6
        func bestOf(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
            var best = Double.infinity
            for _ in 0..<n {
                // Process CPU time, like Python's time.process_time (the machine is shared).
                let start = clock()
                try body()
                best = min(best, Double(clock() - start) / Double(CLOCKS_PER_SEC))
            }
            return best
        }
        print("BENCH \("swift-mixtral".padding(toLength: 28, withPad: " ", startingAt: 0))  MB/s whole  MB/s lines    tokens   load ms")
        let only = ProcessInfo.processInfo.environment["MIXTRAL_TOKENIZER_BENCH_ONLY"]
        for name in ["v1", "v3", "v1-hf", "smollm2"] where only == nil || only == name {
            var tokenizer: (any Tokenizer)?
            let load = try bestOf(3) { tokenizer = try TokenizerLoader.load(path: Fixtures.path(name)) }
            guard let tokenizer else { return }
            var count = 0
            let whole = try bestOf(3) { count = try tokenizer.encode(text, addSpecialTokens: false).count }
            let perLine = try bestOf(3) { for line in lines { _ = try tokenizer.encode(line, addSpecialTokens: false) } }
            #expect(count > 0)
            let label = "\(tokenizer is SentencePieceTokenizer ? "sentencepiece" : "tokenizer.json") \(name)"
            print("BENCH " + label.padding(toLength: 28, withPad: " ", startingAt: 0)
                  + String(format: " %11.2f %11.2f %9d %9.1f", megabytes / whole, megabytes / perLine, count, load * 1000))
        }
    }
}
