/// Turns generated ids into text that is safe to send: decode(prompt + generated) minus the
/// prompt's text, holding back a tail that may be the start of a stop string, and ending
/// before the first stop string (which is not sent, as in OpenAI's API).
struct StopStringFilter {
    var detokenizer: StreamingDetokenizer?
    let stops: [[UInt8]]
    /// UTF-8 of the generated text released by the detokenizer.
    var bytes: [UInt8] = []
    /// How many of `bytes` were sent.
    var sent = 0
    private(set) var matchedStop = false

    init(tokenizer: (any Tokenizer)?, prompt: [Int], stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
        if let tokenizer {
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
            // The prompt's own text is not part of the output.
            _ = detokenizer.append(contentsOf: prompt)
            self.detokenizer = detokenizer
        }
    }

    mutating func append(_ id: Int) -> String {
        guard var detokenizer else { return "" }
        let delta = detokenizer.append(id)
        self.detokenizer = detokenizer
        return release(delta, final: false)
    }

    /// Everything still held back (the sequence ended).
    mutating func finish() -> String {
        guard var detokenizer, !matchedStop else { return "" }
        let delta = detokenizer.finish()
        self.detokenizer = detokenizer
        return release(delta, final: true)
    }

    private mutating func release(_ delta: String, final: Bool) -> String {
        guard !matchedStop else { return "" }
        let searchFrom = max(0, sent - (stops.map(\.count).max() ?? 0))
        bytes.append(contentsOf: delta.utf8)
        var end = bytes.count
        if let stopStart = firstStop(from: searchFrom) {
            matchedStop = true
            end = stopStart
        } else if !final {
            end -= heldBack()
        }
        guard end > sent else { return "" }
        let text = String(decoding: bytes[sent..<end], as: UTF8.self)
        sent = end
        return text
    }

    /// Start of the earliest stop string at or after `from`.
    private func firstStop(from: Int) -> Int? {
        var earliest: Int?
        for stop in stops where bytes.count >= stop.count {
            var start = from
            while start + stop.count <= bytes.count {
                if bytes[start..<(start + stop.count)].elementsEqual(stop) {
                    earliest = min(earliest ?? start, start)
                    break
                }
                start += 1
            }
        }
        return earliest
    }

    /// Length of the longest end of the text that is the start of a stop string.
    private func heldBack() -> Int {
        var longest = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, bytes.count - sent), to: longest, by: -1)
            where bytes[(bytes.count - length)...].elementsEqual(stop[..<length]) {
                longest = length
                break
            }
        }
        return longest
    }
}
