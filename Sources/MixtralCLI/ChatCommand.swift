import ArgumentParser
import Foundation
import Mixtral

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with an instruct model through its chat template.",
        discussion: """
        Reads one user message per line from standard input and answers each, keeping the \
        conversation (an empty line or end of input ends it). --message answers one message and exits. \
        Messages are formatted by the model's chat template (tokenizer_config.json), or by \
        mistral-common's instruct format for a bare Mistral tokenizer.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Answer this one message and exit.")
    var message: String?
    @Option(name: .long, help: "System prompt.")
    var system: String?
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        let bundle = try modelOptions.load()
        let encoder = try bundle.chatEncoder()
        var options = try sampling.options(bundle)
        if sampling.maxNewTokens == nil { options.maxNewTokens = max(options.maxNewTokens, 512) }
        var messages: [ChatMessage] = system.map { [.system($0)] } ?? []
        let interactive = message == nil
        while true {
            let text: String
            if let message {
                text = message
            } else {
                FileHandle.standardError.write(Data("> ".utf8))
                guard let line = readLine(), !line.isEmpty else { return }
                text = line
            }
            messages.append(.user(text))
            let prompt = try encoder.encode(messages: messages)
            let cache = bundle.model.makeCache(maxPositions: sampling.ctx)
            let result = try bundle.model.generate(prompt: prompt, options: options, cache: cache,
                                                   tokenizer: bundle.tokenizer) { token in
                printFlush(token.text)
                return true
            }
            print()
            let answer = result.text
            messages.append(.assistant(answer.trimmingCharacters(in: CharacterSet.whitespaces)))
            log(String(format: "(%d tokens, %.1f tokens/s)", result.generatedIDs.count, result.generatedTokensPerSecond))
            if !interactive { return }
        }
    }
}
